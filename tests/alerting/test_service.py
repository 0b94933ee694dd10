"""The alerting service as the ingester's listener, through the real broker and database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from alerting.service import AlertingService
from firetower import db
from firetower.protocol import encode, format_ts, topic_for
from tests.conftest import settings_for
from tests.helpers import eventually

from .common import alarms, register, running_centre

pytestmark = pytest.mark.integration
DEVICES = [("pnl-1", "alarm_panel", None, None), ("smk-1", "smoke_detector", "pnl-1", 1),
           ("smk-2", "smoke_detector", "pnl-1", 1)]


@pytest.fixture
async def running(clean_db, broker):  # type: ignore[no-untyped-def]
    await register(clean_db.url, DEVICES, [
        ("kind", "smoke_detector", "supervision", {"heartbeat_s": 2.0}),
        ("kind", "alarm_panel", "supervision", {"heartbeat_s": 60.0}),
        ("kind", "smoke_detector", "smoke", {"for_s": 1.0, "unconfirmed_for_s": 1.0})])
    async with running_centre(clean_db.url, broker) as run:
        yield run.svc, run.pub, run.conn


def now_ts() -> str:
    return format_ts(datetime.now(UTC))


async def test_panel_fire_event_is_stored_within_milliseconds(running) -> None:  # type: ignore[no-untyped-def]
    _svc, pub, conn = running
    pub.publish(topic_for("pnl-1", "event"), encode(
        {"seq": 1, "ts": now_ts(), "category": "fire", "active": True, "zone": 3, "point": 12,
         "component": "manual_call_point", "location": "2F east stair"}))
    rows = await eventually(lambda: alarms(conn), 30)
    a = rows[0]
    assert (a["class"], a["type"], a["point"], a["state"], a["priority"]) == (
        "fire", "panel.fire", "3/12", "active", 1)
    assert a["confidence"] == pytest.approx(0.9)
    latency = (a["stored_at"] - a["received_at"]).total_seconds()
    assert 0 <= latency < 0.05, latency
    assert a["evidence"]["location"] == "2F east stair"


async def test_smoke_alarm_then_silent_detector_goes_offline_within_deadline_plus_1s(  # type: ignore[no-untyped-def]
        running) -> None:
    _svc, pub, conn = running
    for seq in range(1, 4):
        pub.publish(topic_for("smk-1", "telemetry"), encode(
            {"seq": seq, "ts": now_ts(), "obscuration_pct_per_m": 9.0, "temperature_c": 21.0}))
        await asyncio.sleep(0.6)  # pacing: the smoke lasts past its for_s of 1 s

    async def offline():  # type: ignore[no-untyped-def]
        return [r for r in await alarms(conn)
                if r["type"] == "offline" and r["device_id"] == "smk-1"]

    off = (await eventually(offline, 30))[0]
    fire = [r for r in await alarms(conn) if r["class"] == "fire"]
    assert [(r["device_id"], r["type"]) for r in fire] == [("smk-1", "smoke.threshold")]
    assert off["inhibited_by"] is None
    last_rx = await conn.fetchval(
        "SELECT max(received_at) FROM telemetry WHERE device_id = 'smk-1'")
    late = (off["stored_at"] - last_rx).total_seconds()
    assert 2.0 <= late <= 3.0, late


async def test_registry_overrides_and_modes_reload_on_notify(running) -> None:  # type: ignore[no-untyped-def]
    svc, _pub, conn = running
    await conn.execute("INSERT INTO devices (id, kind, site_id) VALUES ('heat-9',"
                       " 'heat_detector', 's1')")
    await conn.execute("INSERT INTO rule_overrides (scope, target, rule, params) VALUES"
                       " ('device', 'heat-9', 'heat', '{\"fixed_c\": 70.0}')")
    await conn.execute("INSERT INTO modes (scope, target, mode, owner, reason, expires_at)"
                       " VALUES ('site', 's1', 'maintenance', 'op:li', 'works',"
                       " now() + interval '1 hour')")

    async def reloaded():  # type: ignore[no-untyped-def]
        st = svc.engine.devices.get("heat-9")
        return (st is not None and st.params.heat.fixed_c == 70.0
                and svc.engine.modes.windows)

    await eventually(reloaded, 30)


async def test_a_fire_from_a_device_registered_a_moment_ago_is_not_lost(running) -> None:  # type: ignore[no-untyped-def]
    svc, _pub, conn = running
    from firetower.model import Event, EventCategory

    await conn.execute("INSERT INTO devices (id, kind, site_id) VALUES ('pnl-new',"
                       " 'alarm_panel', 's1')")
    now = datetime.now(UTC)
    svc.on_message(Event("pnl-new", 1, now, now, EventCategory.FIRE, True, zone=1, point=1))

    async def stored():  # type: ignore[no-untyped-def]
        return [r for r in await alarms(conn) if r["device_id"] == "pnl-new"]

    assert (await eventually(stored, 30))[0]["type"] == "panel.fire"


async def test_the_writer_thread_option_stores_alarms(clean_db, broker) -> None:  # type: ignore[no-untyped-def]
    from firetower.model import Event, EventCategory

    await register(clean_db.url, DEVICES)
    svc = AlertingService(settings_for(clean_db.url, broker), writer_thread=True)
    await svc.start()
    conn = await db.connect(clean_db.url)
    try:
        now = datetime.now(UTC)
        for i in range(20):
            svc.on_message(Event("pnl-1", i + 1, now, now, EventCategory.FIRE, True, zone=1,
                                 point=i + 1))
        assert svc.writer is not None
        await svc.writer.drain()
        assert len(await alarms(conn)) == 20
    finally:
        await conn.close()
        await svc.stop()
