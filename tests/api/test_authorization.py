"""Every role is refused what it may not do (403), and scoped users cannot see or touch
another site's sites, devices, telemetry or alarms (404, so existence does not leak)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from firetower import db
from firetower.alarm_store import AlarmStore
from tests.api.conftest import USERS, World, raise_alarm

pytestmark = pytest.mark.integration

ALL = set(USERS)


@pytest.fixture
async def objects(world: World) -> AsyncIterator[dict[str, int]]:
    pool = await db.create_pool(world.db_url, max_size=2)
    await pool.execute("INSERT INTO devices (id, kind, site_id) VALUES "
                       "('own-1', 'smoke_detector', 's1'), ('other-1', 'smoke_detector', 's2')")
    store = AlarmStore(pool)
    ids = {"own": await raise_alarm(store, "own-1", "s1"),
           "other": await raise_alarm(store, "other-1", "s2")}
    yield ids
    await pool.close()


# (method, path, json body, roles allowed). Paths use the caller's own site (s1).
ACTIONS = [
    ("GET", "/sites", None, ALL),
    ("POST", "/sites", {"id": "s9", "name": "New"}, {"admin"}),
    ("PATCH", "/sites/s1", {"name": "Renamed"}, {"admin"}),
    ("POST", "/sites/s1/floors", {"id": "F1", "name": "Ground"}, {"admin", "installer"}),
    ("GET", "/devices", None, ALL),
    ("POST", "/devices", {"id": "new-1", "kind": "heat_detector", "site_id": "s1"},
     {"admin", "installer"}),
    ("PATCH", "/devices/own-1", {"location": "hall"}, {"admin", "installer"}),
    ("POST", "/devices/own-1/tests", None, {"admin", "installer"}),
    ("POST", "/devices/own-1/credentials", None, {"admin", "installer"}),
    ("GET", "/devices/unregistered", None, {"admin", "installer"}),
    ("GET", "/devices/own-1/telemetry?metric=temperature_c", None, ALL),
    ("GET", "/alarms", None, ALL),
    ("GET", "/alarms/{own}", None, ALL),
    ("POST", "/alarms/{own}/acknowledge", {}, {"admin", "operator"}),
    ("POST", "/alarms/{own}/assign", {"assignee": None}, {"admin", "operator"}),
    ("POST", "/alarms/{own}/comments", {"text": "x"},
     {"admin", "operator", "installer", "manager"}),
    ("GET", "/rules/overrides", None, {"admin", "operator", "installer", "supervisor"}),
    ("PUT", "/rules/overrides", {"scope": "site", "target": "s1", "rule": "smoke",
                                 "params": {"alarm_pct_per_m": 5.0}}, {"admin"}),
    ("POST", "/modes", {"scope": "device", "target": "own-1", "mode": "test",
                        "reason": "annual test", "minutes": 30},
     {"admin", "operator", "installer"}),
    ("GET", "/stats", None, {"admin", "operator", "supervisor"}),
    ("GET", "/users", None, {"admin"}),
    ("POST", "/users", {"name": "u9", "role": "operator", "password": "long enough pw"},
     {"admin"}),
    ("POST", "/auth/api-keys", {"user_id": 1}, {"admin"}),
    ("GET", "/hazards", None, ALL),
    ("GET", "/hazards/lists", None, ALL),
    ("POST", "/hazards", {"title": "Exit blocked", "site_id": "s1"},
     {"admin", "operator", "supervisor"}),
    ("GET", "/work-orders", None, ALL),
    ("POST", "/maintenance/records", {"site_id": "s1", "kind": "monthly_check",
                                      "done_on": "2026-12-01", "result": "pass"},
     {"admin", "installer"}),
    ("GET", "/maintenance/transmission-tests?month=2026-12", None, ALL),
    ("GET", "/patrol-plans", None, ALL),
    ("POST", "/patrol-plans", {"jurisdiction_id": 1, "name": "x", "every": 1, "unit": "days",
                               "starts_on": "2026-12-01"}, {"admin", "supervisor"}),
    ("POST", "/patrol-checkins", {"token": "x" * 32}, {"admin"}),
    ("GET", "/reports", None, ALL),
    # duty rosters and heightened watch (docs/notifications.md)
    ("GET", "/duty/rosters", None, {"admin", "operator", "supervisor"}),
    ("POST", "/duty/rosters", {"name": "x", "jurisdiction_id": 1}, {"admin", "supervisor"}),
    ("GET", "/watch/board", None, {"admin", "operator", "supervisor", "manager"}),
    ("GET", "/watch/prompts", None, {"admin", "operator", "supervisor", "manager"}),
    ("POST", "/watch/windows", {"name": "x", "starts_at": "2099-12-01T00:00:00Z",
                                "ends_at": "2099-12-02T00:00:00Z", "jurisdiction_id": 987654,
                                "settings": {"heartbeat_s": 60}}, {"admin", "supervisor"}),
    ("POST", "/watch/prompts/987654/read", None, {"admin", "operator", "manager"}),
    # assessment and briefings (docs/assessment.md): stats:read, targets assessment:target
    ("GET", "/assessment/indicators", None, {"admin", "operator", "supervisor"}),
    ("GET", "/assessment/report?node=jurisdiction:987654", None,
     {"admin", "operator", "supervisor"}),
    ("GET", "/assessment/export.csv?node=jurisdiction:987654", None,
     {"admin", "operator", "supervisor"}),
    ("PUT", "/assessment/targets", {"jurisdiction_id": 987654, "year": 2026,
                                    "targets": {"fires": 1}}, {"admin", "supervisor"}),
    ("GET", "/assessment/briefings", None, {"admin", "operator", "supervisor"}),
    ("POST", "/assessment/briefings", {"jurisdiction_id": 987654, "month": "2026-01",
                                       "timezone": "UTC"}, {"admin", "operator", "supervisor"}),
    ("GET", "/assessment/briefings/987654", None, {"admin", "operator", "supervisor"}),
]


@pytest.mark.parametrize("who", sorted(USERS))
async def test_role_matrix(world: World, objects: dict[str, int], who: str) -> None:
    async with world.client(who) as c:
        for method, path, body, allowed in ACTIONS:
            url = path.format(**objects)
            r = await c.request(method, url, json=body)
            if who in allowed:
                assert r.status_code < 400 or r.status_code in (404, 409), \
                    (who, method, url, r.status_code, r.text)
                assert r.status_code != 403, (who, method, url)
            else:
                assert r.status_code == 403, (who, method, url, r.status_code, r.text)
                assert r.json()["detail"].startswith(f"role {USERS[who][0]} may not")


@pytest.mark.parametrize("who", ["installer", "manager"])
async def test_scoped_users_do_not_see_other_sites(world: World, objects: dict[str, int],
                                                   who: str) -> None:
    other = objects["other"]
    async with world.client(who) as c:
        assert [s["id"] for s in (await c.get("/sites")).json()["data"]] == ["s1"]
        assert [d["id"] for d in (await c.get("/devices")).json()["data"]] == ["own-1"]
        assert [a["device_id"] for a in (await c.get("/alarms")).json()["data"]] == ["own-1"]
        assert (await c.get("/alarms", params={"site_id": "s2"})).json()["count"] == 0
        for path in ("/sites/s2", "/sites/s2/health", "/devices/other-1",
                     "/devices/other-1/telemetry?metric=temperature_c",
                     "/devices/other-1/tests", f"/alarms/{other}"):
            r = await c.get(path)
            assert r.status_code == 404, (who, path, r.status_code)
        # Same answer for an id that does not exist at all: nothing leaks.
        assert (await c.get("/devices/no-such")).json() == \
            (await c.get("/devices/other-1")).json()
        writes = [("POST", f"/alarms/{other}/comments", {"text": "x"})]
        if who == "installer":
            writes += [
                ("PATCH", "/devices/other-1", {"location": "x"}),
                ("POST", "/devices/other-1/lifecycle", {"to": "decommissioned"}),
                ("POST", "/devices/other-1/credentials", None),
                ("POST", "/devices/other-1/tests", None),
                ("POST", "/devices", {"id": "sneak-1", "kind": "heat_detector",
                                      "site_id": "s2"}),
                ("PATCH", "/devices/own-1", {"site_id": "s2"}),
                ("POST", "/sites/s2/floors", {"id": "F1", "name": "Ground"}),
                ("POST", "/modes", {"scope": "device", "target": "other-1", "mode": "disabled",
                                    "reason": "x", "minutes": 5}),
                ("POST", "/modes", {"scope": "site", "target": "s2", "mode": "test",
                                    "reason": "x", "minutes": 5}),
            ]
        for method, path, body in writes:
            r = await c.request(method, path, json=body)
            assert r.status_code == 404, (who, method, path, r.status_code, r.text)
    async with world.client("admin") as c:  # nothing changed on the other site
        dev = (await c.get("/devices/other-1")).json()
        assert dev["location"] == "" and dev["lifecycle"] == "registered"
        assert (await c.get("/devices/sneak-1")).status_code == 404
        assert [e["kind"] for e in (await c.get(f"/alarms/{other}")).json()["events"]] == \
            ["raise"]


async def test_operator_sees_everything_but_cannot_register(world: World,
                                                            objects: dict[str, int]) -> None:
    async with world.client("operator") as c:
        assert (await c.get("/alarms")).json()["count"] == 2
        r = await c.post(f"/alarms/{objects['other']}/acknowledge", json={})
        assert r.status_code == 200
