"""Restart safety: SIGKILL the ingest + alerting process with an open alarm and a pending
duration condition; after the restart nothing is raised twice and nothing is forgotten."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from firetower import db
from firetower.mqtt import AsyncMqtt
from firetower.protocol import encode, format_ts, topic_for
from tests.helpers import eventually

from .common import alarms, register

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


async def spawn(db_url: str, mqtt_url: str, client_id: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.alerting.proc", db_url, mqtt_url, client_id, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line.strip() == b"ready", line
    return proc


async def test_sigkill_with_open_alarm_and_pending_duration(clean_db, broker) -> None:  # type: ignore[no-untyped-def]
    await register(clean_db.url, [("pnl-1", "alarm_panel", None, None),
                                  ("smk-1", "smoke_detector", "pnl-1", 1)],
                   [("kind", "smoke_detector", "smoke", {"for_s": 6.0})])
    client = f"restart-{uuid.uuid4().hex[:8]}"
    proc = await spawn(clean_db.url, broker.url, client)
    pub = AsyncMqtt("127.0.0.1", broker.port)
    await pub.start()
    conn = await db.connect(clean_db.url)
    seq = 0
    t0 = datetime.now(UTC)

    def send_smoke() -> None:
        nonlocal seq
        seq += 1
        pub.publish(topic_for("smk-1", "telemetry"), encode(
            {"seq": seq, "ts": format_ts(datetime.now(UTC)), "obscuration_pct_per_m": 9.0,
             "temperature_c": 21.0}))

    fire = encode({"seq": 1, "ts": format_ts(t0), "category": "fire", "active": True,
                   "zone": 1, "point": 7})
    try:
        pub.publish(topic_for("pnl-1", "event"), fire)
        await eventually(lambda: alarms(conn), 30)
        for _ in range(4):  # 2 s of smoke: pending, 4 s short of its 6 s
            send_smoke()
            await asyncio.sleep(0.5)  # pacing: a reading every 0.5 s

        async def pending_saved():  # type: ignore[no-untyped-def]
            return await conn.fetchval("SELECT count(*) FROM rule_state WHERE device_id = 'smk-1'")

        await eventually(pending_saved, what="smk-1's pending state saved")
        assert len(await alarms(conn)) == 1
        proc.send_signal(signal.SIGKILL)
        await proc.wait()

        proc = await spawn(clean_db.url, broker.url, client)
        pub.publish(topic_for("pnl-1", "event"), fire)  # a redelivery of the same event
        deadline = t0 + timedelta(seconds=12)
        while datetime.now(UTC) < deadline:
            send_smoke()
            await asyncio.sleep(0.5)  # pacing: a reading every 0.5 s

        async def smoke_alarm():  # type: ignore[no-untyped-def]
            return [r for r in await alarms(conn) if r["type"] == "smoke.threshold"]

        smoke = (await eventually(smoke_alarm, 30))[0]
        rows = await alarms(conn)
        assert sorted((r["type"], r["count"]) for r in rows) == [
            ("panel.fire", 1), ("smoke.threshold", 1)]
        # raised when the 6 s held, counted from the first reading before the kill
        first = await conn.fetchval("SELECT min(ts) FROM telemetry WHERE device_id = 'smk-1'")
        held = (smoke["raised_at"] - first).total_seconds()
        assert 6.0 <= held < 7.5, held
        assert smoke["confidence"] == pytest.approx(0.95)  # the panel's fire in zone 1 is open
        raises = await conn.fetchval("SELECT count(*) FROM alarm_events WHERE kind = 'raise'")
        assert raises == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        await conn.close()
        await pub.stop()
