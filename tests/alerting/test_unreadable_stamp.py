"""A panel whose stamps are unreadable, through the real broker, ingester, rule engine and
database (issue 11): a fire event with `"ts": "garbage"` and one with no `ts` at all are
stored with their receive time, marked `invalid`, and each an open fire alarm; the panel has a
clock fault raised at once; a detector reading stamped 2026-02-30 is stored and marked, and
its detector has a clock fault too; everything sent again is stored once and is no new
occurrence. (Before: all three were refused as `bad_timestamp` and the fires were lost.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api.device_clock import CLOCK_SQL
from firetower.protocol import encode, topic_for
from ingest.service import Ingester
from tests.helpers import eventually

from .common import alarms, register, running_centre

pytestmark = pytest.mark.integration
DEVICES = [("pnl-1", "alarm_panel", None, None), ("smk-1", "smoke_detector", "pnl-1", 1)]
OPEN = ("active", "acknowledged", "verified")


async def test_fires_with_unreadable_stamps_are_alarms_and_raise_clock_faults(clean_db,
                                                                              broker) -> None:
    await register(clean_db.url, DEVICES)
    messages = [
        (topic_for("pnl-1", "event"), {"seq": 1, "ts": "garbage", "category": "fire",
                                       "active": True, "zone": 3, "point": 1,
                                       "component": "manual_call_point"}),
        (topic_for("pnl-1", "event"), {"seq": 2, "category": "fire", "active": True,
                                       "zone": 1, "point": 7}),
        (topic_for("smk-1", "telemetry"), {"seq": 1, "ts": "2026-02-30T10:00:00+08:00",
                                           "obscuration_pct_per_m": 0.3,
                                           "temperature_c": 21.0}),
    ]
    sent_at = datetime.now(UTC)
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
        rejects = await conn.fetch("SELECT reason, detail FROM rejects")
        raised = await conn.fetchval(
            "SELECT e.reason FROM alarm_events e JOIN alarms a ON a.id = e.alarm_id"
            " WHERE a.device_id = 'pnl-1' AND a.type = 'clock' ORDER BY e.id LIMIT 1")
        shown = {r["id"]: r["clock"] for r in await conn.fetch(
            f"SELECT id, {CLOCK_SQL} AS clock FROM devices")}

    assert [tuple(r) for r in rejects] == []
    assert [(e["seq"], e["clock"], e["device_ts"], e["extra"]) for e in events] == [
        (1, "invalid", None, {"ts": "garbage"}), (2, "invalid", None, None)]
    for row in (*events, *telemetry):  # stored with the receive time of the first copy
        assert row["ts"] == row["received_at"] and abs(row["ts"] - sent_at) < timedelta(minutes=1)
    (reading,) = telemetry
    assert (reading["clock"], reading["device_ts"], reading["extra"]) == (
        "invalid", None, {"ts": "2026-02-30T10:00:00+08:00"})

    assert sorted((a["point"], a["state"], a["type"]) for a in fires) == [
        ("1/7", "active", "panel.fire"), ("3/1", "active", "panel.fire")]
    for a in fires:
        assert abs(a["raised_at"] - a["received_at"]) < timedelta(seconds=1)
        assert a["count"] == 1  # the copy sent again is no new occurrence
    faults = {a["device_id"]: a for a in everything if a["type"] == "clock"}
    assert faults.keys() == {"pnl-1", "smk-1"}
    assert {a["class"] for a in faults.values()} == {"fault"}
    assert all(a["state"] in OPEN for a in faults.values())
    panel = faults["pnl-1"]["evidence"]
    assert (panel["state"], panel["device_stamp"], panel["offset_s"], panel["seq"]) == (
        "invalid", '"garbage"', None, 1)  # raised by the first message, at once
    assert raised == 'device clock unreadable: ts "garbage" is not a time'
    assert faults["smk-1"]["evidence"]["state"] == "invalid"
    assert shown == {"pnl-1": "invalid", "smk-1": "invalid"}  # what GET /devices shows
    assert len(everything) == 4, [(a["device_id"], a["type"]) for a in everything]


async def _received(ing: Ingester, n: int) -> bool:
    t = ing.totals
    return t["stored"] + t["duplicates"] >= n
