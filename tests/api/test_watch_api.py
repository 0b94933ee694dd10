"""Heightened-watch windows and work prompts through the API on the real database: settings
refused with their reason, bounds, the audit row and the rule engine's NOTIFY, cancel,
mark_bounds applying then reverting, prompt receipts for exactly the right people with one
read confirmation each, the board, and scope (404)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from firetower import db
from firetower.alarm_store import AlarmStore
from notify import watch_store
from tests.api.conftest import World, raise_alarm
from tests.api.test_hazard_loop import Town, build_town, ok

pytestmark = pytest.mark.integration

TIGHT = {"heartbeat_s": 60, "verification_s": 10}


def iso(t: datetime) -> str:
    return t.isoformat()


def window(t: Town, **over: object) -> dict[str, object]:
    now = datetime.now(UTC)
    body: dict[str, object] = {"name": "Spring Festival", "reason": "fireworks",
                               "starts_at": iso(now - timedelta(minutes=1)),
                               "ends_at": iso(now + timedelta(days=7)),
                               "jurisdiction_id": t.ids["township"], "settings": TIGHT}
    body.update(over)
    return {k: v for k, v in body.items() if v is not None}


@pytest.fixture
async def town(world: World) -> AsyncIterator[Town]:
    yield await build_town(world)


async def test_windows_refused_created_with_audit_and_notify_then_cancelled(town: Town) -> None:
    t = town
    now = datetime.now(UTC)
    listener = await db.connect(t.world.db_url)
    heard: list[str] = []
    await listener.add_listener("firetower_alerting_config",
                                lambda *args: heard.append(args[-1]))
    try:
        async with t.client("supervisor") as c:
            for settings, reason in (({"heartbeat": 5}, "unknown watch setting 'heartbeat'"),
                                     ({"heartbeat_s": 5}, "heartbeat_s must be between 10"),
                                     ({"prealarm_ratio": True}, "must be a number"),
                                     ({}, "at least one setting")):
                r = await c.post("/watch/windows", json=window(t, settings=settings))
                assert r.status_code == 422 and reason in r.json()["detail"], r.text
            for over, reason in (({"ends_at": iso(now - timedelta(minutes=2))}, "end after"),
                                 ({"ends_at": iso(now + timedelta(days=32))}, "31 days"),
                                 ({"starts_at": iso(now - timedelta(days=2)),
                                   "ends_at": iso(now - timedelta(days=1))}, "in the past")):
                r = await c.post("/watch/windows", json=window(t, **over))
                assert r.status_code == 422 and reason in r.json()["detail"], r.text
            r = await c.post("/watch/windows", json=window(t, site_ids=["s1"]))
            assert r.status_code == 422  # a jurisdiction or sites, not both
            r = await c.post("/watch/windows", json=window(t, jurisdiction_id=None,
                                                            site_ids=["s1", "nope"]))
            assert r.status_code == 404 and "nope" in r.json()["detail"]
            assert heard == []
            w = await ok(await c.post("/watch/windows", json=window(t)), 201)
            assert w["state"] == "active" and w["sites"] == 2
            assert w["settings"] == {"heartbeat_s": 60.0, "verification_s": 10.0}
            soon = await ok(await c.post("/watch/windows", json=window(
                t, jurisdiction_id=None, site_ids=["s1"],
                starts_at=iso(now + timedelta(days=1)),
                ends_at=iso(now + timedelta(days=2)))), 201)
            assert soon["state"] == "upcoming" and soon["site_ids"] == ["s1"]
            for _ in range(50):
                if len(heard) == 2:
                    break
                await asyncio.sleep(0.05)
            assert heard == ["watch_windows", "watch_windows"]
            states = {s: [x["id"] for x in (await ok(await c.get(
                "/watch/windows", params={"state": s})))["data"]]
                for s in ("active", "upcoming", "ended")}
            assert states == {"active": [w["id"]], "upcoming": [soon["id"]], "ended": []}
            cancelled = await ok(await c.post(f"/watch/windows/{w['id']}/cancel"))
            assert cancelled["state"] == "ended" and cancelled["cancelled_by"] == "supervisor"
            r = await c.post(f"/watch/windows/{w['id']}/cancel")
            assert r.status_code == 409 and "already cancelled" in r.json()["detail"]
            assert (await c.post("/watch/windows/987654/cancel")).status_code == 404
            ended = await ok(await c.get("/watch/windows", params={"state": "ended"}))
            assert [x["id"] for x in ended["data"]] == [w["id"]]
        async with t.client("operator") as c:
            assert (await c.post("/watch/windows", json=window(t))).status_code == 403
            assert (await c.get(f"/watch/windows/{w['id']}")).status_code == 200
        audit = await listener.fetch("SELECT action, actor_name, after FROM audit_log"
                                     " WHERE entity = 'watch_window' AND entity_id = $1"
                                     " ORDER BY id", str(w["id"]))
        assert [(a["action"], a["actor_name"]) for a in audit] == [
            ("create", "supervisor"), ("cancel", "supervisor")]
        assert audit[0]["after"]["settings"] == {"heartbeat_s": 60.0, "verification_s": 10.0}
        for _ in range(50):
            if len(heard) == 3:
                break
            await asyncio.sleep(0.05)
        assert len(heard) == 3  # the cancel reloads the rule engine too
    finally:
        await listener.close()


async def test_mark_bounds_applies_then_reverts(town: Town) -> None:
    t = town
    now = datetime.now(UTC).replace(microsecond=0)
    async with t.client("supervisor") as c:
        a = (await ok(await c.post("/watch/windows", json=window(
            t, starts_at=iso(now + timedelta(minutes=10)),
            ends_at=iso(now + timedelta(hours=1)))), 201))["id"]
        b = (await ok(await c.post("/watch/windows", json=window(
            t, starts_at=iso(now + timedelta(minutes=10)),
            ends_at=iso(now + timedelta(hours=2)))), 201))["id"]
        never = (await ok(await c.post("/watch/windows", json=window(
            t, starts_at=iso(now + timedelta(minutes=10)),
            ends_at=iso(now + timedelta(hours=3)))), 201))["id"]
        await ok(await c.post(f"/watch/windows/{never}/cancel"))  # before it starts
    conn = await db.connect(t.world.db_url)
    try:
        assert await watch_store.mark_bounds(conn, now) == []
        at = now + timedelta(minutes=11)
        assert await watch_store.mark_bounds(conn, at) == [(a, "applied"), (b, "applied")]
        assert await watch_store.mark_bounds(conn, at) == []
        async with t.client("supervisor") as c:
            await ok(await c.post(f"/watch/windows/{b}/cancel"))  # cancelled now, while on
        later = now + timedelta(minutes=30)
        assert await watch_store.mark_bounds(conn, later) == [(b, "reverted")]
        end = now + timedelta(hours=1, seconds=1)
        assert await watch_store.mark_bounds(conn, end) == [(a, "reverted")]
        assert await watch_store.mark_bounds(conn, end + timedelta(hours=5)) == []
        rows = await conn.fetch("SELECT entity_id, action, actor_name FROM audit_log"
                                " WHERE entity = 'watch_window' AND actor_name = 'notify'"
                                " ORDER BY id")
        assert [(r["entity_id"], r["action"]) for r in rows] == [
            (str(a), "apply"), (str(b), "apply"), (str(b), "revert"), (str(a), "revert")]
        w = await conn.fetchrow("SELECT applied_at, reverted_at FROM watch_windows WHERE id = $1",
                                a)
        assert w is not None and (w["applied_at"], w["reverted_at"]) == (at, end)
        assert await conn.fetchval("SELECT applied_at FROM watch_windows WHERE id = $1",
                                   never) is None
    finally:
        await conn.close()


async def _people(t: Town) -> dict[str, int]:
    """Grid members: the grid member user's record in grid, one without an account in
    other_grid; the unit's responsible person."""
    async with t.client("admin") as a:
        me = await ok(await a.get("/users"))
        uid = next(u["id"] for u in me["data"] if u["name"] == "gridder")
        m1 = (await ok(await a.post("/grid-members", json={
            "grid_id": t.ids["grid"], "name": "Wang", "user_id": uid}), 201))["id"]
        m2 = (await ok(await a.post("/grid-members", json={
            "grid_id": t.ids["other_grid"], "name": "Zhao"}), 201))["id"]
        await ok(await a.patch(f"/units/{t.ids['unit']}", json={"responsible_name": "Chen"}))
    return {"wang": m1, "zhao": m2}


async def test_prompts_reach_the_right_people_and_are_confirmed_once(town: Town) -> None:
    t = town
    people = await _people(t)
    async with t.client("supervisor") as c:
        p = await ok(await c.post("/watch/prompts", json={
            "title": "Fireworks tonight", "body": "Check the fire lanes of your sites.",
            "jurisdiction_id": t.ids["township"]}), 201)
        assert sorted((r["recipient"], r["ref_id"], r["name"]) for r in p["receipts"]) == [
            ("grid_member", people["wang"], "Wang"), ("grid_member", people["zhao"], "Zhao"),
            ("unit_responsible", t.ids["unit"], "Chen")]
        assert (p["receipts_read"], p["receipts_total"]) == (0, 3)
        g = await ok(await c.post("/watch/prompts", json={
            "title": "Grid 1 only", "body": "x", "jurisdiction_id": t.ids["grid"]}), 201)
        assert sorted((r["recipient"], r["ref_id"]) for r in g["receipts"]) == [
            ("grid_member", people["wang"]), ("unit_responsible", t.ids["unit"])]
        r = await c.post("/watch/prompts", json={"title": "x", "body": "x",
                                                 "jurisdiction_id": t.ids["grid"],
                                                 "watch_id": 987654})
        assert r.status_code == 404
    conn = await db.connect(t.world.db_url)
    try:
        jobs = await conn.fetch("SELECT kind, prompt_id FROM notify_jobs WHERE kind = 'prompt'"
                                " ORDER BY id")
        assert [(j["kind"], j["prompt_id"]) for j in jobs] == [("prompt", p["id"]),
                                                               ("prompt", g["id"])]
    finally:
        await conn.close()
    async with t.client("gridder") as c:
        read = await ok(await c.post(f"/watch/prompts/{p['id']}/read"))
        mine = next(r for r in read["receipts"]
                    if r["recipient"] == "grid_member" and r["ref_id"] == people["wang"])
        assert mine["read_via"] == "console" and mine["read_at"]
        # the grid member sees its own grid's receipts, not the other grid's
        assert {r["ref_id"] for r in read["receipts"] if r["recipient"] == "grid_member"} == \
            {people["wang"]}
        r = await c.post(f"/watch/prompts/{p['id']}/read")
        assert r.status_code == 409 and "already confirmed" in r.json()["detail"]
    async with t.client("unit_staff") as c:  # the unit's site manager confirms for the unit
        read = await ok(await c.post(f"/watch/prompts/{g['id']}/read"))
        unit = next(r for r in read["receipts"] if r["recipient"] == "unit_responsible")
        assert unit["read_via"] == "console"
    async with t.client("other_gridder") as c:
        assert (await c.post(f"/watch/prompts/{g['id']}/read")).status_code == 404  # not seen
        assert (await c.get(f"/watch/prompts/{g['id']}")).status_code == 404
        assert [x["id"] for x in (await ok(await c.get("/watch/prompts")))["data"]] == [p["id"]]
    async with t.client("operator") as c:
        r = await c.post(f"/watch/prompts/{p['id']}/read")
        assert r.status_code == 404 and "no receipt of yours" in r.json()["detail"]
        assert (await c.post("/watch/prompts", json={
            "title": "x", "body": "x", "jurisdiction_id": t.ids["grid"]})).status_code == 403
    async with t.client("supervisor") as c:
        full = await ok(await c.get(f"/watch/prompts/{p['id']}"))
        assert (full["receipts_read"], full["receipts_total"]) == (1, 3)
    conn = await db.connect(t.world.db_url)
    try:  # the signed-link path: the first reading stands
        rid = next(r["id"] for r in full["receipts"]
                   if r["recipient"] == "grid_member" and r["ref_id"] == people["zhao"])
        assert await watch_store.confirm_receipt(conn, rid, "sms") is True
        assert await watch_store.confirm_receipt(conn, rid, "email") is False
        assert await conn.fetchval("SELECT read_via FROM prompt_receipts WHERE id = $1",
                                   rid) == "sms"
    finally:
        await conn.close()


async def test_the_board_and_scope(town: Town) -> None:
    t = town
    await _people(t)
    pool = await db.create_pool(t.world.db_url, max_size=2)
    try:
        await pool.execute("INSERT INTO devices (id, kind, site_id, online) VALUES "
                           "('d-1', 'smoke_detector', 's1', true),"
                           " ('d-2', 'smoke_detector', 's1', false),"
                           " ('d-3', 'smoke_detector', 's2', false)")
        store = AlarmStore(pool)
        await raise_alarm(store, "d-1", "s1")
        await raise_alarm(store, "d-2", "s1", "offline", "device.offline")
        await raise_alarm(store, "d-3", "s2", "fault", "device.fault")
        now = datetime.now(UTC)
        async with t.client("supervisor") as c:
            wide = await ok(await c.post("/watch/windows", json=window(t)), 201)
            only_s2 = await ok(await c.post("/watch/windows", json=window(
                t, name="Old Mill", jurisdiction_id=None, site_ids=["s2"])), 201)
            later = await ok(await c.post("/watch/windows", json=window(
                t, starts_at=iso(now + timedelta(days=1)),
                ends_at=iso(now + timedelta(days=2)))), 201)
            await ok(await c.post("/watch/prompts", json={
                "title": "Festival", "body": "Stay alert", "jurisdiction_id": t.ids["township"],
                "watch_id": wide["id"]}), 201)
            b = await ok(await c.get("/watch/board"))
            assert [x["window"]["id"] for x in b["data"]] == [wide["id"], only_s2["id"]]
            assert [x["id"] for x in b["upcoming"]] == [later["id"]]
            first = b["data"][0]
            assert first["sites"] == 2 and first["offline_devices"] == 2
            assert first["alarms_by_class"] == {"fire": 1, "offline": 1, "fault": 1}
            assert first["open_alarms"] == 3
            assert [(p["title"], p["receipts_read"], p["receipts_total"])
                    for p in first["prompts"]] == [("Festival", 0, 3)]
            assert b["data"][1]["alarms_by_class"] == {"fault": 1} and b["data"][1]["prompts"] == []
        async with t.client("gridder") as c:  # sees s1 only: the s2 window is not there
            b = await ok(await c.get("/watch/board"))
            assert [x["window"]["id"] for x in b["data"]] == [wide["id"]]
            first = b["data"][0]
            assert first["sites"] == 1 and first["alarms_by_class"] == {"fire": 1, "offline": 1}
            assert first["prompts"][0]["receipts_total"] == 2  # its grid member and the unit
            assert (await c.get(f"/watch/windows/{only_s2['id']}")).status_code == 404
            assert (await c.post(f"/watch/windows/{wide['id']}/cancel")).status_code == 403
        async with t.client("township_sup") as c:  # a scoped manager: its own subtree only
            r = await c.post("/watch/windows", json=window(t, jurisdiction_id=t.ids["city"]))
            assert r.status_code == 404
            await ok(await c.post("/watch/windows", json=window(
                t, jurisdiction_id=t.ids["grid"])), 201)
            r = await c.post("/watch/prompts", json={"title": "x", "body": "x",
                                                     "jurisdiction_id": t.ids["county"]})
            assert r.status_code == 404
        async with t.world.client("installer") as c:
            assert (await c.get("/watch/board")).status_code == 403
    finally:
        await pool.close()
