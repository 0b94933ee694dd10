"""A poison batch on the real database: one message in a batch that PostgreSQL refuses for good
(a NUL character in an unknown field: the decoder keeps it in `extra`, `jsonb` cannot hold it)
fails the whole batch. After `_ISOLATE_AFTER` attempts the writer stores the batch message by
message (a savepoint each), records the refused one in `rejects` with reason `storage_error`
and the database's reason, stores the others once, and goes on with the next batch."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from firetower import db
from firetower.model import (
    DeviceKind,
    Event,
    MessageType,
    Reject,
    RejectReason,
    Status,
    Telemetry,
)
from firetower.protocol import decode, encode, topic_for
from ingest import writer as writer_module
from ingest.batch import Batch
from ingest.writer import BatchWriter

pytestmark = pytest.mark.integration

RX = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)


def reading(seq: int, **extra: object) -> Telemetry:
    m = decode("smk-1", MessageType.TELEMETRY, DeviceKind.SMOKE_DETECTOR, json.dumps(
        {"seq": seq, "ts": (RX + timedelta(seconds=seq)).isoformat(),
         "obscuration_pct_per_m": 0.4, "temperature_c": 21.0, **extra}).encode(), RX)
    assert type(m) is Telemetry
    return m


def fire(seq: int) -> Event:
    m = decode("pnl-1", MessageType.EVENT, DeviceKind.ALARM_PANEL, json.dumps(
        {"seq": seq, "ts": RX.isoformat(), "category": "fire", "active": True, "zone": 1,
         "point": 2}).encode(), RX)
    assert type(m) is Event
    return m


def online(seq: int) -> Status:
    m = decode("pnl-1", MessageType.STATUS, DeviceKind.ALARM_PANEL, encode(
        {"seq": seq, "ts": RX.isoformat(), "online": True}), RX)
    assert type(m) is Status
    return m


async def test_a_poison_message_is_rejected_with_its_reason_and_the_rest_stored(clean_db) -> None:  # type: ignore[no-untyped-def]
    poison = reading(2, note="smoke\u0000test")  # valid JSON, accepted by the protocol
    assert poison.extra == {"note": "smoke\x00test"}
    earlier_reject = Reject(topic_for("smk-9", "telemetry"), b"{", RX, RejectReason.BAD_JSON,
                            "not JSON")
    batch = Batch(telemetry=[reading(1), poison, reading(3)], events=[fire(1)],
                  statuses=[online(1)], rejects=[earlier_reject])
    retried: list[BaseException] = []
    w = BatchWriter(clean_db.url, on_retry=retried.append)
    conn = await db.connect(clean_db.url)
    try:
        result = await w.write(batch)

        # the whole batch was refused until the writer isolated the poison message
        assert len(retried) == writer_module._ISOLATE_AFTER
        assert all(isinstance(e, asyncpg.UntranslatableCharacterError) for e in retried), retried
        assert (result.telemetry, result.events, result.statuses) == (2, 1, 1)
        assert (result.duplicates, result.rejects) == (0, 2)
        assert [r["seq"] for r in await conn.fetch(
            "SELECT seq FROM telemetry WHERE device_id = 'smk-1' ORDER BY seq")] == [1, 3]
        assert await conn.fetchval("SELECT count(*) FROM events WHERE device_id = 'pnl-1'") == 1
        assert await conn.fetchval(
            "SELECT count(*) FROM device_status WHERE device_id = 'pnl-1'") == 1
        rejects = {r["reason"]: r for r in await conn.fetch(
            "SELECT reason, topic, payload, payload_size, detail, received_at FROM rejects")}
        assert set(rejects) == {"bad_json", "storage_error"}
        refused = rejects["storage_error"]
        assert refused["topic"] == "fire/v1/smk-1/telemetry" and refused["received_at"] == RX
        # the message as decoded, with the field the database refused
        assert b'"device_id":"smk-1"' in refused["payload"] and b"\\u0000" in refused["payload"]
        assert "\\u0000" in refused["detail"], refused["detail"]  # the database's reason

        # the writer goes on: the next batch takes the fast path, first time
        nxt = await w.write(Batch(telemetry=[reading(4)], events=[fire(2)]))
        assert (nxt.telemetry, nxt.events, nxt.rejects) == (1, 1, 0)
        assert len(retried) == writer_module._ISOLATE_AFTER
        # a redelivery of the poison batch stores nothing twice and rejects only the poison
        again = await w.write(Batch(telemetry=[reading(1), poison, reading(3)]))
        assert (again.telemetry, again.duplicates, again.rejects) == (0, 2, 1)
        assert await conn.fetchval("SELECT count(*) FROM telemetry") == 3
        assert await conn.fetchval(
            "SELECT count(*) FROM rejects WHERE reason = 'storage_error'") == 2
    finally:
        await conn.close()
        await w.close()
