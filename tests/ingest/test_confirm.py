"""Event confirmation through the real broker, ingester, rule engine and database: the centre
confirms an event to its device (`centre/v1/{id}/confirm`) only once the event is stored and
its alarm committed, confirms a resend again, and stores and alarms it once."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from firetower.mqtt import AsyncMqtt
from firetower.protocol import confirm_topic, encode, format_ts, topic_for
from tests.alerting.common import register, running_centre
from tests.helpers import eventually

pytestmark = pytest.mark.integration


async def test_an_event_is_confirmed_after_its_alarm_commit_and_again_on_resend(
        clean_db, broker) -> None:  # type: ignore[no-untyped-def]
    await register(clean_db.url, [("pnl-c1", "alarm_panel", None, None)])
    async with running_centre(clean_db.url, broker) as run:
        conn = run.conn
        seen: list[tuple[int, int, int]] = []  # (seq, events stored, fire alarms) at arrival
        device = AsyncMqtt("127.0.0.1", broker.port)
        pending: list[int] = []

        def on_confirm(client, userdata, msg) -> None:  # type: ignore[no-untyped-def]
            pending.append(json.loads(msg.payload)["seq"])

        device.set_on_message(on_confirm)
        device.subscribe(confirm_topic("pnl-c1"), 1)
        await device.start()
        try:
            async def confirmed(n: int) -> bool:
                while pending:  # what the database holds when each confirmation arrives
                    seq = pending.pop(0)
                    counts = await conn.fetchrow(
                        "SELECT (SELECT count(*) FROM events WHERE device_id = 'pnl-c1') e,"
                        " (SELECT count(*) FROM alarms WHERE device_id = 'pnl-c1'"
                        "  AND class = 'fire') a")
                    seen.append((seq, counts["e"], counts["a"]))
                return len(seen) >= n

            fire = encode({"seq": 7, "ts": format_ts(datetime.now(UTC)), "category": "fire",
                           "active": True, "zone": 2, "point": 5,
                           "component": "smoke_detector", "location": "3F corridor"})
            device.publish(topic_for("pnl-c1", "event"), fire, 1)
            await eventually(lambda: confirmed(1), 30)
            device.publish(topic_for("pnl-c1", "event"), fire, 1)  # no confirmation seen: resend
            await eventually(lambda: confirmed(2), 30)
        finally:
            await device.stop()
        assert seen == [(7, 1, 1), (7, 1, 1)], seen
        assert run.ing.totals["duplicates"] == 1
