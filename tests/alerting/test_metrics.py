"""The rule engine's and alarm writer's Prometheus metrics move when real alarms are raised,
re-occur and clear (real broker, ingester, engine, writer and database), and the ingester
process serves them with its own metrics. Metrics are process-global: every assertion is on
a difference."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

from alerting.writer import AlarmWriter
from firetower.alarms import AlarmClass
from firetower.broker import free_port
from firetower.mqtt import AsyncMqtt
from firetower.protocol import encode, format_ts, topic_for
from tests.alerting.test_service import DEVICES, running  # noqa: F401 (a fixture)
from tests.alerting.test_writer import RecordingStore, decision
from tests.helpers import eventually, ingester_subscribed

from .common import alarms, register

pytestmark = pytest.mark.integration


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def fire_event(seq: int, active: bool) -> bytes:
    return encode({"seq": seq, "ts": format_ts(datetime.now(UTC)), "category": "fire",
                   "active": active, "zone": 3, "point": 12, "location": "2F east stair"})


def writes(kind: str) -> float:
    return value("firetower_alerting_alarm_writes_total", **{"class": "fire", "kind": kind})


async def test_fire_raised_recurring_cleared_is_counted(running) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    _svc, pub, conn = running
    before = {
        "raise": writes("raise"), "recur": writes("recur"), "clear": writes("clear"),
        "decided": value("firetower_alerting_decisions_total",
                         **{"action": "raise", "class": "fire"}),
        "latency": value("firetower_alerting_alarm_write_seconds_count", **{"class": "fire"}),
        "events": value("firetower_alerting_evaluations_total", type="event"),
        "telemetry": value("firetower_alerting_evaluations_total", type="telemetry"),
    }
    pub.publish(topic_for("pnl-1", "event"), fire_event(1, True))

    async def raised():  # type: ignore[no-untyped-def]
        return [r for r in await alarms(conn) if r["class"] == "fire"]

    await eventually(raised, 30)
    await eventually(lambda: _true(writes("raise") - before["raise"] == 1), 30)
    assert value("firetower_alerting_alarm_write_seconds_count",
                 **{"class": "fire"}) - before["latency"] == 1
    assert value("firetower_alerting_decisions_total",
                 **{"action": "raise", "class": "fire"}) - before["decided"] == 1

    pub.publish(topic_for("pnl-1", "event"), fire_event(2, True))  # again: re-occurrence
    pub.publish(topic_for("pnl-1", "event"), fire_event(3, False))
    for seq in range(1, 6):
        pub.publish(topic_for("smk-1", "telemetry"), encode(
            {"seq": seq, "ts": format_ts(datetime.now(UTC)), "obscuration_pct_per_m": 0.1,
             "temperature_c": 21.0}))
    await eventually(lambda: _true(writes("clear") - before["clear"] == 1), 30)
    assert writes("recur") - before["recur"] == 1
    assert writes("raise") - before["raise"] == 1

    def published() -> bool:  # evaluations are published once a second
        return (value("firetower_alerting_evaluations_total", type="event")
                - before["events"] == 3
                and value("firetower_alerting_evaluations_total", type="telemetry")
                - before["telemetry"] == 5)

    await eventually(lambda: _true(published()), 30)
    assert value("firetower_alerting_devices") == len(DEVICES)
    assert value("firetower_alerting_writer_queue") == 0
    assert 10 < value("firetower_alerting_state_bytes_per_device") < 1024


async def _true(x: bool) -> bool:
    return x


async def test_writer_retries_are_counted() -> None:
    store = RecordingStore(fail_first=2)
    w = AlarmWriter(store)  # type: ignore[arg-type]
    retries = value("firetower_alerting_alarm_write_retries_total")
    unchanged = value("firetower_alerting_alarm_writes_total",
                      **{"class": "fault", "kind": "unchanged"})
    await w.start()
    try:
        w.put(decision("d1", AlarmClass.FAULT))
        await asyncio.wait_for(w.drain(), 5)
    finally:
        await w.stop()
    assert value("firetower_alerting_alarm_write_retries_total") - retries == 2
    # the recording store changes nothing in a table: counted as such
    assert value("firetower_alerting_alarm_writes_total",
                 **{"class": "fault", "kind": "unchanged"}) - unchanged == 1


async def test_the_ingester_process_serves_the_rule_engine_metrics(clean_db, broker,  # type: ignore[no-untyped-def]
                                                                    tmp_path: Path) -> None:
    await register(clean_db.url, DEVICES)
    port = free_port()
    env = dict(os.environ, FIRETOWER_DATABASE_URL=clean_db.url, FIRETOWER_MQTT_URL=broker.url,
               FIRETOWER_INGEST_CLIENT_ID="ingest-alerting-metrics-test",
               FIRETOWER_METRICS_PORT=str(port))
    log = (tmp_path / "ingest.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "firetower", "ingest"], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    pub = AsyncMqtt("127.0.0.1", broker.port)
    try:
        await ingester_subscribed(clean_db.url, broker.port)
        await pub.start()
        pub.publish(topic_for("pnl-1", "event"), fire_event(1, True))

        async def scraped() -> str | None:
            try:
                async with httpx.AsyncClient() as client:
                    text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
            except httpx.TransportError:
                return None
            ok = ('firetower_alerting_alarm_writes_total{class="fire",kind="raise"} 1.0' in text
                  and 'firetower_alerting_evaluations_total{type="event"} 1.0' in text)
            return text if ok else None

        text = await eventually(scraped, 20, 0.2)
        assert 'firetower_alerting_alarm_write_seconds_bucket{class="fire"' in text
        assert "firetower_alerting_devices 3.0" in text
    finally:
        await pub.stop()
        proc.terminate()
        proc.wait(10)
        log.close()
