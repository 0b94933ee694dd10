"""`firetower ingest` exposes its counters, and the broker's backlog gauges, in the Prometheus
text format."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from bench.support import REDELIVERED_METRIC, scrape_metrics
from firetower.broker import free_port
from tests.helpers import eventually, fleet, ingester_subscribed, publish, register, telemetry_stream

pytestmark = pytest.mark.integration


async def test_metrics_endpoint_counts_stored_and_rejected(clean_db, broker, tmp_path: Path) -> None:
    devices = fleet(8)
    await register(clean_db.url, devices)
    port = free_port()
    env = dict(os.environ, FIRETOWER_DATABASE_URL=clean_db.url, FIRETOWER_MQTT_URL=broker.url,
               FIRETOWER_INGEST_CLIENT_ID="ingest-metrics-test", FIRETOWER_METRICS_PORT=str(port),
               FIRETOWER_BROKER_MEMORY_BUDGET="123456789")
    log = (tmp_path / "ingest.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "firetower", "ingest", "--no-alerting"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        await ingester_subscribed(clean_db.url, broker.port)
        broken = ("fire/v1/" + devices[0][0] + "/telemetry", b"{broken")
        stream = telemetry_stream(devices, per_device=2)
        await publish(broker.port, [*stream, broken])

        async def scraped() -> str | None:
            async with httpx.AsyncClient() as client:
                text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
            ok = ('firetower_ingest_stored_total{type="telemetry"} 16.0' in text
                  and 'firetower_ingest_rejected_total{reason="bad_json"} 1.0' in text)
            return text if ok else None

        text = await eventually(scraped, 20, 0.2)
        assert "firetower_ingest_flush_seconds_bucket" in text
        # the broker delivers the same readings again (as after a lost PUBACK): stored once,
        # counted as redelivered, the figure the benchmarks report
        await publish(broker.port, stream)

        async def redelivered() -> float | None:
            n = (await scrape_metrics(port, {REDELIVERED_METRIC: "n"}))["n"]
            return n if n == 16 else None

        await eventually(redelivered, 20, 0.2)
        # the broker's backlog, from $SYS, against the budget (docs/overload.md)
        gauges = await scrape_metrics(port, {
            "firetower_broker_heap_bytes": "heap", "firetower_broker_backlog_ratio": "ratio",
            "firetower_broker_memory_budget_bytes": "budget"})
        assert gauges["budget"] == 123_456_789
        assert gauges["heap"] > 10_000  # the session's broker: what it holds depends on the tests before
        assert gauges["ratio"] == pytest.approx(gauges["heap"] / gauges["budget"], rel=0.5)
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
