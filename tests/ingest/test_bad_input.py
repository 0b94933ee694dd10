"""Malformed messages of many kinds, mixed into valid traffic: each is recorded with its
reason, and every valid message is still stored."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from firetower import db
from ingest.service import Ingester
from tests.conftest import settings_for
from tests.helpers import eventually, fleet, publish, register, telemetry_stream

pytestmark = pytest.mark.integration

TS = "2026-11-28T10:00:00+08:00"
GOOD = {"seq": 1, "ts": TS, "obscuration_pct_per_m": 0.1, "temperature_c": 20.0}


def j(obj: object) -> bytes:
    return json.dumps(obj).encode()


# (topic device or full topic, payload, expected reason)
BAD: list[tuple[str, bytes, str]] = [
    ("t-smok-00000", b"{oops", "bad_json"),
    ("t-smok-00000", b"", "bad_json"),
    ("t-smok-00000", b'"a string"', "not_object"),
    ("t-smok-00000", j({**GOOD, "pad": "x" * 5000}), "oversized"),
    ("t-smok-00000", j({k: v for k, v in GOOD.items() if k != "seq"}), "missing_field"),
    ("t-smok-00000", j({**GOOD, "seq": "one"}), "wrong_type"),
    ("t-smok-00000", j({**GOOD, "temperature_c": [20]}), "wrong_type"),
    ("t-smok-00000", j(GOOD).replace(b"20.0", b"NaN"), "not_finite"),
    ("t-smok-00000", j(GOOD).replace(b"20.0", b"-1e999"), "not_finite"),
    ("t-smok-00000", j({**GOOD, "obscuration_pct_per_m": -3}), "out_of_range"),
    ("t-smok-00000", j({**GOOD, "seq": -5}), "out_of_range"),
    # a stamp that is no time is accepted (docs/protocol.md, Timestamps) and excuses nothing
    ("t-smok-00000", j({**GOOD, "ts": "yesterday", "seq": True}), "wrong_type"),
    ("t-smok-00000", j({**GOOD, "ts": "2026-11-28T10:00:00", "temperature_c": 400}),
     "out_of_range"),
    ("fire/v1/t-smok-00000/event", j({"seq": 1, "ts": TS, "category": "smoke", "active": True}),
     "bad_value"),
    ("fire/v2/t-smok-00000/telemetry", j(GOOD), "bad_topic"),
    ("fire/v1/bad*id/telemetry", j(GOOD), "bad_topic"),
    ("fire/v1/t-smok-00000/alarm", j(GOOD), "bad_topic"),
]


async def test_every_kind_of_bad_input_is_recorded_and_valid_traffic_flows(clean_db,
                                                                           own_broker) -> None:
    broker = own_broker  # its own: retained messages of other tests would count here
    devices = fleet(1000)
    valid = telemetry_stream(devices, per_device=10, seed=11)
    await register(clean_db.url, devices)
    bad = [(t if "/" in t else f"fire/v1/{t}/telemetry", p, r) for t, p, r in BAD]
    unknown = [("fire/v1/stranger-1/telemetry", j(GOOD))] * 3
    mixed: list[tuple[str, bytes]] = []
    step = len(valid) // (len(bad) * 5)
    bad_cycle = bad * 5
    for i, msg in enumerate(valid):
        mixed.append(msg)
        if i % step == 0 and bad_cycle:
            t, p, _ = bad_cycle.pop()
            mixed.append((t, p))
    mixed.extend(unknown)
    ingester = Ingester(settings_for(clean_db.url, broker))
    await ingester.start()
    conn = await db.connect(clean_db.url)
    try:
        await publish(broker.port, mixed)

        async def done() -> bool:
            n = await conn.fetchval("SELECT count(*) FROM telemetry")
            r = await conn.fetchval("SELECT count(*) FROM rejects")
            return n == len(valid) and r == len(bad) * 5

        await eventually(done, 60)
        got = Counter(r["reason"] for r in await conn.fetch("SELECT reason FROM rejects"))
        want = Counter(r for _, _, r in bad for _ in range(5))
        assert got == want
        assert len(got) >= 9  # every reason but bad_timestamp (stamps are never refused)
        row = await conn.fetchrow("SELECT * FROM unregistered_devices")
        assert (row["device_id"], row["message_count"]) == ("stranger-1", 3)
        details = await conn.fetch("SELECT detail, payload_size FROM rejects")
        assert all(r["detail"] for r in details)
        assert max(r["payload_size"] for r in details) <= 1024  # raw bytes are capped
    finally:
        await conn.close()
        await ingester.stop()
