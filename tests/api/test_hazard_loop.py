"""The closed loop end to end, on the real broker, ingester, rule engine, PostgreSQL and API:

1. a panel reports a fault → the sweep opens a work order for the site's maintenance company →
   the company responds and reports the repair (the order stays open) → the panel reports the
   fault gone → the order closes by itself;
2. a device offline for more than 24 h → a hazard in its grid → the grid member rectifies with a
   photo → the township verifies → closed;
3. an overdue hazard escalates to the township, then to the county, once per deadline, and
   becomes listed for supervision (挂牌督办) at the county;
plus the refusals: wrong steps (409 with the allowed ones), roles (403), scope (404), deadlines
in the past (422)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest

from firetower import db
from firetower.alarm_store import AlarmKey, AlarmStore, Occurrence
from firetower.alarms import AlarmClass
from firetower.broker import Broker
from hazards.policy import HazardPolicy
from hazards.sweep import sweep
from tests.api.conftest import PASSWORD, World
from tests.api.pipeline import pipeline, png
from tests.conftest import Database
from tests.helpers import eventually

pytestmark = pytest.mark.integration

TODAY = date.today()
NOW_POLICY = HazardPolicy(work_order_grace_s=0)


async def ok(r: httpx.Response, status: int = 200) -> dict:  # type: ignore[type-arg]
    assert r.status_code == status, (r.request.method, r.request.url, r.text)
    return r.json()  # type: ignore[no-any-return]


@dataclass
class Town:
    """city → county (district) → township → grid, a unit in the grid owning site s1, and the
    people of the loop: the grid member, the township and county supervisors, the company."""
    world: World
    ids: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self, who: str) -> httpx.AsyncClient:
        token = self.tokens.get(who) or self.world.tokens[who]
        return httpx.AsyncClient(base_url=f"{self.world.url}/api/v1",
                                 headers={"Authorization": f"Bearer {token}"}, timeout=10)


async def build_town(world: World) -> Town:
    t = Town(world)
    async with world.client("admin") as a:
        for key, code, name, level, parent in (
                ("city", "350100", "Fuzhou", "city", None),
                ("county", "350102", "Gulou", "district", "city"),
                ("township", "350102001", "Dongjie", "township", "county"),
                ("grid", "G-350102001-01", "Grid 1", "grid", "township"),
                ("other_grid", "G-350102001-02", "Grid 2", "grid", "township")):
            t.ids[key] = (await ok(await a.post("/jurisdictions", json={
                "code": code, "name": name, "level": level,
                "parent_id": t.ids[parent] if parent else None}), 201))["id"]
        t.ids["unit"] = (await ok(await a.post("/units", json={
            "credit_code": "91350100M000100Y43", "name": "Harbour Tower Co.",
            "risk_class": "key", "grid_id": t.ids["grid"]}), 201))["id"]
        await ok(await a.put("/sites/s1/placement", json={
            "unit_id": t.ids["unit"], "jurisdiction_id": t.ids["grid"]}))
        await ok(await a.put("/sites/s2/placement", json={
            "unit_id": t.ids["unit"], "jurisdiction_id": t.ids["other_grid"]}))
        t.ids["company"] = (await ok(await a.post("/companies", json={
            "credit_code": "91440300708461136T", "name": "Keep-Safe Maintenance"}), 201))["id"]
        await ok(await a.post("/contracts", json={
            "company_id": t.ids["company"], "site_id": "s1",
            "starts_on": str(TODAY - timedelta(days=10)),
            "ends_on": str(TODAY + timedelta(days=300))}), 201)
        people = {"gridder": ("grid_member", "jurisdiction", "grid"),
                  "township_sup": ("supervisor", "jurisdiction", "township"),
                  "county_sup": ("supervisor", "jurisdiction", "county"),
                  "other_gridder": ("grid_member", "jurisdiction", "other_grid"),
                  "unit_staff": ("site_manager", "unit", "unit"),
                  "keep_safe": ("installer", "company", "company")}
        for name, (role, kind, target) in people.items():
            await ok(await a.post("/users", json={
                "name": name, "role": role, "password": PASSWORD, "scope_kind": kind,
                "scope_id": t.ids[target]}), 201)
    async with httpx.AsyncClient(base_url=f"{world.url}/api/v1") as anon:
        for name in people:
            r = await anon.post("/auth/token", data={"username": name, "password": PASSWORD})
            t.tokens[name] = (await ok(r))["access_token"]
    return t


@pytest.fixture
async def town(world: World) -> AsyncIterator[Town]:
    yield await build_town(world)


async def upload_photo(c: httpx.AsyncClient, site_id: str | None = None) -> str:
    data = {"site_id": site_id} if site_id else {}
    r = await c.post("/files", files={"file": ("after.png", png(64, 48), "image/png")}, data=data)
    return str((await ok(r, 201))["id"])


async def test_a_fault_opens_a_work_order_that_the_device_closes(clean_db: Database,
                                                                 broker: Broker) -> None:
    async with pipeline(clean_db, broker, ["pnl-7"]) as p:
        t = await build_town(p.world)
        pool = await db.create_pool(clean_db.url, max_size=2)
        try:
            p.event("pnl-7", "fault", True, zone=2, point=5)
            alarm = await eventually(lambda: pool.fetchrow(
                "SELECT id, class, state FROM alarms WHERE device_id = 'pnl-7'"), what="fault")
            assert alarm["class"] == "fault"
            report = await sweep(pool, policy=NOW_POLICY)
            assert len(report.orders_opened) == 1
            again = await sweep(pool, policy=NOW_POLICY)
            assert again.orders_opened == []  # one order per alarm, whatever the sweeps
            oid = report.orders_opened[0]
            async with t.client("keep_safe") as k:
                queue = await ok(await k.get("/work-orders", params={"open": "true"}))
                assert [o["id"] for o in queue["data"]] == [oid]
                order = queue["data"][0]
                assert order["company_id"] == t.ids["company"] and order["alarm_id"] == alarm["id"]
                assert order["allowed"] == ["respond", "repair", "decide"]
                await ok(await k.post(f"/work-orders/{oid}/steps", json={"trigger": "respond"}))
                # the company may not close it by decision, nor by its word alone
                r = await k.post(f"/work-orders/{oid}/steps",
                                 json={"trigger": "decide", "note": "done"})
                assert r.status_code == 403
                photo = await upload_photo(k, "s1")
                done = await ok(await k.post(f"/work-orders/{oid}/steps", json={
                    "trigger": "repair", "note": "replaced the loop isolator", "files": [photo]}))
                assert done["state"] == "repaired" and done["files"] == [photo]
            assert (await sweep(pool, policy=NOW_POLICY)).orders_closed == []  # still faulty
            p.event("pnl-7", "fault", False, zone=2, point=5)
            await eventually(lambda: pool.fetchval(
                "SELECT cleared_at FROM alarms WHERE id = $1", alarm["id"]), what="clear")
            closed = await sweep(pool, policy=NOW_POLICY)
            assert closed.orders_closed == [oid]
            async with t.client("admin") as a:
                final = await ok(await a.get(f"/work-orders/{oid}"))
            assert final["state"] == "closed" and final["closed_by"] == "device"
            assert [e["kind"] for e in final["events"]] == [
                "open", "respond", "repair", "device_normal"]
            # a second fault of the same point links to the first order (a repeat fault)
            p.event("pnl-7", "fault", True, zone=2, point=5)

            async def raised_again() -> bool:
                return await pool.fetchval(
                    "SELECT count(*) FROM alarms WHERE device_id = 'pnl-7'") == 2

            await eventually(raised_again, what="the second fault")
            repeat = (await sweep(pool, policy=NOW_POLICY)).orders_opened
            assert len(repeat) == 1
            assert await pool.fetchval("SELECT repeat_of FROM work_orders WHERE id = $1",
                                       repeat[0]) == oid
            # the other unit's grid member, the unit's staff of another unit: not theirs
            async with t.client("other_gridder") as o:
                assert (await o.get(f"/work-orders/{oid}")).status_code == 404
        finally:
            await pool.close()


async def _offline_for(pool: object, device: str, site: str, hours: float) -> int:
    store = AlarmStore(pool)  # type: ignore[arg-type]
    since = datetime.now(UTC) - timedelta(hours=hours)
    change = await store.raise_or_recur(Occurrence(
        AlarmKey(device, "", "offline"), AlarmClass.OFFLINE, since, site_id=site,
        received_at=since, reason="test: no heartbeat"))
    assert change is not None and change.alarm_id is not None
    return change.alarm_id


async def test_an_offline_device_becomes_a_hazard_rectified_in_the_grid(town: Town) -> None:
    pool = await db.create_pool(town.world.db_url, max_size=2)
    try:
        await pool.execute("INSERT INTO devices (id, kind, site_id) VALUES "
                           "('smk-1', 'smoke_detector', 's1'), ('smk-2', 'smoke_detector', 's1')")
        long_ago = await _offline_for(pool, "smk-1", "s1", 25)
        await _offline_for(pool, "smk-2", "s1", 2)  # not yet 24 h: no hazard
        first = await sweep(pool)
        again = await sweep(pool)
        assert len(set(first.hazards_recorded)) == 1 and again.hazards_recorded == []
        hid = first.hazards_recorded[0]
    finally:
        await pool.close()
    async with town.client("gridder") as g:
        mine = await ok(await g.get("/hazards", params={"open": "true"}))
        assert [h["id"] for h in mine["data"]] == [hid]
        h = mine["data"][0]
        assert h["source"] == "rule" and h["source_ref"] == f"rule:offline:{long_ago}"
        assert h["owner_id"] == town.ids["grid"] and h["jurisdiction_id"] == town.ids["grid"]
        assert h["unit_id"] == town.ids["unit"] and h["allowed"] == ["notify", "fix_on_spot"]
        # a wrong step: 409 naming the allowed ones
        r = await g.post(f"/hazards/{hid}/steps", json={"trigger": "receipt"})
        assert r.status_code == 409 and "allowed: notify, fix_on_spot" in r.json()["detail"]
        r = await g.post(f"/hazards/{hid}/steps", json={"trigger": "close"})
        assert r.status_code == 403  # not the grid member's step at all
        told = await ok(await g.post(f"/hazards/{hid}/steps", json={
            "trigger": "notify", "note": "told the unit's manager Lin by phone"}))
        # what the grid member may do now, and what each step needs, for the pages to show
        assert told["my_steps"] == [
            {"trigger": "receipt", "needs_note": False, "photo": "none"},
            {"trigger": "submit", "needs_note": True, "photo": "required"}]
        assert told["site_name"] == "Harbour Tower" and told["owner_level"] == "grid"
        # a rectification without a photo is refused; with one it is submitted
        r = await g.post(f"/hazards/{hid}/steps", json={"trigger": "submit", "note": "new battery"})
        assert r.status_code == 422 and "photo" in r.json()["detail"]
        photo = await upload_photo(g, "s1")
        sub = await ok(await g.post(f"/hazards/{hid}/steps", json={
            "trigger": "submit", "note": "replaced the detector's battery", "files": [photo]}))
        assert sub["state"] == "submitted" and sub["files_after"] == [photo]
        # the grid member may not verify its own work
        r = await g.post(f"/hazards/{hid}/steps", json={"trigger": "verify"})
        assert r.status_code == 403
    async with town.client("other_gridder") as o:
        assert (await o.get(f"/hazards/{hid}")).status_code == 404
        assert (await ok(await o.get("/hazards")))["count"] == 0
    async with town.client("township_sup") as s:
        ver = await ok(await s.post(f"/hazards/{hid}/steps", json={"trigger": "verify",
                                                                  "note": "checked on site"}))
        assert ver["state"] == "verified"
        assert [x["trigger"] for x in ver["my_steps"]] == ["close"]
        closed = await ok(await s.post(f"/hazards/{hid}/steps", json={"trigger": "close"}))
        assert closed["state"] == "closed" and closed["closed_at"] is not None
        assert [e["kind"] for e in closed["events"]] == [
            "found", "notify", "submit", "verify", "close"]
        assert [e["actor"] for e in closed["events"]][1:] == [
            "user:gridder", "user:gridder", "user:township_sup", "user:township_sup"]
        lists = await ok(await s.get("/hazards/lists", params={"by": "jurisdiction"}))
        row = next(r for r in lists["data"] if r["key"] == str(town.ids["grid"]))
        assert (row["total"], row["closed"], row["closure_rate"]) == (1, 1, 1.0)


async def test_an_overdue_hazard_escalates_to_the_township_then_the_county(town: Town) -> None:
    deadline = datetime.now(UTC) + timedelta(hours=1)
    async with town.client("gridder") as g:
        h = await ok(await g.post("/hazards", json={
            "title": "Fire exit blocked by goods", "site_id": "s1", "category": "evacuation",
            "legal_basis": "《消防法》第二十八条", "deadline": deadline.isoformat()}), 201)
        assert h["owner_id"] == town.ids["grid"] and not h["listed"]
    pool = await db.create_pool(town.world.db_url, max_size=2)
    try:
        assert (await sweep(pool)).escalated == []  # not yet due
        late = deadline + timedelta(minutes=5)
        first = await sweep(pool, now=late)
        assert first.escalated == [h["id"]]
        assert (await sweep(pool, now=late + timedelta(hours=1))).escalated == []  # once
        row = await pool.fetchrow("SELECT owner_id, deadline, listed FROM hazards WHERE id = $1",
                                  h["id"])
        assert row is not None
        assert row["owner_id"] == town.ids["township"] and not row["listed"]
        assert row["deadline"] == late + timedelta(days=7)
        second = await sweep(pool, now=row["deadline"] + timedelta(seconds=1))
        assert second.escalated == [h["id"]]
        row = await pool.fetchrow(
            "SELECT owner_id, listed, listed_by_id, escalations FROM hazards WHERE id = $1", h["id"])
        assert row is not None
        assert (row["owner_id"], row["listed"], row["listed_by_id"], row["escalations"]) == (
            town.ids["county"], True, town.ids["county"], 2)
    finally:
        await pool.close()
    async with town.client("county_sup") as c:
        listed = await ok(await c.get("/hazards", params={"listed": "true"}))
        assert [x["id"] for x in listed["data"]] == [h["id"]]
        detail = await ok(await c.get(f"/hazards/{h['id']}"))
        assert [e["kind"] for e in detail["events"]] == ["found", "escalate", "escalate", "list"]


async def test_refusals(town: Town) -> None:
    async with town.client("gridder") as g:
        past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        r = await g.post("/hazards", json={"title": "x", "site_id": "s1", "deadline": past})
        assert r.status_code == 422 and "past" in r.json()["detail"]
        # a site, unit or node outside the grid member's scope: 404
        r = await g.post("/hazards", json={"title": "x", "site_id": "s2"})
        assert r.status_code == 404
        r = await g.post("/hazards", json={"title": "x", "jurisdiction_id": town.ids["other_grid"]})
        assert r.status_code == 404
        r = await g.post("/hazards", json={"title": "x"})
        assert r.status_code == 422
        # a file that does not exist, or another grid's, is refused alike (ids do not leak)
        async with town.client("other_gridder") as o:
            theirs = await upload_photo(o, "s2")
        for f in ("A" * 22, theirs):
            r = await g.post("/hazards", json={"title": "x", "site_id": "s1", "files": [f]})
            assert r.status_code == 422 and f"file {f} not found" in r.json()["detail"], r.text
        # a major hazard is listed at once by the county
        major = await ok(await g.post("/hazards", json={
            "title": "Sprinkler main valve closed", "site_id": "s1", "severity": "major"}), 201)
        assert major["listed"] and major["listed_by_id"] == town.ids["county"]
    async with town.client("unit_staff") as u:  # the unit signs the receipt, may not verify
        hid = major["id"]
        r = await u.post(f"/hazards/{hid}/steps", json={"trigger": "receipt"})
        assert r.status_code == 409  # not notified yet
        r = await u.post(f"/hazards/{hid}/steps", json={"trigger": "notify"})
        assert r.status_code == 403
    async with town.client("admin") as a:
        await ok(await a.post(f"/hazards/{hid}/steps", json={"trigger": "notify"}))
    async with town.client("unit_staff") as u:
        rec = await ok(await u.post(f"/hazards/{hid}/steps", json={"trigger": "receipt"}))
        assert rec["state"] == "rectifying" and rec["receipt_at"] is not None
    async with town.client("admin") as a:  # the one who submits does not verify
        photo = await upload_photo(a, "s1")
        await ok(await a.post(f"/hazards/{hid}/steps", json={
            "trigger": "submit", "note": "valve opened and chained", "files": [photo]}))
        r = await a.post(f"/hazards/{hid}/steps", json={"trigger": "verify"})
        assert r.status_code == 409 and "someone other" in r.json()["detail"]
        r = await a.post(f"/hazards/{hid}/steps", json={"trigger": "reject"})
        assert r.status_code == 422  # a rejection says why
    async with town.client("township_sup") as s:
        back = await ok(await s.post(f"/hazards/{hid}/steps", json={
            "trigger": "reject", "note": "the chain is missing"}))
        assert back["state"] == "rectifying"
        r = await s.put(f"/hazards/{hid}/deadline", json={
            "deadline": (datetime.now(UTC) - timedelta(days=1)).isoformat(), "note": "x"})
        assert r.status_code == 422
        moved = await ok(await s.put(f"/hazards/{hid}/deadline", json={
            "deadline": (datetime.now(UTC) + timedelta(days=40)).isoformat(),
            "note": "parts on order"}))
        assert moved["events"][-1]["kind"] == "deadline"


async def test_maintenance_records_and_simulated_fire_transmissions(town: Town) -> None:
    """GB 25201 records by the company; GB 50440's >= 2 simulated fire transmissions a month per
    panel, counted from the fire alarms raised in test mode (and only those)."""
    pool = await db.create_pool(town.world.db_url, max_size=2)
    try:
        await pool.execute("INSERT INTO devices (id, kind, site_id) VALUES "
                           "('pnl-a', 'alarm_panel', 's1'), ('pnl-b', 'alarm_panel', 's1'),"
                           " ('smk-a', 'smoke_detector', 's1')")
        month = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
        for dev, mode, cls, at in (("pnl-a", "test", "fire", month),
                                   ("pnl-a", "test", "fire", month + timedelta(days=3)),
                                   ("pnl-b", "test", "fire", month),
                                   ("pnl-b", "normal", "fire", month),        # a real one
                                   ("pnl-b", "test", "fault", month),         # not a fire
                                   ("pnl-b", "test", "fire", month - timedelta(days=30))):
            await pool.execute(
                "INSERT INTO alarms (device_id, site_id, type, class, priority, state, mode,"
                " raised_at, last_at) VALUES ($1, 's1', 'panel.fire', $2, 1, 'closed', $3, $4, $4)",
                dev, cls, mode, at)
    finally:
        await pool.close()
    async with town.client("keep_safe") as k:
        report = await ok(await k.get("/maintenance/transmission-tests",
                                      params={"month": "2026-11"}))
        assert {d["device_id"]: (d["tests"], d["meets"]) for d in report["data"]} == {
            "pnl-a": (2, True), "pnl-b": (1, False)}
        assert report["failing"] == 1
        r = await k.post("/maintenance/records", json={
            # two days ahead, read now: future in any time zone, and across a midnight since
            # the module was imported (a CI run that crossed one failed here)
            "site_id": "s1", "kind": "monthly_check",
            "done_on": str(date.today() + timedelta(days=2)),
            "result": "pass"})
        assert r.status_code == 422 and "future" in r.json()["detail"]
        rec = await ok(await k.post("/maintenance/records", json={
            "site_id": "s1", "kind": "yearly_test", "done_on": str(TODAY), "result": "fail",
            "note": "two detectors failed the smoke test"}), 201)
        assert rec["company_id"] == town.ids["company"] and rec["recorded_by"] == "user:keep_safe"
        r = await k.post("/maintenance/records", json={
            "site_id": "s2", "kind": "monthly_check", "done_on": str(TODAY), "result": "pass"})
        assert r.status_code == 404  # not a site of its contracts
    async with town.client("unit_staff") as u:
        listed = await ok(await u.get("/maintenance/records", params={"site_id": "s1"}))
        assert [x["id"] for x in listed["data"]] == [rec["id"]]
