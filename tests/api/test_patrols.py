"""Patrols and inspections through the API, on a real PostgreSQL: a grid's plan, a QR
checkpoint, a grid member's check-ins (flags, idempotent retries, a failed item becoming a
hazard in the same transaction), what is due, missed and covered; the double-random draw, its
re-verification, results that become hazards and publication. Scope: not yours, 404."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest

from firetower import db
from tests.api.conftest import PASSWORD, World

pytestmark = pytest.mark.integration

SHANGHAI = ZoneInfo("Asia/Shanghai")
SITE_1 = (22.5431, 114.0579)
CHECKLIST = [{"id": "exits", "text": "Evacuation exits clear", "category": "evacuation",
              "legal_basis": "《消防法》第二十八条"},
             {"id": "ext", "text": "Extinguishers charged", "category": "fire_equipment"}]


@dataclass
class Town:
    world: World
    ids: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self, who: str | None = None) -> httpx.AsyncClient:
        token = self.tokens.get(who or "") or (self.world.tokens[who] if who else None)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=f"{self.world.url}/api/v1", headers=headers,
                                 timeout=20)


def ok(r: httpx.Response, code: int = 200) -> dict:  # type: ignore[type-arg]
    assert r.status_code == code, (r.status_code, r.text)
    return r.json()  # type: ignore[no-any-return]


@pytest.fixture
async def town(world: World) -> AsyncIterator[Town]:
    """City > two townships > a grid each; s1 (with coordinates, unit u1, key) in g1, s2
    (unit u2) in g2; a grid member of g1 and a township supervisor of t1."""
    t = Town(world)
    async with world.client("admin") as a:
        for key, code, level, parent in (("city", "440300", "city", None),
                                         ("t1", "440303001", "township", "city"),
                                         ("t2", "440304001", "township", "city"),
                                         ("g1", "G-1", "grid", "t1"), ("g2", "G-2", "grid", "t2")):
            t.ids[key] = ok(await a.post("/jurisdictions", json={
                "code": code, "name": key, "level": level,
                "parent_id": t.ids[parent] if parent else None}), 201)["id"]
        for key, code, risk in (("u1", "91350100M000100Y43", "key"),
                                ("u2", "91440300708461136T", "general")):
            t.ids[key] = ok(await a.post("/units", json={
                "credit_code": code, "name": f"Unit {key}", "risk_class": risk}), 201)["id"]
        for site, unit, grid in (("s1", "u1", "g1"), ("s2", "u2", "g2")):
            ok(await a.put(f"/sites/{site}/placement", json={
                "unit_id": t.ids[unit], "jurisdiction_id": t.ids[grid]}))
        ok(await a.patch("/sites/s1", json={"latitude": SITE_1[0], "longitude": SITE_1[1]}))
        for name, role, node in (("gm1", "grid_member", "g1"), ("township", "supervisor", "t1")):
            ok(await a.post("/users", json={"name": name, "role": role, "password": PASSWORD,
                                            "scope_kind": "jurisdiction",
                                            "scope_id": t.ids[node]}), 201)
    async with httpx.AsyncClient(base_url=f"{world.url}/api/v1") as anon:
        for name in ("gm1", "township"):
            t.tokens[name] = ok(await anon.post("/auth/token", data={
                "username": name, "password": PASSWORD}))["access_token"]
    yield t


async def _plan(c: httpx.AsyncClient, grid: int, days_ago: int = 3, **extra: object) -> dict:  # type: ignore[type-arg]
    today = datetime.now(SHANGHAI).date()
    return ok(await c.post("/patrol-plans", json={
        "jurisdiction_id": grid, "name": "Daily round", "every": 1, "unit": "days",
        "time_zone": "Asia/Shanghai", "starts_on": str(today - timedelta(days=days_ago)),
        "checklist": CHECKLIST, **extra}), 201)


async def _hazards(db_url: str) -> list[asyncpg.Record]:
    conn = await db.connect(db_url)
    try:
        return await conn.fetch("SELECT * FROM hazards ORDER BY id")
    finally:
        await conn.close()


async def test_a_patrol_from_plan_to_hazard(town: Town) -> None:
    async with town.client("township") as sup:
        plan = await _plan(sup, town.ids["g1"])
        cp = ok(await sup.post(f"/patrol-plans/{plan['id']}/checkpoints", json={
            "site_id": "s1", "name": "East stair", "location": "floor 2"}), 201)
        assert cp["qr_url"] == f"/console/phone.html#checkin/{cp['token']}"
        assert len(cp["token"]) >= 43
        shown = ok(await sup.get(f"/patrol-plans/{plan['id']}"))
        assert [c["id"] for c in shown["checkpoints"]] == [cp["id"]]
        assert "token" not in shown["checkpoints"][0]
    near = {"lat": SITE_1[0] + 0.0005, "lon": SITE_1[1], "accuracy_m": 30}  # ~55 m north
    async with town.client("gm1") as gm:
        due = ok(await gm.get("/patrols/due"))
        assert [(d["plan_id"], [c["checkpoint_id"] for c in d["checkpoints"]]) for d in due] == \
            [(plan["id"], [cp["id"]])]
        body = {"token": cp["token"], **near, "client_ref": "phone-1:1", "note": "round",
                "results": [{"item_id": "exits", "passed": True},
                            {"item_id": "ext", "passed": False, "note": "two empty"}]}
        first = ok(await gm.post("/patrol-checkins", json=body), 201)
        assert first["flags"] == [] and first["distance_m"] == pytest.approx(55.6, abs=1)
        assert len(first["hazard_ids"]) == 1 and first["actor"] == "user:gm1"
        # the phone retries (no answer came back): the first visit, nothing recorded twice
        again = ok(await gm.post("/patrol-checkins", json=body), 200)
        assert (again["id"], again["hazard_ids"]) == (first["id"], first["hazard_ids"])
        # a second visit in the same period, 2 km away: recorded, flagged, not refused
        far = ok(await gm.post("/patrol-checkins", json={
            "token": cp["token"], "lat": SITE_1[0] + 0.018, "lon": SITE_1[1]}), 201)
        assert far["flags"] == ["repeat", "gps_far"] and far["hazard_ids"] == []
        assert ok(await gm.get("/patrols/due")) == []
        listed = ok(await gm.get("/patrol-checkins", params={"flagged": "true"}))
        assert [k["id"] for k in listed["data"]] == [far["id"]]
        listed = ok(await gm.get("/patrol-checkins", params={"plan_id": plan["id"]}))
        assert [(k["id"], k["hazard_ids"]) for k in listed["data"]] == [
            (far["id"], []), (first["id"], first["hazard_ids"])]
        # the three days before today were not patrolled: missed, and the grid's coverage
        missed = ok(await gm.get("/patrols/missed"))
        assert [m["checkpoint_id"] for m in missed["data"]] == [cp["id"]] * 3
        starts = [datetime.fromisoformat(m["period_start"]).astimezone(SHANGHAI)
                  for m in missed["data"]]
        assert all(s.hour == 0 and s.minute == 0 for s in starts)
        cov = ok(await gm.get("/patrols/coverage"))["grids"]
        assert [(g["jurisdiction_id"], g["expected"], g["visited"], g["missed"],
                 g["flagged_checkins"]) for g in cov] == [(town.ids["g1"], 3, 0, 3, 1)]
    hazards = await _hazards(town.world.db_url)
    assert len(hazards) == 1
    h = hazards[0]
    assert (h["id"], h["source"], h["source_ref"], h["site_id"], h["jurisdiction_id"],
            h["title"], h["category"], h["found_by"]) == (
        first["hazard_ids"][0], "patrol", f"checkin:{first['id']}/ext", "s1", town.ids["g1"],
        "Extinguishers charged", "fire_equipment", "user:gm1")


async def test_check_ins_outside_scope_or_with_a_wrong_token_are_404(town: Town) -> None:
    async with town.client("admin") as a:
        plan2 = await _plan(a, town.ids["g2"])
        cp2 = ok(await a.post(f"/patrol-plans/{plan2['id']}/checkpoints", json={
            "site_id": "s2", "name": "Gate"}), 201)
        plan1 = await _plan(a, town.ids["g1"])
        cp1 = ok(await a.post(f"/patrol-plans/{plan1['id']}/checkpoints", json={
            "site_id": "s1", "name": "Hall"}), 201)
        renewed = ok(await a.post(f"/patrol-checkpoints/{cp1['id']}/token"))
        assert renewed["token"] != cp1["token"]
    async with town.client("gm1") as gm:
        for token in ("no-such-token", cp2["token"], cp1["token"]):  # cp1's old token is dead
            r = await gm.post("/patrol-checkins", json={"token": token})
            assert r.status_code == 404, r.text
            assert r.json() == {"detail": "checkpoint not found"}
        ok(await gm.post("/patrol-checkins", json={"token": renewed["token"]}), 201)
        r = await gm.post("/patrol-checkins", json={
            "token": renewed["token"], "results": [{"item_id": "ghost", "passed": False}]})
        assert r.status_code == 422 and "ghost" in r.text
        r = await gm.post("/patrol-checkins", json={"token": renewed["token"],
                                                    "photos": ["nosuchfile"]})
        assert r.status_code == 404, r.text
        assert (await gm.get(f"/patrol-plans/{plan2['id']}")).status_code == 404
        assert (await gm.post("/patrol-plans", json={})).status_code == 403
    async with town.client("operator") as op:  # reads, never checks in
        r = await op.post("/patrol-checkins", json={"token": renewed["token"]})
        assert r.status_code == 403
    async with town.client("admin") as a:  # a plan with visits is a record: not deleted
        assert (await a.delete(f"/patrol-plans/{plan1['id']}")).status_code == 409
        # nor moved away from its checkpoints' grid
        r = await a.patch(f"/patrol-plans/{plan1['id']}", json={"jurisdiction_id": town.ids["g2"]})
        assert r.status_code == 409, r.text
        assert (await a.post("/inspection-draws", json={
            "jurisdiction_id": 999_999, "title": "x", "targets": 1})).status_code == 404
        assert (await a.delete(f"/patrol-plans/{plan2['id']}")).status_code == 204
    conn = await db.connect(town.world.db_url)
    try:
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("DELETE FROM patrol_checkins")
    finally:
        await conn.close()


async def test_bad_plans_are_refused(town: Town) -> None:
    async with town.client("township") as sup:
        today = str(datetime.now(UTC).date())
        base = {"jurisdiction_id": town.ids["g1"], "name": "x", "every": 1, "unit": "days",
                "starts_on": today}
        r = await sup.post("/patrol-plans", json={**base, "every": 0})
        assert r.status_code == 422 and "every" in r.text
        items = [{"id": f"i{n}", "text": "check"} for n in range(51)]
        r = await sup.post("/patrol-plans", json={**base, "checklist": items})
        assert r.status_code == 422 and "checklist" in r.text
        r = await sup.post("/patrol-plans", json={**base, "time_zone": "Mars/Olympus"})
        assert r.status_code == 422
        # a grid outside the township, a node that is not a grid: 404
        for node in (town.ids["g2"], town.ids["t1"], 999_999):
            r = await sup.post("/patrol-plans", json={**base, "jurisdiction_id": node})
            assert r.status_code == 404, (node, r.text)
        r = await sup.post("/patrol-plans", json={**base, "ends_on": "2000-01-01"})
        assert r.status_code == 409
        r = await sup.post("/patrol-plans", json={**base, "checklist": [
            {"id": "a", "text": "x"}, {"id": "a", "text": "y"}]})
        assert r.status_code == 409
        plan = ok(await sup.post("/patrol-plans", json=base), 201)
        # s2 lies in another grid (and outside the township): 404; the admin gets 409
        r = await sup.post(f"/patrol-plans/{plan['id']}/checkpoints",
                           json={"site_id": "s2", "name": "x"})
        assert r.status_code == 404
        r = await sup.patch(f"/patrol-plans/{plan['id']}", json={"every": 6, "unit": "hours"})
        assert (ok(r)["every"], ok(r)["unit"]) == (6, "hours")
        assert (await sup.patch(f"/patrol-plans/{plan['id']}",
                                json={"ends_on": "2000-01-01"})).status_code == 409
    async with town.client("admin") as a:
        r = await a.post(f"/patrol-plans/{plan['id']}/checkpoints",
                         json={"site_id": "s2", "name": "x"})
        assert r.status_code == 409 and "grid" in r.text


async def _inspectors(c: httpx.AsyncClient, town: Town) -> dict[str, int]:
    ids = {}
    for name, ties in (("Wang", []), ("Li", []), ("Zhao", [town.ids["u1"]])):
        ids[name] = ok(await c.post("/inspectors", json={
            "jurisdiction_id": town.ids["city"], "name": name, "certificate_no": f"ZF-{name}",
            "qualified_until": "2099-12-31", "tied_unit_ids": ties}), 201)["id"]
    ok(await c.post("/inspectors", json={  # qualification lapsed: never drawn
        "jurisdiction_id": town.ids["city"], "name": "Old", "qualified_until": "2001-01-01"}),
       201)
    return ids


async def test_a_double_random_draw_reproduces_and_its_results_become_hazards(
        town: Town) -> None:
    checklist = [{"id": "alarm", "text": "Fire alarm system works",
                  "legal_basis": "GB 25201"}, {"id": "exits", "text": "Exits clear"}]
    async with town.client("admin") as a:
        people = await _inspectors(a, town)
        body = {"jurisdiction_id": town.ids["city"], "title": "May draw", "seed": "2026-05-01",
                "targets": 5, "inspectors_per_target": 2, "checklist": checklist}
        draw = ok(await a.post("/inspection-draws", json=body), 201)
        assert draw["seed"] == "2026-05-01" and draw["algorithm"] == "es-sha256-v1"
        assert {c["id"] for c in draw["candidates"]} == {str(town.ids["u1"]),
                                                        str(town.ids["u2"])}
        weights = {c["id"]: c["weight"] for c in draw["candidates"]}
        assert weights == {str(town.ids["u1"]): 80, str(town.ids["u2"]): 20}
        tasks = draw["tasks"]
        assert sorted(t["unit_id"] for t in tasks) == sorted([town.ids["u1"], town.ids["u2"]])
        for t in tasks:
            assert len(set(t["inspector_ids"])) == 2
            assert set(t["inspector_ids"]) <= set(people.values())
            if t["unit_id"] == town.ids["u1"]:
                assert people["Zhao"] not in t["inspector_ids"]
        check = ok(await a.get(f"/inspection-draws/{draw['id']}/verify"))
        assert check["matches"] and check["recorded"] == check["recomputed"] == draw["result"]
        # the same inputs and seed: the same draw
        again = ok(await a.post("/inspection-draws", json=body), 201)
        assert again["result"] == draw["result"] and again["id"] != draw["id"]
        # a record changed behind the API's back no longer verifies... and cannot be changed
        conn = await db.connect(town.world.db_url)
        try:
            with pytest.raises(asyncpg.RaiseError, match="append-only"):
                await conn.execute("UPDATE inspection_draws SET seed = 'x'")
        finally:
            await conn.close()
        u2_task = next(t for t in tasks if t["unit_id"] == town.ids["u2"])
        tid = u2_task["task_id"]
        assert (await a.post(f"/inspection-tasks/{tid}/publish",
                             json={"summary": "x"})).status_code == 409
        r = await a.post(f"/inspection-tasks/{tid}/results", json={"results": [
            {"item_id": "nope", "passed": True}]})
        assert r.status_code == 409
        done = ok(await a.post(f"/inspection-tasks/{tid}/results", json={
            "findings": "alarm panel silenced by staff", "results": [
                {"item_id": "alarm", "passed": False, "note": "panel silenced", "site_id": "s2"},
                {"item_id": "exits", "passed": True}]}))
        assert done["state"] == "done" and len(done["hazard_ids"]) == 1
        # recorded again (a typo fixed): still one hazard for the item
        done = ok(await a.post(f"/inspection-tasks/{tid}/results", json={
            "findings": "alarm panel silenced", "results": [
                {"item_id": "alarm", "passed": False, "site_id": "s2"},
                {"item_id": "exits", "passed": True}]}))
        assert len(done["hazard_ids"]) == 1
        pub = ok(await a.post(f"/inspection-tasks/{tid}/publish",
                              json={"summary": "Alarm system out of service; ordered fixed."}))
        assert pub["published"] and pub["published_at"]
        assert (await a.post(f"/inspection-tasks/{tid}/publish",
                             json={"summary": "again"})).status_code == 409
        assert (await a.post(f"/inspection-tasks/{tid}/results", json={
            "results": []})).status_code == 409
    hazards = await _hazards(town.world.db_url)
    assert [(h["source"], h["source_ref"], h["site_id"], h["unit_id"], h["legal_basis"])
            for h in hazards] == [("inspection", f"inspection:{tid}/alarm", "s2",
                                   town.ids["u2"], "GB 25201")]
    # the public sees the published result, without signing in, and not the findings
    async with town.client() as anon:
        public = ok(await anon.get("/inspections/published"))
        assert [(p["task_id"], p["unit_name"], p["failed"], p["failed_items"], p["summary"])
                for p in public["data"]] == [
            (tid, "Unit u2", 1, ["Fire alarm system works"],
             "Alarm system out of service; ordered fixed.")]
        assert "findings" not in public["data"][0]
        assert (await anon.get(f"/inspection-tasks/{tid}")).status_code == 401
    # the township (u2 lies outside it) reads the published task, not the unpublished one
    u1_task = next(t for t in tasks if t["unit_id"] == town.ids["u1"])["task_id"]
    async with town.client("township") as sup:
        assert ok(await sup.get(f"/inspection-tasks/{tid}"))["findings"]
        assert (await sup.get(f"/inspection-tasks/{u1_task}")).status_code == 200
        async with town.client("gm1") as gm:
            assert (await gm.get(f"/inspection-tasks/{u1_task}")).status_code == 200
            assert ok(await gm.get(f"/inspection-tasks/{tid}"))["published"]
        # the township draws in its own subtree only
        assert (await sup.post("/inspection-draws", json={
            **body, "jurisdiction_id": town.ids["t2"]})).status_code == 404
        own = ok(await sup.post("/inspection-draws", json={
            **body, "jurisdiction_id": town.ids["t1"], "seed": None}), 201)
        assert len(own["seed"]) == 32
        assert [t["unit_id"] for t in own["tasks"]] == [town.ids["u1"]]
        # the city's inspectors may be drawn in its townships; Zhao never for u1
        assert set(own["tasks"][0]["inspector_ids"]) == {people["Wang"], people["Li"]}
        # the city's draw holds u2, outside the township: not its to read
        assert (await sup.get(f"/inspection-draws/{draw['id']}")).status_code == 404
        assert [d["id"] for d in ok(await sup.get("/inspection-draws"))["data"]] == [own["id"]]
        assert ok(await sup.get(f"/inspection-draws/{own['id']}/verify"))["matches"]
    async with town.client("gm1") as gm:
        assert (await gm.post("/inspection-draws", json=body)).status_code == 403


async def test_the_draw_weights_history_and_leaves_weight_zero_out(town: Town) -> None:
    conn = await db.connect(town.world.db_url)
    try:
        await conn.execute("INSERT INTO devices (id, kind, site_id) VALUES "
                           "('d2', 'smoke_detector', 's2')")
        now = datetime.now(UTC)
        for verdict in ("true_fire", "false_alarm", "false_alarm"):
            await conn.execute(
                "INSERT INTO alarms (device_id, site_id, type, class, priority, state, verdict,"
                " raised_at, last_at) VALUES ('d2', 's2', 'smoke.threshold', 'fire', 1, "
                "'closed', $1, $2, $2)", verdict, now - timedelta(days=3))
    finally:
        await conn.close()
    async with town.client("admin") as a:
        draw = ok(await a.post("/inspection-draws", json={
            "jurisdiction_id": town.ids["city"], "title": "general only", "targets": 2,
            "inspectors_per_target": 1, "risk_weights": {"key": 0}}), 201)
    by_id = {c["id"]: c for c in draw["candidates"]}
    u1, u2 = by_id[str(town.ids["u1"])], by_id[str(town.ids["u2"])]
    assert (u2["fires"], u2["false_alarms"], u2["weight"]) == (1, 2, 2 * (10 + 5 + 2))
    assert (u1["weight"], u1["key"]) == (0, None)
    assert [t["unit_id"] for t in draw["tasks"]] == [town.ids["u2"]]
