"""A broker redelivery of re-stamped messages, through the real broker and database: an
ingester stores messages from wrong clocks and dies before acknowledging them; the broker
delivers them again to its successor (same persistent session), which receives them at
another time and still stores nothing twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from firetower import db
from firetower.mqtt import AsyncMqtt
from firetower.protocol import encode, format_ts, topic_for
from ingest.service import Ingester
from tests.conftest import settings_for
from tests.helpers import eventually, register

pytestmark = pytest.mark.integration


async def _rows(url: str) -> list[tuple]:
    conn = await db.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch(
            "SELECT 'e', device_id, seq, ts, device_ts, clock FROM events UNION ALL "
            "SELECT 't', device_id, seq, ts, device_ts, clock FROM telemetry ORDER BY 1, 3")]
    finally:
        await conn.close()


async def test_a_broker_redelivery_of_restamped_messages_is_stored_once(clean_db, broker) -> None:
    await register(clean_db.url, [("pnl-1", "alarm_panel"), ("smk-1", "smoke_detector")])
    settings = settings_for(clean_db.url, broker)
    now = datetime.now(UTC)
    messages = [
        (topic_for("pnl-1", "event"), {"seq": 1, "ts": format_ts(now + timedelta(days=365)),
                                       "category": "fire", "active": True, "zone": 1}),
        (topic_for("pnl-1", "event"), {"seq": 2, "ts": "1970-01-01T00:00:42Z",
                                       "category": "fire", "active": True, "zone": 2}),
        (topic_for("smk-1", "telemetry"), {"seq": 1, "ts": format_ts(now - timedelta(days=365)),
                                           "obscuration_pct_per_m": 0.2, "temperature_c": 20.0}),
    ]
    first = Ingester(settings)
    first._ack = lambda acks: None  # dies after its commits, before any acknowledgement
    await first.start()
    pub = AsyncMqtt("127.0.0.1", broker.port)
    await pub.start()
    try:
        for topic, body in messages:
            pub.publish(topic, encode(body), 1)

        async def stored() -> list[tuple] | None:
            rows = await _rows(clean_db.url)
            return rows if len(rows) == 3 else None

        before = await eventually(stored, 30)
        await first.stop()
        second = Ingester(settings)  # the same persistent sessions: the broker redelivers
        await second.start()
        try:
            async def redelivered() -> bool:
                return second.totals["duplicates"] >= 3

            await eventually(redelivered, 30)
        finally:
            await second.stop()
    finally:
        await pub.stop()
    assert second.totals["stored"] == 0
    assert await _rows(clean_db.url) == before
    assert sorted(r[5] for r in before) == ["ahead", "behind", "reset"]
    for r in before:
        assert abs(r[3] - now) < timedelta(minutes=1)  # stored at the (first) receive time


async def test_a_broker_redelivery_of_unreadable_stamps_is_stored_once(clean_db, broker) -> None:
    """The same with stamps that name no time (no device time to match on: the copy is found
    by device, seq, `invalid` and its content); a fire of the same seq with other content
    (a counter that restarted) is a new message and is stored."""
    await register(clean_db.url, [("pnl-1", "alarm_panel"), ("smk-1", "smoke_detector")])
    settings = settings_for(clean_db.url, broker)
    fire = {"category": "fire", "active": True}
    messages = [
        (topic_for("pnl-1", "event"), {"seq": 1, "ts": "garbage", **fire, "zone": 1}),
        (topic_for("pnl-1", "event"), {"seq": 2, **fire, "zone": 2}),
        (topic_for("pnl-1", "event"), {"seq": 3, "ts": 1764331200, **fire, "zone": 3}),
        (topic_for("smk-1", "telemetry"), {"seq": 1, "ts": "2026-11-28T10:00:00",
                                           "obscuration_pct_per_m": 0.2, "temperature_c": 20.0}),
    ]
    first = Ingester(settings)
    first._ack = lambda acks: None  # dies after its commits, before any acknowledgement
    await first.start()
    pub = AsyncMqtt("127.0.0.1", broker.port)
    await pub.start()
    try:
        for topic, body in messages:
            pub.publish(topic, encode(body), 1)

        async def stored() -> list[tuple] | None:
            rows = await _rows(clean_db.url)
            return rows if len(rows) == 4 else None

        before = await eventually(stored, 30)
        await first.stop()
        second = Ingester(settings)  # the same persistent sessions: the broker redelivers
        await second.start()
        try:
            async def redelivered() -> bool:
                return second.totals["duplicates"] >= 4

            await eventually(redelivered, 30)
            assert second.totals["stored"] == 0
            assert await _rows(clean_db.url) == before
            # the panel restarted its counter: seq 1 again, another fire
            pub.publish(topic_for("pnl-1", "event"),
                        encode({"seq": 1, "ts": "garbage", **fire, "zone": 4}), 1)

            async def new_fire() -> bool:
                return second.totals["stored"] >= 1

            await eventually(new_fire, 30)
        finally:
            await second.stop()
    finally:
        await pub.stop()
    after = await _rows(clean_db.url)
    assert len(after) == 5 and set(before) < set(after)
    assert {r[5] for r in after} == {"invalid"} and {r[4] for r in after} == {None}
