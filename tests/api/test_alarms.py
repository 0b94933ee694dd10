"""Alarm list, detail with timeline, and the operator actions through the alarm store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from firetower import db
from firetower.alarm_store import AlarmKey, AlarmStore
from tests.api.conftest import World, raise_alarm

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(world: World) -> AsyncIterator[AlarmStore]:
    pool = await db.create_pool(world.db_url, max_size=4)
    conn = await pool.acquire()
    try:
        await conn.execute(
            "INSERT INTO devices (id, kind, site_id, location) VALUES "
            "('smk-1', 'smoke_detector', 's1', '3F east'), "
            "('prs-1', 'sprinkler_pressure', 's1', 'Pump room'), "
            "('smk-9', 'smoke_detector', 's2', 'Mill loft')")
    finally:
        await pool.release(conn)
    yield AlarmStore(pool)
    await pool.close()


async def test_board_order_and_filters(world: World, store: AlarmStore) -> None:
    await raise_alarm(store, "prs-1", "s1", "fault", "sprinkler.low_pressure")
    await raise_alarm(store, "smk-1", "s1", "early_warning", "smoke.drift")
    fire = await raise_alarm(store, "smk-1", "s1", "fire", "smoke.threshold")
    await raise_alarm(store, "prs-1", "s1", "supervisory", "sprinkler.valve")
    async with world.client("operator") as c:
        r = await c.get("/alarms", params={"unfinished": "true"})
        assert r.status_code == 200, r.text
        classes = [a["class"] for a in r.json()["data"]]
        assert classes == ["fire", "supervisory", "fault", "early_warning"]
        r = await c.get("/alarms", params=[("class", "fire"), ("class", "fault")])
        assert [a["class"] for a in r.json()["data"]] == ["fire", "fault"]
        r = await c.get("/alarms", params={"state": "active", "device_id": "smk-1"})
        assert r.json()["count"] == 2
        detail = (await c.get(f"/alarms/{fire}")).json()
        assert detail["location"] == "3F east" and detail["site_name"] == "Harbour Tower"
        assert [e["kind"] for e in detail["events"]] == ["raise"]
        assert (await c.get("/alarms", params={"class": "smoke"})).status_code == 422


async def test_acknowledge_verdict_comment_assign(world: World, store: AlarmStore) -> None:
    fire = await raise_alarm(store, "smk-1", "s1")
    async with world.client("operator") as c:
        r = await c.post(f"/alarms/{fire}/acknowledge", json={"reason": "calling site"})
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "acknowledged"
        assert r.json()["acknowledged_by"] == "operator:operator"
        again = await c.post(f"/alarms/{fire}/acknowledge", json={})
        assert again.status_code == 409 and "acknowledge" in again.json()["detail"]
        r = await c.post(f"/alarms/{fire}/assign", json={"assignee": "installer"})
        assert r.json()["assignee"] == "installer"
        assert (await c.post(f"/alarms/{fire}/assign",
                             json={"assignee": "ghost"})).status_code == 404
        r = await c.post(f"/alarms/{fire}/comments", json={"text": "guard confirms smoke"})
        assert r.status_code == 201
        r = await c.post(f"/alarms/{fire}/close", json={"reason": "all clear"})
        assert r.status_code == 409  # a fire alarm needs a verdict
        for body in ({"verdict": "true_fire"}, {"verdict": "true_fire", "reason": "  "}):
            r = await c.post(f"/alarms/{fire}/verdict", json=body)
            assert r.status_code == 422, body  # a verdict needs a reason
            assert r.json()["detail"].startswith("reason: "), r.json()
        r = await c.post(f"/alarms/{fire}/close", json={})
        assert r.status_code == 422 and r.json()["detail"] == "reason: Field required"
        r = await c.post(f"/alarms/{fire}/verdict", json={"verdict": "true_fire",
                                                          "reason": "brigade dispatched"})
        assert r.status_code == 200
        body = r.json()
        assert (body["state"], body["verdict"]) == ("verified", "true_fire")
        assert [e["kind"] for e in body["events"]] == [
            "raise", "acknowledge", "assign", "comment", "verdict"]
        assert body["events"][3]["reason"] == "guard confirms smoke"
    await store.clear(AlarmKey("smk-1", "", "smoke.threshold"), at=datetime.now(UTC),
                      reason="smoke gone")
    async with world.client("operator") as c:
        assert (await c.get(f"/alarms/{fire}")).json()["state"] == "closed"
        assert (await c.get("/alarms", params={"unfinished": "true"})).json()["count"] == 0


async def test_alarm_log_is_append_only(world: World, store: AlarmStore) -> None:
    await raise_alarm(store, "smk-1", "s1")
    conn = await asyncpg.connect(world.db_url)
    try:
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("UPDATE alarm_events SET actor = 'someone else'")
    finally:
        await conn.close()


async def test_rule_overrides_and_modes(world: World, store: AlarmStore) -> None:
    async with world.client("admin") as c:
        r = await c.put("/rules/overrides", json={"scope": "device", "target": "smk-1",
                                                  "rule": "smoke",
                                                  "params": {"alarm_pct_per_m": 4.5}})
        assert r.status_code == 200, r.text
        r = await c.put("/rules/overrides", json={"scope": "device", "target": "smk-1",
                                                  "rule": "smoke",
                                                  "params": {"alarm_pct_per_m": 5.0}})
        assert r.json()["params"] == {"alarm_pct_per_m": 5.0}
        assert len((await c.get("/rules/overrides")).json()) == 1
        bad = await c.put("/rules/overrides", json={"scope": "device", "target": "smk-1",
                                                    "rule": "smoke",
                                                    "params": {"alarm_pct_per_m": "high"}})
        assert bad.status_code == 422
    async with world.client("installer") as c:
        r = await c.post("/modes", json={"scope": "device", "target": "smk-1", "mode": "test",
                                         "reason": "annual test", "minutes": 30})
        assert r.status_code == 201, r.text
        mode_id = r.json()["id"]
        assert [m["id"] for m in (await c.get("/modes")).json()] == [mode_id]
        assert (await c.delete(f"/modes/{mode_id}")).status_code == 204
        assert (await c.get("/modes")).json() == []
    kinds = [r["kind"] for r in await store._db.fetch(  # type: ignore[union-attr]
        "SELECT kind FROM alarm_events ORDER BY id")]
    assert kinds == ["mode", "mode"]


async def test_close_needs_a_reason(world: World, store: AlarmStore) -> None:
    fault = await raise_alarm(store, "prs-1", "s1", "fault", "sprinkler.low_pressure")
    await store.clear(AlarmKey("prs-1", "", "sprinkler.low_pressure"), at=datetime.now(UTC),
                      reason="pressure back")
    async with world.client("operator") as c:
        assert (await c.post(f"/alarms/{fault}/acknowledge", json={})).status_code == 200
        r = await c.post(f"/alarms/{fault}/close", json={"reason": ""})
        assert r.status_code == 422
        assert "a reason is required" in r.json()["detail"]
        r = await c.post(f"/alarms/{fault}/close", json={"reason": "valve reopened"})
        assert r.status_code == 200 and r.json()["state"] == "closed"
        assert r.json()["events"][-1]["reason"] == "valve reopened"


async def test_detail_carries_site_floor_and_forwarding(world: World,
                                                        store: AlarmStore) -> None:
    async with world.client("admin") as c:
        r = await c.patch("/sites/s1", json={
            "address": "1 Quay Road", "contacts": [{"name": "Li Wei", "role": "guard",
                                                    "phone": "+86 21 5555 0101"}],
            "fire_plan": {"entrances": [{"name": "North gate"}], "notes": "pumps in B1"}})
        assert r.status_code == 200, r.text
        assert (await c.post("/sites/s1/floors", json={"id": "3F", "name": "Third floor",
                                                       "level": 3})).status_code == 201
        assert (await c.patch("/devices/smk-1", json={"floor_id": "3F", "x": 0.25,
                                                      "y": 0.5})).status_code == 200
    fire = await raise_alarm(store, "smk-1", "s1")
    async with world.client("operator") as c:
        d = (await c.get(f"/alarms/{fire}")).json()
    assert d["site"]["address"] == "1 Quay Road"
    assert d["site"]["contacts"][0]["phone"] == "+86 21 5555 0101"
    assert d["site"]["fire_plan"]["entrances"][0]["name"] == "North gate"
    assert d["floor"]["name"] == "Third floor" and (d["x"], d["y"]) == (0.25, 0.5)
    assert d["device_kind"] == "smoke_detector" and d["forwarded_at"] is None


async def _cleared(store: AlarmStore, devices: list[str]) -> list[int]:
    ids = [await raise_alarm(store, dev, site, "offline", "offline")
           for dev, site in ((d, "s2" if d == "smk-9" else "s1") for d in devices)]
    for dev in devices:
        await store.clear(AlarmKey(dev, "", "offline"), at=datetime.now(UTC), reason="back")
    return ids


async def test_bulk_acknowledge_and_close(world: World, store: AlarmStore) -> None:
    ids = await _cleared(store, ["smk-1", "prs-1"])
    fire = await raise_alarm(store, "smk-1", "s1")
    async with world.client("operator") as c:
        r = await c.post("/alarms/acknowledge", json={"ids": [*ids, fire, fire, 999_999],
                                                      "reason": "flood after power cut"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert [a["id"] for a in body["data"]] == [*ids, fire] and body["count"] == 3
        assert [a["state"] for a in body["data"]] == ["cleared", "cleared", "acknowledged"]
        assert body["refused"] == [{"id": 999_999, "status": 404,
                                    "detail": "alarm not found"}]
        r = await c.post("/alarms/close", json={"ids": [*ids, fire]})
        assert r.status_code == 422  # a reason is required
        r = await c.post("/alarms/close", json={"ids": [*ids, fire], "reason": "power back"})
        body = r.json()
        assert [a["state"] for a in body["data"]] == ["closed", "closed"]
        assert [(x["id"], x["status"]) for x in body["refused"]] == [(fire, 409)]
        assert body["refused"][0]["detail"] == "a fire alarm is closed only by a verdict"
        assert (await c.post("/alarms/close", json={"ids": [], "reason": "x"})).status_code == 422
    events = await store._db.fetch(  # type: ignore[union-attr]
        "SELECT alarm_id, kind, actor, reason FROM alarm_events WHERE kind IN"
        " ('acknowledge', 'close') ORDER BY id")
    assert [(e["alarm_id"], e["kind"]) for e in events] == [
        (ids[0], "acknowledge"), (ids[1], "acknowledge"), (fire, "acknowledge"),
        (ids[0], "close"), (ids[1], "close")]
    assert {e["actor"] for e in events} == {"operator:operator"}


async def test_bulk_acknowledge_is_scoped_and_needs_the_role(world: World,
                                                             store: AlarmStore) -> None:
    mine = await raise_alarm(store, "smk-1", "s1", "fault", "panel.fault")
    theirs = await raise_alarm(store, "smk-9", "s2", "fault", "panel.fault")
    async with world.client("admin") as admin:
        r = await admin.post("/users", json={"name": "op-a", "role": "operator",
                                             "password": "correct horse battery",
                                             "site_ids": ["s1"]})
        assert r.status_code == 201, r.text
    async with world.client() as anon:
        token = (await anon.post("/auth/token", data={
            "username": "op-a", "password": "correct horse battery"})).json()["access_token"]
    async with world.client() as c:
        r = await c.post("/alarms/acknowledge", json={"ids": [mine, theirs]},
                         headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        assert [a["id"] for a in r.json()["data"]] == [mine]
        # another site's alarm answers exactly as an id that does not exist
        assert r.json()["refused"] == [{"id": theirs, "status": 404,
                                        "detail": "alarm not found"}]
    for who in ("supervisor", "manager", "installer", "integration"):
        async with world.client(who) as c:
            r = await c.post("/alarms/acknowledge", json={"ids": [theirs]})
            assert r.status_code == 403, who
            r = await c.post("/alarms/close", json={"ids": [theirs], "reason": "x"})
            assert r.status_code == 403, who
    states = {r["id"]: r["state"] for r in await store._db.fetch(  # type: ignore[union-attr]
        "SELECT id, state FROM alarms")}
    assert states == {mine: "acknowledged", theirs: "active"}


async def test_bulk_acknowledge_of_a_flood(world: World, store: AlarmStore) -> None:
    """620 offline alarms (the flood of a 20-panel site outage) acknowledged in one call."""
    import time

    from firetower.alarm_store import Occurrence
    from firetower.alarms import AlarmClass

    n = 620
    await store._db.execute(  # type: ignore[union-attr]
        "INSERT INTO devices (id, kind, site_id) SELECT 'f-' || i, 'smoke_detector', 's1'"
        " FROM generate_series(1, $1) AS i", n)
    now = datetime.now(UTC)
    async with store.transaction():
        ids = [(await store.raise_or_recur(Occurrence(
            AlarmKey(f"f-{i}", "", "offline"), AlarmClass.OFFLINE, now, site_id="s1",
            group_key="offline:s1"))).alarm_id for i in range(1, n + 1)]  # type: ignore[union-attr]
    async with world.client("operator") as c:
        t0 = time.perf_counter()
        r = await c.post("/alarms/acknowledge", json={"ids": ids, "reason": "site power cut"},
                         timeout=60)
        elapsed = time.perf_counter() - t0
    assert r.status_code == 200, r.text
    assert r.json()["count"] == n and r.json()["refused"] == []
    print(f"bulk acknowledgement of {n} alarms: {elapsed:.2f} s")
    assert await store._db.fetchval(  # type: ignore[union-attr]
        "SELECT count(*) FROM alarm_events WHERE kind = 'acknowledge'") == n
    assert elapsed < 20  # one call instead of 620; seconds, not minutes, on 2 cores
