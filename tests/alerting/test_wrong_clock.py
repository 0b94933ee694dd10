"""A panel and a detector with wrong clocks, through the real broker, ingester, rule engine and
database (issue 11): fire events stamped a year ahead and at 1970 are stored, marked and each
an open fire alarm, the panel has a clock fault; a reading stamped a year behind is stored and
marked, and its detector has a clock fault; a message sent again is stored once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from firetower.protocol import encode, format_ts, topic_for
from ingest.service import Ingester
from tests.helpers import eventually

from .common import alarms, register, running_centre

pytestmark = pytest.mark.integration
DEVICES = [("pnl-1", "alarm_panel", None, None), ("smk-1", "smoke_detector", "pnl-1", 1)]
RESET = "1970-01-01T00:02:11.500Z"
OPEN = ("active", "acknowledged", "verified")


async def test_wrong_clocks_lose_nothing_and_raise_clock_faults(clean_db, broker) -> None:
    started = datetime.now(UTC)  # the stamps are a year off the time the test runs
    ahead_ts = format_ts(started + timedelta(days=365))
    behind_ts = format_ts(started - timedelta(days=365))
    await register(clean_db.url, DEVICES)
    messages = [
        (topic_for("pnl-1", "event"), {"seq": 1, "ts": ahead_ts, "category": "fire",
                                       "active": True, "zone": 3, "point": 1,
                                       "component": "manual_call_point"}),
        (topic_for("pnl-1", "event"), {"seq": 2, "ts": RESET, "category": "fire",
                                       "active": True, "zone": 1, "point": 7}),
        (topic_for("smk-1", "telemetry"), {"seq": 1, "ts": behind_ts,
                                           "obscuration_pct_per_m": 0.3, "temperature_c": 21.0}),
    ]
    async with running_centre(clean_db.url, broker) as run:
        svc, ing, pub, conn = run.svc, run.ing, run.pub, run.conn
        for topic, body in messages:
            pub.publish(topic, encode(body), 1)

        async def both_fires():  # type: ignore[no-untyped-def]
            rows = [a for a in await alarms(conn) if a["class"] == "fire"]
            return rows if len(rows) == 2 else None

        fires = await eventually(both_fires, 30)
        # sent again (a device resending after a reconnect): received later, stored once
        for topic, body in messages:
            pub.publish(topic, encode(body), 1)
        await eventually(lambda: _received(ing, 6), 30)
        await svc.writer.drain()  # type: ignore[union-attr]
        events = await conn.fetch("SELECT * FROM events ORDER BY seq")
        telemetry = await conn.fetch("SELECT * FROM telemetry")
        everything = await alarms(conn)
        rejects = await conn.fetchval("SELECT count(*) FROM rejects")
        detector = await conn.fetchrow("SELECT clock_offset_s FROM devices WHERE id = 'smk-1'")

    assert rejects == 0
    assert [(e["seq"], e["clock"], e["device_ts"]) for e in events] == [
        (1, "ahead", datetime.fromisoformat(ahead_ts)), (2, "reset", datetime.fromisoformat(RESET))]
    for e in events:  # stored and evaluated with the receive time of the first copy
        assert e["ts"] == e["received_at"] and started <= e["ts"] <= datetime.now(UTC)
    (reading,) = telemetry
    assert (reading["clock"], reading["device_ts"]) == ("behind", datetime.fromisoformat(behind_ts))
    assert reading["ts"] == reading["received_at"]

    assert sorted((a["point"], a["state"], a["type"]) for a in fires) == [
        ("1/7", "active", "panel.fire"), ("3/1", "active", "panel.fire")]
    for a in fires:
        assert abs(a["raised_at"] - a["received_at"]) < timedelta(seconds=1)
        assert a["count"] == 1  # the copy sent again is no new occurrence
    faults = {a["device_id"]: a for a in everything if a["type"] == "clock"}
    assert faults.keys() == {"pnl-1", "smk-1"}
    assert {a["class"] for a in faults.values()} == {"fault"}
    assert all(a["state"] in OPEN for a in faults.values())
    assert faults["pnl-1"]["evidence"]["state"] == "ahead"  # the first wrong stamp raised it
    assert faults["smk-1"]["evidence"]["state"] == "behind"
    assert detector["clock_offset_s"] == pytest.approx(365 * 86_400, abs=60)
    assert len(everything) == 4, [(a["device_id"], a["type"]) for a in everything]


async def _received(ing: Ingester, n: int) -> bool:
    t = ing.totals
    return t["stored"] + t["duplicates"] >= n
