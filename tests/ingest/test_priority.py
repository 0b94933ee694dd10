"""Fire first at the broker: a fire event published behind a backlog of telemetry queued for
the ingester's session is taken (and stored) before the backlog, because events and status
have their own persistent session; nothing is lost or stored twice (P = 1 subscribes fire/#
on the bulk session too, whose copies of events are dropped)."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from firetower.broker import Broker
from firetower.protocol import encode, format_ts, topic_for
from ingest.service import Ingester
from tests.conftest import Database, settings_for
from tests.helpers import eventually, fleet, publish, register, telemetry_stream

pytestmark = pytest.mark.integration
BACKLOG_PER_DEVICE = 150
DEVICES = 200


async def _count(url: str, sql: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def test_fire_overtakes_a_telemetry_backlog(clean_db: Database, own_broker: Broker) -> None:
    devices = fleet(DEVICES)
    panel = next(d for d, k in devices if k == "alarm_panel")
    await register(clean_db.url, devices)
    settings = settings_for(clean_db.url, own_broker, ingest_batch_size=500)
    ingester = Ingester(settings)
    await ingester.start()  # creates the persistent sessions and their subscriptions
    await ingester.stop()

    backlog = telemetry_stream(devices, BACKLOG_PER_DEVICE)
    fire = encode({"seq": 10**6, "ts": format_ts(datetime.now(UTC)), "category": "fire",
                   "active": True, "zone": 1, "point": 1})
    # queued while no ingester runs: 30,000 readings, then the fire
    assert await publish(own_broker.port, [*backlog, (topic_for(panel, "event"), fire)]) \
        == len(backlog) + 1

    ingester = Ingester(settings)
    await ingester.start()
    try:
        await eventually(lambda: _count(clean_db.url, "SELECT count(*) FROM events"), 20, 0.005)
        telemetry_when_fire_stored = await _count(clean_db.url, "SELECT count(*) FROM telemetry")
        await eventually(lambda: _at_least(clean_db.url, len(backlog)), 60)
    finally:
        await ingester.stop()
    # The fire did not wait for the 30,000 readings queued before it.
    assert telemetry_when_fire_stored < len(backlog) // 2, telemetry_when_fire_stored
    assert await _count(clean_db.url, "SELECT count(*) FROM events") == 1
    assert await _count(clean_db.url, "SELECT count(*) FROM telemetry") == len(backlog)
    assert ingester.totals["duplicates"] == 0


async def _at_least(url: str, n: int) -> bool:
    return await _count(url, "SELECT count(*) FROM telemetry") >= n
