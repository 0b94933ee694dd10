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
        r = await c.post(f"/alarms/{fire}/close", json={})
        assert r.status_code == 409  # a fire alarm needs a verdict
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
