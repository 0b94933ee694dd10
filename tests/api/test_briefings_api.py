"""The briefing routes (docs/assessment.md "Briefings") on a constructed town on the real
database: generated on demand, its PDF rendered to PNG (pypdfium2) and checked (pages, not
blank, every section's Chinese title in its text), regenerated as the next version, its
content and charts served; scope (404 outside the caller's subtree) and roles (403); the
schedule of `firetower loop` generates last month's briefings once and only once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pypdfium2 as pdfium  # type: ignore[import-untyped]  # ships no type information
import pytest

from assessment import briefing_store
from assessment.briefing import SECTION_TITLES, add_months, month_label
from assessment.briefing_pdf import find_font
from cli.loop import briefing_settings
from firetower import db
from firetower.alarm_store import AlarmStore
from firetower.alarms import Trigger, Verdict
from tests.api.conftest import World, raise_alarm
from tests.api.test_hazard_loop import Town, build_town, ok

pytestmark = pytest.mark.integration


def _client(town: Town, who: str) -> httpx.AsyncClient:
    token = town.tokens.get(who) or town.world.tokens[who]
    return httpx.AsyncClient(base_url=f"{town.world.url}/api/v1", timeout=120,
                             headers={"Authorization": f"Bearer {token}"})


async def _data(town: Town) -> None:
    pool = await db.create_pool(town.world.db_url, max_size=2)
    try:
        await pool.execute("UPDATE sites SET latitude = 26.08, longitude = 119.30 WHERE id = 's1'")
        await pool.execute("UPDATE sites SET latitude = 26.07, longitude = 119.31 WHERE id = 's2'")
        await pool.execute("INSERT INTO devices (id, kind, site_id, lifecycle, online) VALUES "
                           "('d1', 'smoke_detector', 's1', 'in_service', true), "
                           "('e1', 'smoke_detector', 's2', 'in_service', true)")
        store = AlarmStore(pool)
        for device, site, verdict in (("d1", "s1", Verdict.FALSE_ALARM),
                                      ("e1", "s2", Verdict.TRUE_FIRE)):
            aid = await raise_alarm(store, device, site)
            await store.transition(aid, Trigger.VERDICT, actor="operator:o", verdict=verdict)
    finally:
        await pool.close()


def _check_pdf(pdf: bytes) -> None:
    doc = pdfium.PdfDocument(pdf)
    try:
        assert len(doc) >= 3
        text = "".join(doc[i].get_textpage().get_text_range() for i in range(len(doc)))
        for title in SECTION_TITLES.values():
            assert title in text, title
        image = doc[0].render(scale=1).to_pil().convert("L")
        lo, hi = image.getextrema()
        assert (lo, hi) == (0, 255) or hi - lo > 128   # ink on paper
        dark = sum(image.histogram()[:128])   # pixels darker than mid-grey
        assert dark > 0.002 * image.width * image.height, "the first page is blank"
    finally:
        doc.close()


async def test_generate_on_demand_pdf_and_scope(world: World) -> None:
    town = await build_town(world)
    await _data(town)
    ids = town.ids
    month = month_label(datetime.now(UTC).date().replace(day=1))
    body = {"jurisdiction_id": ids["township"], "month": month}
    async with _client(town, "township_sup") as c:
        first = await ok(await c.post("/assessment/briefings", json=body), 201)
        assert first["version"] == 1 and first["generated_by"] == "user:township_sup"
        content = first["content"]
        assert [s["title"] for s in content["sections"]] == list(SECTION_TITLES.values())
        summary = {f["key"]: f["value"] for f in content["sections"][0]["figures"]}
        assert summary["fires"] == 1 and summary["false_alarms"] == 1
        ranking = content["sections"][2]
        assert {r[1] for r in ranking["tables"][0]["rows"]} == {"Grid 1", "Grid 2"}
        r = await c.get(first["pdf"].removeprefix("/api/v1"))
        assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
        _check_pdf(r.content)
        for name in ("trend", "ranking", "map"):
            r = await c.get(f"/assessment/briefings/{first['id']}/charts/{name}.svg")
            assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg")
            assert r.text.lstrip().startswith("<?xml") and "<svg" in r.text
        again = await ok(await c.post("/assessment/briefings", json=body), 201)
        assert (again["id"], again["version"]) == (first["id"], 2)
        listed = await ok(await c.get("/assessment/briefings", params={"month": month}))
        assert [b["id"] for b in listed["data"]] == [first["id"]]
        got = await ok(await c.get(f"/assessment/briefings/{first['id']}"))
        assert got["content"]["title"] == content["title"]
        for bad in ({**body, "month": "2026-13"}, {**body, "timezone": "Mars/Base"},
                    {**body, "month": month_label(add_months(
                        datetime.now(UTC).date().replace(day=1), 2))}):
            r = await c.post("/assessment/briefings", json=bad)
            assert r.status_code == 422, (bad, r.text)
        # the county is above the township supervisor: as if it did not exist
        r = await c.post("/assessment/briefings", json={**body, "jurisdiction_id": ids["county"]})
        assert r.status_code == 404
    async with _client(town, "county_sup") as c:
        county = await ok(await c.post("/assessment/briefings", json={
            **body, "jurisdiction_id": ids["county"], "timezone": "Asia/Shanghai"}), 201)
        listed = await ok(await c.get("/assessment/briefings"))
        assert {b["id"] for b in listed["data"]} == {first["id"], county["id"]}
    async with _client(town, "township_sup") as c:
        for path in (f"/assessment/briefings/{county['id']}",
                     f"/assessment/briefings/{county['id']}.pdf",
                     f"/assessment/briefings/{county['id']}/charts/trend.svg",
                     "/assessment/briefings/987654", "/assessment/briefings/987654.pdf"):
            r = await c.get(path)
            assert r.status_code == 404, (path, r.text)
        listed = await ok(await c.get("/assessment/briefings"))
        assert [b["id"] for b in listed["data"]] == [first["id"]]
    async with _client(town, "unit_staff") as c:   # a site manager: no statistics
        assert (await c.get(f"/assessment/briefings/{first['id']}")).status_code == 403
        assert (await c.post("/assessment/briefings", json=body)).status_code == 403


async def test_the_schedule_generates_last_month_once(world: World) -> None:
    town = await build_town(world)
    ids = town.ids
    levels, tz = briefing_settings({"FIRETOWER_BRIEFING_LEVELS": "city, district",
                                    "FIRETOWER_BRIEFING_TZ": "Asia/Shanghai"})
    assert levels == ("city", "district")
    with pytest.raises(ValueError, match="unknown levels county"):
        briefing_settings({"FIRETOWER_BRIEFING_LEVELS": "county"})
    font = find_font()
    pool = await db.create_pool(town.world.db_url, max_size=2)
    try:
        now = datetime.now(UTC)
        beats: list[int] = []
        done = await briefing_store.generate_due(pool, font=font, levels=levels, tz=tz, now=now,
                                                 before_each=lambda: beats.append(1))
        rows = await pool.fetch("SELECT jurisdiction_id, month, version, generated_by "
                                "FROM briefings ORDER BY jurisdiction_id")
        last = briefing_store.last_month(now, tz)
        # the city, the district and the default jurisdiction (a city); not the township
        assert {r["jurisdiction_id"] for r in rows} >= {ids["city"], ids["county"]}
        assert ids["township"] not in {r["jurisdiction_id"] for r in rows}
        assert {(r["month"], r["version"], r["generated_by"]) for r in rows} == {
            (last, 1, "schedule")}
        assert len(done) == len(rows) == len(beats)
        # again (a second loop, a restart): nothing more
        assert await briefing_store.generate_due(pool, font=font, levels=levels, tz=tz,
                                                 now=now + timedelta(hours=1)) == []
        assert await pool.fetchval("SELECT count(*) FROM briefings") == len(rows)
        assert await pool.fetchval("SELECT max(version) FROM briefings") == 1
        pdf = await briefing_store.pdf(pool, done[0])
        assert pdf is not None
        _check_pdf(pdf[1])
    finally:
        await pool.close()
