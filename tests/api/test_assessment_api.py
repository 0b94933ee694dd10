"""The assessment routes (docs/assessment.md): definitions, report, ranking, targets and
progress, the CSV and the XLSX (opened back with openpyxl), the feed; scope (404 outside the
caller's subtree), roles (403) and refusals (422)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from itertools import zip_longest

import pytest
from openpyxl import load_workbook

from firetower import db
from firetower.alarm_store import AlarmStore
from firetower.alarms import Trigger, Verdict
from tests.api.conftest import World, raise_alarm
from tests.api.test_hazard_loop import Town, build_town, ok

pytestmark = pytest.mark.integration


async def _data(town: Town) -> None:
    """s1 (grid): a false alarm and a true fire; s2 (other grid): a false alarm judged
    nuisance; two detectors in service at s1."""
    pool = await db.create_pool(town.world.db_url, max_size=2)
    try:
        await pool.execute("INSERT INTO devices (id, kind, site_id, lifecycle, online) VALUES "
                           "('d1', 'smoke_detector', 's1', 'in_service', true), "
                           "('d2', 'smoke_detector', 's1', 'in_service', true), "
                           "('e1', 'smoke_detector', 's2', 'in_service', true)")
        store = AlarmStore(pool)
        for device, site, verdict in (("d1", "s1", Verdict.FALSE_ALARM),
                                      ("d2", "s1", Verdict.TRUE_FIRE),
                                      ("e1", "s2", Verdict.NUISANCE)):
            aid = await raise_alarm(store, device, site)
            await store.transition(aid, Trigger.VERDICT, actor="operator:o", verdict=verdict)
    finally:
        await pool.close()


def _period() -> dict[str, str]:
    now = datetime.now(UTC)
    return {"start": (now - timedelta(days=1)).isoformat(),
            "end": (now + timedelta(minutes=5)).isoformat()}


async def test_report_ranking_and_scope(world: World) -> None:
    town = await build_town(world)
    await _data(town)
    ids, period = town.ids, _period()
    async with town.client("supervisor") as c:
        defs = await ok(await c.get("/assessment/indicators"))
        assert len(defs) == 29 and all(d["formula"] and d["source"] for d in defs)
        rep = await ok(await c.get("/assessment/report", params={
            "node": f"jurisdiction:{ids['city']}", **period}))
        assert rep["node"]["values"]["fires"] == 1 and rep["node"]["values"]["false_alarms"] == 2
        assert [ch["node"]["key"] for ch in rep["children"]] == [f"jurisdiction:{ids['county']}"]
        ranking = await ok(await c.get("/assessment/ranking", params={
            "node": f"jurisdiction:{ids['township']}", "indicator": "false_alarms", **period}))
        assert [(r["rank"], r["node"]["key"], r["value"]) for r in ranking["rows"]] == [
            (1, f"jurisdiction:{ids['grid']}", 1.0), (1, f"jurisdiction:{ids['other_grid']}", 1.0)]
        ranking = await ok(await c.get("/assessment/ranking", params={
            "node": f"jurisdiction:{ids['township']}", "indicator": "fires", **period}))
        assert [r["node"]["key"] for r in ranking["rows"]] == [
            f"jurisdiction:{ids['other_grid']}", f"jurisdiction:{ids['grid']}"]
        for bad in ("city:1", "jurisdiction:x", "jurisdiction:0"):
            r = await c.get("/assessment/report", params={"node": bad})
            assert r.status_code == 422, (bad, r.text)
        r = await c.get("/assessment/report", params={"node": "jurisdiction:987654"})
        assert r.status_code == 404
        r = await c.get("/assessment/report", params={
            "node": f"jurisdiction:{ids['city']}", "start": period["end"],
            "end": period["start"]})
        assert r.status_code == 422
    async with town.client("township_sup") as c:
        for node in (f"jurisdiction:{ids['township']}", f"jurisdiction:{ids['other_grid']}",
                     f"unit:{ids['unit']}"):
            assert (await c.get("/assessment/report", params={"node": node})).status_code == 200
        for node in (f"jurisdiction:{ids['county']}", f"jurisdiction:{ids['city']}"):
            r = await c.get("/assessment/report", params={"node": node})
            assert r.status_code == 404, node
            r = await c.get("/assessment/export.csv", params={"node": node})
            assert r.status_code == 404, node
    async with town.client("unit_staff") as c:  # a site manager: no statistics
        r = await c.get("/assessment/report", params={"node": f"unit:{ids['unit']}"})
        assert r.status_code == 403


async def test_targets_progress_exports_and_feed(world: World) -> None:
    town = await build_town(world)
    await _data(town)
    ids, period, year = town.ids, _period(), datetime.now(UTC).year
    body = {"jurisdiction_id": ids["township"], "year": year,
            "targets": {"online_rate": 0.9, "false_alarms": 1}}
    async with town.client("operator") as c:
        assert (await c.put("/assessment/targets", json=body)).status_code == 403
    async with town.client("county_sup") as c:
        for bad in ({"no_such": 1}, {"online_rate": 1.5}, {"fires": -1}):
            r = await c.put("/assessment/targets", json={**body, "targets": bad})
            assert r.status_code == 422, (bad, r.text)
        out = await ok(await c.put("/assessment/targets", json=body))
        assert out["targets"] == {"false_alarms": 1.0, "online_rate": 0.9}
    async with town.client("township_sup") as c:  # the county's targets: not in its scope
        r = await c.put("/assessment/targets", json={**body, "jurisdiction_id": ids["county"]})
        assert r.status_code == 404
        r = await c.get("/assessment/targets", params={"jurisdiction_id": ids["county"],
                                                       "year": year})
        assert r.status_code == 404
        got = await ok(await c.get("/assessment/targets", params={
            "jurisdiction_id": ids["township"], "year": year}))
        assert got["targets"] == out["targets"]
        prog = await ok(await c.get("/assessment/progress", params={
            "jurisdiction_id": ids["township"], "year": year}))
        assert {i["indicator"]: (i["actual"], i["met"]) for i in prog["items"]} == {
            "false_alarms": (2.0, False), "online_rate": (1.0, True)}
        node = {"node": f"jurisdiction:{ids['township']}", **period}
        r = await c.get("/assessment/export.csv", params=node)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        text = r.content.decode("utf-8")
        assert text.startswith("\ufeffnode,kind,name,period_start,period_end,fires,")
        lines = text.strip().splitlines()
        assert len(lines) == 4 and lines[1].startswith(f"jurisdiction:{ids['township']},")
        r = await c.get("/assessment/export.xlsx", params=node)
        assert r.status_code == 200
        book = load_workbook(io.BytesIO(r.content), read_only=True)
        assert book.sheetnames == ["indicators", "definitions", "period"]
        rows = list(book["indicators"].iter_rows(values_only=True))
        header = list(rows[0])
        assert header[:3] == ["node", "kind", "name"]
        # an empty figure is an empty cell (a row read back may stop before trailing ones)
        table = {row[0]: dict(zip_longest(header, row)) for row in rows[1:]}
        assert table[f"jurisdiction:{ids['township']}"]["false_alarms"] == 2
        assert table[f"jurisdiction:{ids['grid']}"]["fires"] == 1
        assert table[f"jurisdiction:{ids['other_grid']}"]["false_alarm_share"] == 1
        assert len(list(book["definitions"].iter_rows())) == 1 + 29
        feed = await ok(await c.get("/assessment/feed", params=node))
        assert feed["version"] == "firetower.assessment/1"
        assert {"node": f"jurisdiction:{ids['grid']}", "indicator": "fires", "unit": "count",
                "value": 1.0}.items() <= next(
            f for f in feed["figures"] if f["node"] == f"jurisdiction:{ids['grid']}"
            and f["indicator"] == "fires").items()
