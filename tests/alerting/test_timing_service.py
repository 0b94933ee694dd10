"""Through the real broker, ingester, alerting service, database and API: an override that
shortens a device's heartbeat bites at once (not at the old deadline), the offline alarm is
dated when it was decided, and device and site health follow supervision."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from firetower.protocol import encode, format_ts, topic_for
from tests.api.conftest import api, world  # noqa: F401  (fixtures: the API on this database)
from tests.helpers import eventually

from .common import register, running_centre

pytestmark = pytest.mark.integration
DEVICES = [("pnl-1", "alarm_panel", None, None), ("smk-1", "smoke_detector", "pnl-1", 1),
           ("smk-2", "smoke_detector", "pnl-1", 1)]


def now_ts() -> str:
    return format_ts(datetime.now(UTC))


@pytest.fixture
async def centre(world, registered, clean_db, broker):  # type: ignore[no-untyped-def]  # noqa: F811
    """Ingester and alerting service on the API's database, with the devices registered;
    smk-1 and smk-2 report once and say they are online."""
    async with running_centre(clean_db.url, broker) as run:
        pub, conn = run.pub, run.conn
        for dev in ("smk-1", "smk-2"):
            pub.publish(topic_for(dev, "status"), encode(
                {"seq": 1, "ts": now_ts(), "online": True}))
            pub.publish(topic_for(dev, "telemetry"), encode(
                {"seq": 2, "ts": now_ts(), "obscuration_pct_per_m": 0.2, "temperature_c": 21.0,
                 "co_ppm": 0.0}))
        await eventually(lambda: conn.fetchval(
            "SELECT count(*) = 2 FROM devices WHERE online AND id LIKE 'smk-%'"), 30)
        async with world.client("operator") as client:
            yield pub, conn, client


async def offline(conn):  # type: ignore[no-untyped-def]
    return await conn.fetchrow("SELECT * FROM alarms WHERE type = 'offline'")


async def assert_health_follows_supervision(client) -> None:  # type: ignore[no-untyped-def]
    device = (await client.get("/devices/smk-1")).json()
    assert device["online"] is False  # its last status said online; supervision says no
    assert (await client.get("/devices/smk-2")).json()["online"] is True
    health = (await client.get("/sites/s1/health")).json()
    assert (health["online"], health["offline"]) == (1, 1), health
    listed = {d["id"]: d["online"] for d in
              (await client.get("/devices", params={"site_id": "s1"})).json()["data"]}
    assert listed["smk-1"] is False and listed["smk-2"] is True
    stats = (await client.get("/stats")).json()  # the panel has never said a word
    assert (stats["devices_in_service"], stats["devices_online"]) == (3, 1), stats


@pytest.fixture
async def registered(world, clean_db, request):  # type: ignore[no-untyped-def]  # noqa: F811
    """The devices (default heartbeat: 300 s) and the overrides the test names."""
    await register(clean_db.url, DEVICES, getattr(request, "param", []))


async def test_shortened_heartbeat_bites_at_once_and_health_follows_supervision(  # type: ignore[no-untyped-def]
        centre) -> None:
    pub, conn, client = centre
    assert (await client.get("/devices/smk-1")).json()["online"] is True
    health = (await client.get("/sites/s1/health")).json()
    assert (health["online"], health["offline"]) == (2, 0), health

    await asyncio.sleep(1.5)  # on purpose: smk-1 is now silent for 1.5 s
    changed = datetime.now(UTC)
    await conn.execute(
        "INSERT INTO rule_overrides (scope, target, rule, params)"
        " VALUES ('device', 'smk-1', 'supervision', '{\"heartbeat_s\": 1.0}')")
    alarm = await eventually(lambda: offline(conn), 30)  # the old deadline is 300 s away
    assert alarm["device_id"] == "smk-1"
    late = (alarm["raised_at"] - changed).total_seconds()
    assert 0.0 <= late < 2.0, late  # at once, and dated when decided ...
    assert alarm["evidence"]["deadline"] < changed.timestamp()  # ... not at the deadline
    await assert_health_follows_supervision(client)

    pub.publish(topic_for("smk-1", "telemetry"), encode(  # back: cleared, online again
        {"seq": 3, "ts": now_ts(), "obscuration_pct_per_m": 0.2, "temperature_c": 21.0}))

    async def back():  # type: ignore[no-untyped-def]
        return (await client.get("/devices/smk-1")).json()["online"] is True

    await eventually(back, 30)


@pytest.mark.parametrize("registered", [
    [("device", "smk-1", "supervision", {"heartbeat_s": 1.0})]], indirect=True)
async def test_a_silent_device_is_not_online_while_its_offline_alarm_is_open(  # type: ignore[no-untyped-def]
        centre) -> None:
    _pub, conn, client = centre
    alarm = await eventually(lambda: offline(conn), 30)
    assert alarm["device_id"] == "smk-1"
    await assert_health_follows_supervision(client)


@pytest.mark.parametrize("registered", [
    [("device", "smk-1", "smoke", {"for_s": 1.0})]], indirect=True)
async def test_a_timer_raised_fire_carries_its_clocks_into_the_compliance_limits(  # type: ignore[no-untyped-def]
        centre) -> None:
    pub, conn, client = centre
    sent = datetime.now(UTC)  # smoke with CO (confirmed), once; the 1 s hold ends by timer
    pub.publish(topic_for("smk-1", "telemetry"), encode(
        {"seq": 3, "ts": format_ts(sent), "obscuration_pct_per_m": 9.0, "temperature_c": 21.0,
         "co_ppm": 40.0}))

    async def fire():  # type: ignore[no-untyped-def]
        return await conn.fetchrow("SELECT * FROM alarms WHERE class = 'fire'")

    alarm = await eventually(fire, 30)
    assert alarm["evidence"]["by"] == "timer"
    assert abs((alarm["device_ts"] - sent).total_seconds()) < 0.001
    rx = await conn.fetchval("SELECT received_at FROM telemetry WHERE device_id = 'smk-1'"
                             " AND seq = 3")
    assert alarm["received_at"] == rx

    async def judged():  # type: ignore[no-untyped-def]  # shown to an operator (recorded after)
        detail = (await client.get(f"/alarms/{alarm['id']}")).json()
        limits = {c["limit"]: c["status"] for c in detail["limits"]}
        return limits if "pending" not in limits.values() else None

    assert await eventually(judged, 30) == {"gb50440_display_20s": "met",
                                          "nfpa72_display_90s": "met"}
