"""Duty rosters, shifts, who is on duty, the duty log and shift hand-overs, through the API on
the real database: the overlap and missing-user refusals with their reasons, the hand-over's
list of exactly the open alarms of the roster's sites, and scope (another roster: 404)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from firetower import db
from firetower.alarm_store import AlarmKey, AlarmStore
from firetower.alarms import Trigger
from tests.api.conftest import PASSWORD, World, raise_alarm
from tests.api.test_hazard_loop import Town, build_town, ok

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)


def iso(t: datetime) -> str:
    return t.isoformat()


@pytest.fixture
async def town(world: World) -> AsyncIterator[Town]:
    """The hazard loop's town (s1 in grid, s2 in other_grid, both in the township), and an
    operator attached to other_grid."""
    t = await build_town(world)
    async with world.client("admin") as a:
        u = await ok(await a.post("/users", json={
            "name": "grid_op", "role": "operator", "password": PASSWORD,
            "scope_kind": "jurisdiction", "scope_id": t.ids["other_grid"]}), 201)
        t.ids["grid_op"] = u["id"]
        r = await a.post("/auth/token", data={"username": "grid_op", "password": PASSWORD})
        t.tokens["grid_op"] = (await ok(r))["access_token"]
    yield t


async def roster(t: Town, node: str = "township", who: str = "supervisor") -> int:
    async with t.client(who) as c:
        return int((await ok(await c.post("/duty/rosters", json={
            "name": f"{node} centre", "jurisdiction_id": t.ids[node]}), 201))["id"])


async def test_rosters_and_shifts_with_their_refusals(town: Town) -> None:
    t, w = town, town.world
    rid = await roster(t)
    op = w.ids["operator"]
    async with t.client("supervisor") as c:
        got = await ok(await c.get(f"/duty/rosters/{rid}"))
        assert got["jurisdiction_id"] == t.ids["township"] and got["sites"] == 2
        # exactly one owner
        r = await c.post("/duty/rosters", json={"name": "x", "jurisdiction_id": t.ids["grid"],
                                                "unit_id": t.ids["unit"]})
        assert r.status_code == 422, r.text
        assert (await c.post("/duty/rosters", json={"name": "x"})).status_code == 422
        assert (await c.post("/duty/rosters", json={"name": "x", "unit_id": 999999})
                ).status_code == 404
        unit_roster = await ok(await c.post("/duty/rosters", json={
            "name": "control room", "unit_id": t.ids["unit"]}), 201)
        assert unit_roster["unit_name"] == "Harbour Tower Co." and unit_roster["sites"] == 2

        night = {"user_id": op, "position": "operator", "starts_at": iso(NOW - timedelta(hours=2)),
                 "ends_at": iso(NOW + timedelta(hours=6))}
        s1 = await ok(await c.post(f"/duty/rosters/{rid}/shifts", json=night), 201)
        assert s1["user_name"] == "operator" and s1["position"] == "operator"
        # the same person again, overlapping: 409 naming the shift it overlaps
        r = await c.post(f"/duty/rosters/{rid}/shifts", json={
            **night, "position": "leader", "starts_at": iso(NOW + timedelta(hours=5)),
            "ends_at": iso(NOW + timedelta(hours=9))})
        assert r.status_code == 409, r.text
        assert f"shift {s1['id']}" in r.json()["detail"] and "overlap" in r.json()["detail"]
        # meeting end to start is no overlap
        nxt = await ok(await c.post(f"/duty/rosters/{rid}/shifts", json={
            **night, "starts_at": night["ends_at"],
            "ends_at": iso(NOW + timedelta(hours=14))}), 201)
        # another roster is another matter
        await ok(await c.post(f"/duty/rosters/{unit_roster['id']}/shifts", json=night), 201)
        # a user that does not exist
        r = await c.post(f"/duty/rosters/{rid}/shifts", json={**night, "user_id": 987654})
        assert r.status_code == 404 and "user 987654 does not exist" in r.json()["detail"]
        # the bounds
        r = await c.post(f"/duty/rosters/{rid}/shifts", json={
            **night, "user_id": w.ids["supervisor"], "ends_at": night["starts_at"]})
        assert r.status_code == 422 and "end after" in r.json()["detail"]
        r = await c.post(f"/duty/rosters/{rid}/shifts", json={
            **night, "user_id": w.ids["supervisor"], "ends_at": iso(NOW + timedelta(days=8))})
        assert r.status_code == 422 and "7 days" in r.json()["detail"]
        r = await c.post(f"/duty/rosters/{rid}/shifts", json={
            **night, "user_id": w.ids["supervisor"], "starts_at": "2026-12-07T08:00:00"})
        assert r.status_code == 422, r.text  # no UTC offset
        # a change is checked like a new shift (the shift itself does not count)
        r = await c.patch(f"/duty/rosters/{rid}/shifts/{nxt['id']}",
                          json={"starts_at": iso(NOW)})
        assert r.status_code == 409 and f"shift {s1['id']}" in r.json()["detail"]
        moved = await ok(await c.patch(f"/duty/rosters/{rid}/shifts/{s1['id']}",
                                       json={"starts_at": iso(NOW - timedelta(hours=1))}))
        assert moved["starts_at"].startswith(iso(NOW - timedelta(hours=1))[:19])
        listed = await ok(await c.get(f"/duty/rosters/{rid}/shifts", params={
            "start": iso(NOW - timedelta(days=1)), "end": iso(NOW + timedelta(days=1))}))
        assert [s["id"] for s in listed["data"]] == [s1["id"], nxt["id"]]
        r = await c.delete(f"/duty/rosters/{rid}/shifts/{nxt['id']}")
        assert r.status_code == 204
        assert (await c.delete(f"/duty/rosters/{rid}/shifts/{nxt['id']}")).status_code == 404
        renamed = await ok(await c.patch(f"/duty/rosters/{rid}", json={"name": "Dongjie duty"}))
        assert renamed["name"] == "Dongjie duty"
    async with t.client("operator") as c:  # reads, may not plan
        assert (await c.get(f"/duty/rosters/{rid}")).status_code == 200
        r = await c.post(f"/duty/rosters/{rid}/shifts", json=night)
        assert r.status_code == 403 and r.json()["detail"].startswith("role operator may not")
    pool = await db.create_pool(w.db_url, max_size=1)
    try:
        actions = [(r["action"], r["entity"]) for r in await pool.fetch(
            "SELECT action, entity FROM audit_log WHERE entity LIKE 'duty_%' ORDER BY id")]
        assert ("create", "duty_roster") in actions and ("delete", "duty_shift") in actions
    finally:
        await pool.close()


async def test_who_is_on_duty_now_and_the_gaps(town: Town) -> None:
    t, w = town, town.world
    rid = await roster(t)
    async with t.client("supervisor") as c:
        for user, position, start, end in (
                ("operator", "operator", -8, 4), ("admin", "operator", 0, 8),
                ("supervisor", "leader", -1, 11), ("admin", "officer", 8, 20)):
            await ok(await c.post(f"/duty/rosters/{rid}/shifts", json={
                "user_id": w.ids[user], "position": position,
                "starts_at": iso(NOW + timedelta(hours=start)),
                "ends_at": iso(NOW + timedelta(hours=end))}), 201)
    async with t.client("operator") as c:
        now = await ok(await c.get(f"/duty/rosters/{rid}/now"))
        assert [p["name"] for p in now["positions"]["operator"]] == ["operator", "admin"]
        assert [p["name"] for p in now["positions"]["leader"]] == ["supervisor"]
        assert now["positions"]["officer"] == [] and now["uncovered"] == ["officer"]
        later = await ok(await c.get(f"/duty/rosters/{rid}/now",
                                     params={"at": iso(NOW + timedelta(hours=9))}))
        assert [p["name"] for p in later["positions"]["officer"]] == ["admin"]
        assert later["uncovered"] == ["operator"]
        gaps = await ok(await c.get(f"/duty/rosters/{rid}/gaps", params={
            "start": iso(NOW), "end": iso(NOW + timedelta(hours=24)), "position": "operator"}))
        assert [(g["starts_at"][:16], g["ends_at"][:16]) for g in gaps["data"]] == [
            (iso((NOW + timedelta(hours=8)).astimezone(UTC))[:16],
             iso((NOW + timedelta(hours=24)).astimezone(UTC))[:16])]
        r = await c.get(f"/duty/rosters/{rid}/now", params={"at": "2026-12-07T08:00:00"})
        assert r.status_code == 422


async def test_the_log_and_a_hand_over_list_the_open_alarms_of_the_roster(town: Town) -> None:
    t, w = town, town.world
    rid = await roster(t, "grid")  # covers s1 only
    pool = await db.create_pool(w.db_url, max_size=2)
    try:
        await pool.execute("INSERT INTO devices (id, kind, site_id) VALUES "
                           "('d-1', 'smoke_detector', 's1'), ('d-2', 'smoke_detector', 's1'),"
                           " ('d-3', 'smoke_detector', 's2')")
        store = AlarmStore(pool)
        fire = await raise_alarm(store, "d-1", "s1")
        fault = await raise_alarm(store, "d-2", "s1", "fault", "device.fault")
        gone = await raise_alarm(store, "d-2", "s1", "supervisory", "sprinkler.low_pressure")
        await raise_alarm(store, "d-3", "s2")  # another grid: not this roster's
        # one of s1's alarms is finished: cleared, acknowledged, closed
        await store.clear(AlarmKey("d-2", "", "sprinkler.low_pressure"), at=datetime.now(UTC),
                          reason="normal")
        await store.transition(gone, Trigger.ACKNOWLEDGE, actor="user:operator")
        await store.transition(gone, Trigger.CLOSE, actor="user:operator", reason="done")
        async with t.client("operator") as c:
            note = await ok(await c.post(f"/duty/rosters/{rid}/log",
                                         json={"text": "radio check with brigade ok"}), 201)
            assert note["kind"] == "note" and note["actor"] == "user:operator"
            assert (await c.post(f"/duty/rosters/{rid}/log", json={"text": "  "})
                    ).status_code == 422
            pending = await ok(await c.get(f"/duty/rosters/{rid}/open-alarms"))
            assert [a["id"] for a in pending["data"]] == [fire, fault]
            r = await c.post(f"/duty/rosters/{rid}/handovers",
                             json={"to_user_id": w.ids["operator"]})
            assert r.status_code == 422 and "oneself" in r.json()["detail"]
            r = await c.post(f"/duty/rosters/{rid}/handovers", json={"to_user_id": 987654})
            assert r.status_code == 404
            h = await ok(await c.post(f"/duty/rosters/{rid}/handovers", json={
                "to_user_id": w.ids["supervisor"], "note": "d-2 fault: company called"}), 201)
            assert h["from_user_name"] == "operator" and h["to_user_name"] == "supervisor"
            assert [(a["id"], a["class"], a["state"], a["site_id"]) for a in h["open_alarms"]] \
                == [(fire, "fire", "active", "s1"), (fault, "fault", "active", "s1")]
            assert all(a["priority"] and a["raised_at"] for a in h["open_alarms"])
            # the record stays as it stood when the alarms move on
            await store.transition(fire, Trigger.ACKNOWLEDGE, actor="user:supervisor")
            listed = await ok(await c.get(f"/duty/rosters/{rid}/handovers"))
            assert listed["count"] == 1 and listed["data"][0]["open_alarms"][0]["state"] == "active"
            log = await ok(await c.get(f"/duty/rosters/{rid}/log"))
            assert [e["kind"] for e in log["data"]] == ["handover", "note"]
            assert "2 open alarms" in log["data"][0]["text"] and "supervisor" in log["data"][0]["text"]
        async with t.client("supervisor") as c:  # supervisors log and hand over too
            await ok(await c.post(f"/duty/rosters/{rid}/log", json={"text": "took over"}), 201)
        async with w.client("installer") as c:
            assert (await c.get(f"/duty/rosters/{rid}/log")).status_code == 403
    finally:
        await pool.close()


async def test_a_roster_outside_the_callers_scope_is_not_found(town: Town) -> None:
    t = town
    township = await roster(t, "township")
    grid = await roster(t, "grid")
    mine = await roster(t, "other_grid")
    async with t.client("grid_op") as c:
        listed = await ok(await c.get("/duty/rosters"))
        assert [r["id"] for r in listed["data"]] == [mine]
        for rid in (township, grid, 987654):
            for path in ("", "/now", "/log", "/shifts", "/handovers", "/open-alarms"):
                r = await c.get(f"/duty/rosters/{rid}{path}")
                assert r.status_code == 404, (rid, path, r.text)
            r = await c.post(f"/duty/rosters/{rid}/log", json={"text": "x"})
            assert r.status_code == 404
        assert (await c.get(f"/duty/rosters/{township}")).json() == \
            (await c.get("/duty/rosters/987654")).json()
        await ok(await c.post(f"/duty/rosters/{mine}/log", json={"text": "quiet night"}), 201)
    async with t.client("township_sup") as c:  # a scoped planner plans inside its scope only
        r = await c.post("/duty/rosters", json={"name": "x", "jurisdiction_id": t.ids["city"]})
        assert r.status_code == 404
        await ok(await c.post("/duty/rosters", json={"name": "g", "jurisdiction_id":
                                                     t.ids["grid"]}), 201)
        assert (await c.get(f"/duty/rosters/{township}")).status_code == 200


async def test_planners_pick_people_by_name_from_the_roster_candidates(town: Town) -> None:
    t = town
    rid = await roster(t)
    async with t.client("supervisor") as c:
        got = await ok(await c.get(f"/duty/rosters/{rid}/candidates"))
    names = {p["name"]: p["role"] for p in got["data"]}
    # unscoped staff and staff attached inside the township; never a grid member, never the
    # county's supervisor (attached above the roster's node)
    assert names["operator"] == "operator" and names["township_sup"] == "supervisor"
    assert "gridder" not in names and "county_sup" not in names
    async with t.client("operator") as c:  # reads rosters, does not plan them
        assert (await c.get(f"/duty/rosters/{rid}/candidates")).status_code == 403
