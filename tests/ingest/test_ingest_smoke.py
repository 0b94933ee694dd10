"""The ingester against the real broker and database: accepted, rejected and unknown."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from firetower import db
from firetower.mqtt import AsyncMqtt
from firetower.protocol import encode, format_ts, topic_for
from ingest.service import Ingester
from tests.conftest import settings_for
from tests.helpers import eventually

pytestmark = pytest.mark.integration


async def register(url: str, devices: list[tuple[str, str]]) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("INSERT INTO sites (id, name) VALUES ('s1', 'Site 1') "
                           "ON CONFLICT DO NOTHING")
        await conn.executemany("INSERT INTO devices (id, kind, site_id) VALUES ($1, $2, 's1')",
                               devices)
    finally:
        await conn.close()


async def test_accepts_rejects_and_records_unknown(clean_db, own_broker) -> None:
    broker = own_broker  # its own: retained messages of other tests would count here
    await register(clean_db.url, [("smk-1", "smoke_detector"), ("pnl-1", "alarm_panel")])
    ingester = Ingester(settings_for(clean_db.url, broker))
    await ingester.start()
    pub = AsyncMqtt(broker.host if hasattr(broker, "host") else "127.0.0.1", broker.port)
    await pub.start()
    now = format_ts(datetime.now(UTC))
    good = encode({"seq": 1, "ts": now, "obscuration_pct_per_m": 0.4, "temperature_c": 21.5,
                   "vendor_rssi": -71})
    pub.publish(topic_for("smk-1", "telemetry"), good)
    pub.publish(topic_for("smk-1", "telemetry"), good)  # duplicate
    pub.publish(topic_for("pnl-1", "event"), encode(
        {"seq": 7, "ts": now, "category": "fire", "active": True, "zone": 3, "point": 12,
         "component": "manual_call_point", "location": "2F east stair"}))
    pub.publish(topic_for("smk-1", "telemetry"), b"{not json")
    pub.publish(topic_for("smk-1", "telemetry"), encode({"seq": 2, "ts": now,
                                                         "obscuration_pct_per_m": 900,
                                                         "temperature_c": 20}))
    pub.publish("fire/v1/bad id/telemetry", good)
    pub.publish(topic_for("ghost-9", "telemetry"), good)
    conn = await db.connect(clean_db.url)
    try:
        async def settled():
            counts = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM telemetry) t, (SELECT count(*) FROM events) e, "
                "(SELECT count(*) FROM rejects) r, "
                "(SELECT coalesce(sum(message_count), 0) FROM unregistered_devices) u")
            return tuple(counts) == (1, 1, 3, 1) and counts

        await eventually(settled, 30)
        row = await conn.fetchrow("SELECT * FROM telemetry")
        assert row["device_id"] == "smk-1" and row["seq"] == 1
        assert row["obscuration_pct_per_m"] == pytest.approx(0.4)
        assert row["extra"] == {"vendor_rssi": -71}
        reasons = sorted(r["reason"] for r in await conn.fetch("SELECT reason FROM rejects"))
        assert reasons == ["bad_json", "bad_topic", "out_of_range"]
        ev = await conn.fetchrow("SELECT * FROM events")
        assert (ev["category"], ev["active"], ev["zone"], ev["point"]) == ("fire", True, 3, 12)
    finally:
        await conn.close()
        await pub.stop()
        await ingester.stop()
    assert ingester.totals["duplicates"] == 1
