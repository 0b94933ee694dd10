"""Sites, floors, device registration and import, lifecycle with commissioning tests,
claiming unregistered devices, and telemetry series."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from firetower import db, mqtt_auth
from tests.api.conftest import World

pytestmark = pytest.mark.integration
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


async def test_site_details_and_floor_plan(world: World) -> None:
    plan = {"entrances": [{"name": "Main gate", "latitude": 24.48, "longitude": 118.09}],
            "water_sources": [{"name": "Hydrant H3", "description": "DN100, 0.3 MPa"}],
            "hazards": [{"name": "LPG store", "floor_id": "B1", "x": 0.1, "y": 0.9}],
            "notes": "Key box at the guard house"}
    async with world.client("admin") as c:
        r = await c.post("/sites", json={
            "id": "s3", "name": "Port Warehouse", "address": "1 Quay Rd", "latitude": 24.5,
            "longitude": 118.1, "fire_plan": plan,
            "contacts": [{"name": "Li Wei", "role": "fire-safety manager",
                          "phone": "+86 592 000 0000"}]})
        assert r.status_code == 201, r.text
        assert r.json()["fire_plan"]["hazards"][0]["name"] == "LPG store"
        assert (await c.post("/sites/s3/floors", json={"id": "B1", "name": "Basement",
                                                       "level": -1})).status_code == 201
        r = await c.put("/sites/s3/floors/B1/plan", content=PNG,
                        headers={"Content-Type": "image/png"})
        assert r.status_code == 200 and r.json()["has_plan"]
        img = await c.get(r.json()["plan_url"].removeprefix("/api/v1"))
        assert img.content == PNG and img.headers["content-type"] == "image/png"
        bad = await c.put("/sites/s3/floors/B1/plan", content=b"<html>",
                          headers={"Content-Type": "text/html"})
        assert bad.status_code == 400
        r = await c.patch("/sites/s3", json={"latitude": 100})
        assert r.status_code == 422 and "latitude" in r.json()["detail"]
        assert (await c.post("/sites", json={"id": "s3", "name": "again"})).status_code == 409


async def test_register_shows_credentials_once_and_stores_only_a_hash(world: World) -> None:
    async with world.client("installer") as c:
        r = await c.post("/devices", json={"id": "smk-1", "kind": "smoke_detector",
                                           "site_id": "s1", "location": "2F corridor",
                                           "x": 0.25, "y": 0.5})
        assert r.status_code == 201, r.text
        body = r.json()
        mqtt = body["mqtt"]
        assert mqtt["username"] == "smk-1" and mqtt["topic_prefix"] == "fire/v1/smk-1/"
        assert body["device"]["lifecycle"] == "registered"
        again = (await c.get("/devices/smk-1")).json()
        assert "mqtt" not in again and "password" not in str(again)
    conn = await db.connect(world_db_url(world))
    try:
        stored = await conn.fetchval("SELECT mqtt_password_hash FROM devices WHERE id = 'smk-1'")
    finally:
        await conn.close()
    assert stored.startswith("$7$") and mqtt["password"] not in stored
    assert mqtt_auth.verify_password(mqtt["password"], stored)


def world_db_url(world: World) -> str:
    return world.db_url


async def test_csv_import_is_all_or_nothing(world: World) -> None:
    good = ("id,kind,site_id,location,x,y\n"
            "smk-10,smoke_detector,s1,Lobby,0.1,0.2\n"
            "prs-10,sprinkler_pressure,s1,Pump room,,\n")
    bad = good + "heat-10,toaster,s1,Kitchen,,\nsmk-11,smoke_detector,s2,Other site,,\n"
    async with world.client("installer") as c:
        r = await c.post("/devices/import", content=bad, headers={"Content-Type": "text/csv"})
        assert r.status_code == 422
        errors = r.json()["errors"]
        assert [e["line"] for e in errors] == [4]  # kind fails validation before any insert
        assert (await c.get("/devices")).json()["count"] == 0
        r = await c.post("/devices/import", content=bad.replace("toaster", "heat_detector"),
                         headers={"Content-Type": "text/csv"})
        assert r.status_code == 422
        assert [e["line"] for e in r.json()["errors"]] == [5]  # s2 is outside the scope
        assert "not found" in r.json()["errors"][0]["message"]
        r = await c.post("/devices/import", content=good, headers={"Content-Type": "text/csv"})
        assert r.status_code == 201, r.text
        assert sorted(d["device"]["id"] for d in r.json()["created"]) == ["prs-10", "smk-10"]
        assert all(d["mqtt"]["password"] for d in r.json()["created"])


async def test_csv_import_limits_answer_4xx(world: World) -> None:
    """Issue 13: a field over 128 KB was a 500 (the csv module's own limit). Now: a field over
    1,000 characters, too many rows and a body over the limit are refused with the documented
    error shape, and nothing is imported."""
    csv_type = {"Content-Type": "text/csv"}
    header = "id,kind,site_id,location\n"
    async with world.client("installer") as c:
        for size in (200 * 1024, 1001):  # beyond the csv module's limit, and beyond ours
            body = header + "smk-1,smoke_detector,s1,Lobby\n" + \
                f'smk-2,smoke_detector,s1,"{"x" * size}"\n'
            r = await c.post("/devices/import", content=body, headers=csv_type)
            assert r.status_code == 422, r.text
            assert r.json()["detail"] == "CSV line 3: a field is longer than 1000 characters"
        r = await c.post("/devices/import", content=f'id,kind,site_id,"{"y" * 2000}"\n',
                         headers=csv_type)
        assert r.status_code == 422 and "longer than 1000" in r.json()["detail"]
        rows = "".join(f"smk-{i},smoke_detector,s1,L\n" for i in range(5001))
        r = await c.post("/devices/import", content=header + rows, headers=csv_type)
        assert r.status_code == 422 and r.json()["detail"] == "at most 5000 devices per import"
        big = header + "z" * (2 * 1024 * 1024)
        r = await c.post("/devices/import", content=big, headers=csv_type)
        assert r.status_code == 413 and r.json() == {"detail": "CSV larger than 2097152 bytes"}

        async def chunked():  # no Content-Length: refused while reading
            yield header.encode()
            for _ in range(40):
                yield b"q" * 65536
        r = await c.post("/devices/import", content=chunked(), headers=csv_type)
        assert r.status_code == 413, r.text
        assert (await c.get("/devices")).json()["count"] == 0
        r = await c.post("/devices/import", content=header + "smk-1,smoke_detector,s1,Lobby\n",
                         headers=csv_type)
        assert r.status_code == 201, r.text  # the limits leave a normal import alone


async def test_lifecycle_needs_a_test_signal(world: World) -> None:
    async with world.client("installer") as c:
        await c.post("/devices", json={"id": "pnl-1", "kind": "alarm_panel", "site_id": "s1"})
        r = await c.post("/devices/pnl-1/lifecycle", json={"to": "in_service"})
        assert r.status_code == 409
        r = await c.post("/devices/pnl-1/lifecycle", json={"to": "commissioned"})
        assert r.status_code == 409 and "test signal" in r.json()["detail"]
        test = (await c.post("/devices/pnl-1/tests")).json()
        assert test["status"] == "waiting"
        now = datetime.now(UTC)
        conn = await db.connect(world_db_url(world))
        try:  # what the ingester writes when the panel's test event arrives
            await conn.execute(
                "INSERT INTO events (ts, received_at, device_id, seq, category, active) "
                "VALUES ($1, $2, 'pnl-1', 1, 'test', true)", now, now + timedelta(seconds=1))
        finally:
            await conn.close()
        got = (await c.get(f"/devices/pnl-1/tests/{test['id']}")).json()
        assert got["status"] == "arrived" and got["signal"] == "event:test"
        assert got["latency_s"] is not None
        for step in ("commissioned", "in_service", "commissioned", "in_service",
                     "decommissioned"):
            r = await c.post("/devices/pnl-1/lifecycle", json={"to": step})
            assert r.status_code == 200, (step, r.text)
        assert (await c.post("/devices/pnl-1/lifecycle",
                             json={"to": "in_service"})).status_code == 409


async def test_claim_unregistered_device(world: World) -> None:
    conn = await db.connect(world_db_url(world))
    try:
        now = datetime.now(UTC)
        await conn.execute("INSERT INTO unregistered_devices VALUES "
                           "('ghost-1', $1, $1, 3, 'fire/v1/ghost-1/telemetry')", now)
    finally:
        await conn.close()
    async with world.client("installer") as c:
        listed = (await c.get("/devices/unregistered")).json()
        assert [d["device_id"] for d in listed["data"]] == ["ghost-1"]
        r = await c.post("/devices", json={"id": "ghost-1", "kind": "heat_detector",
                                           "site_id": "s1"})
        assert r.status_code == 201
        assert (await c.get("/devices/unregistered")).json()["count"] == 0


async def test_telemetry_series_from_rollup_and_raw(world: World) -> None:
    async with world.client("admin") as c:
        await c.post("/devices", json={"id": "prs-1", "kind": "sprinkler_pressure",
                                       "site_id": "s1"})
    conn = await db.connect(world_db_url(world))
    base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)
    try:
        await conn.executemany(
            "INSERT INTO telemetry (ts, received_at, device_id, seq, pressure_kpa) "
            "VALUES ($1, $1, 'prs-1', $2, $3)",
            [(base + timedelta(seconds=30 * i), i, 300.0 + (i % 4)) for i in range(240)])
    finally:
        await conn.close()
    async with world.client("operator") as c:
        r = await c.get("/devices/prs-1/telemetry",
                        params={"metric": "pressure_kpa", "bucket_s": 3600})
        assert r.status_code == 200, r.text
        s = r.json()
        assert s["source"] == "telemetry_1m"
        assert sum(p["samples"] for p in s["points"]) == 240
        assert all(p["min"] == 300.0 and p["max"] == 303.0 for p in s["points"])
        raw = (await c.get("/devices/prs-1/telemetry",
                           params={"metric": "pressure_kpa", "bucket_s": 30,
                                   "start": base.isoformat(),
                                   "end": (base + timedelta(minutes=10)).isoformat()})).json()
        assert raw["source"] == "telemetry" and len(raw["points"]) == 20
        r = await c.get("/devices/prs-1/telemetry", params={"metric": "pressure_kpa",
                                                              "bucket_s": 1,
                                                              "start": "2020-01-01T00:00:00Z"})
        assert r.status_code == 422


@pytest.mark.timescale
async def test_telemetry_from_the_continuous_aggregate(timescale_database) -> None:  # type: ignore[no-untyped-def]
    from tests.api.conftest import api_settings_for, seed
    from tests.api.server import running_api

    await timescale_database.reset()
    with running_api(api_settings_for(timescale_database.url)) as server:
        world = await seed(timescale_database.url, server.url)
        async with world.client("admin") as c:
            await c.post("/devices", json={"id": "smk-7", "kind": "smoke_detector",
                                           "site_id": "s1"})
        conn = await db.connect(timescale_database.url)
        base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
        try:
            await conn.executemany(
                "INSERT INTO telemetry (ts, received_at, device_id, seq, obscuration_pct_per_m,"
                " temperature_c) VALUES ($1, $1, 'smk-7', $2, $3, 21)",
                [(base + timedelta(minutes=10 * i), i, 0.1 * (i % 5)) for i in range(144)])
            # Materialise part of it: the rest comes from the real-time part of the aggregate.
            await conn.execute("CALL refresh_continuous_aggregate('telemetry_1m', $1::timestamptz, $2::timestamptz)",
                               base, base + timedelta(hours=12))
        finally:
            await conn.close()
        async with world.client("operator") as c:
            r = await c.get("/devices/smk-7/telemetry", params={
                "metric": "obscuration_pct_per_m", "bucket_s": 3600,
                "start": (base - timedelta(hours=1)).isoformat()})
        assert r.status_code == 200, r.text
        s = r.json()
        assert s["source"] == "telemetry_1m"
        assert sum(p["samples"] for p in s["points"]) == 144
        assert max(p["max"] for p in s["points"]) == pytest.approx(0.4)
