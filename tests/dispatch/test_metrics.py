"""The dispatcher's Prometheus metrics move when real deliveries, failures and forwards happen
(a real receiver on a loopback port, the real database), and `firetower dispatch` serves them
on its own port; a second dispatcher on the same machine finds the port taken and runs on
without metrics. Metrics are process-global: every assertion is on a difference."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

from dispatch.receiver import Receiver
from firetower.alarm_store import AlarmStore
from firetower.alarms import Verdict
from firetower.broker import free_port
from tests.conftest import Database
from tests.dispatch.common import endpoint, pool_for, raise_fire, running, seed, verdict
from tests.helpers import eventually, spawn_logged

pytestmark = pytest.mark.integration


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def attempts(outcome: str) -> float:
    return value("firetower_dispatch_attempts_total", outcome=outcome)


async def test_deliveries_and_forwards_are_counted(clean_db: Database) -> None:
    await seed(clean_db.url)
    before = (attempts("delivered"), value("firetower_dispatch_attempt_seconds_count"),
              value("firetower_dispatch_delivery_seconds_count"),
              value("firetower_dispatch_forwards_total", basis="operator"))
    async with pool_for(clean_db.url) as pool, running(clean_db.url) as dispatcher:
        store = AlarmStore(pool)
        rx = await Receiver([]).start()
        eid, secret = await endpoint(pool, rx.url)
        rx.secrets.append(secret)
        alarm = await raise_fire(store, "d0")
        await verdict(store, alarm, Verdict.TRUE_FIRE)

        async def all_arrived() -> bool:  # raised, verdict, forwarded
            return len(rx.unique) >= 3

        await eventually(all_arrived, timeout=30)
        assert dispatcher.leader.is_set()
        assert value("firetower_dispatch_leader") == 1

        async def outbox_empty() -> bool:
            return value("firetower_dispatch_pending_deliveries", endpoint=str(eid)) == 0 \
                and REGISTRY.get_sample_value("firetower_dispatch_pending_deliveries",
                                              {"endpoint": str(eid)}) is not None

        await eventually(outbox_empty, timeout=30)
        await rx.stop()
    after = (attempts("delivered"), value("firetower_dispatch_attempt_seconds_count"),
             value("firetower_dispatch_delivery_seconds_count"),
             value("firetower_dispatch_forwards_total", basis="operator"))
    assert [a - b for a, b in zip(after, before, strict=True)] == [3, 3, 3, 1]
    assert value("firetower_dispatch_leader") == 0  # stopped


async def test_retries_rejections_and_a_failing_endpoint(clean_db: Database) -> None:
    await seed(clean_db.url)
    answer = {"status": 503}
    rx = Receiver([], answer=lambda _r: answer["status"])
    before = (attempts("retry"), attempts("rejected"), attempts("delivered"))
    async with pool_for(clean_db.url) as pool, running(clean_db.url):
        store = AlarmStore(pool)
        eid, secret = await endpoint(pool, rx.url, event_types=["alarm.raised"])
        rx.secrets.append(secret)
        await rx.start()
        await raise_fire(store, "d0")

        async def failing() -> bool:  # 3 failures make the endpoint failing (tests' config)
            return value("firetower_dispatch_endpoint_failing", endpoint=str(eid)) == 1

        await eventually(failing, timeout=30)
        assert attempts("retry") - before[0] >= 3
        pending = await pool.fetchval("SELECT count(*) FROM webhook_deliveries"
                                      " WHERE status = 'pending'")
        assert pending == 1

        async def counted_pending() -> bool:
            return value("firetower_dispatch_pending_deliveries", endpoint=str(eid)) == 1

        await eventually(counted_pending, timeout=30)
        answer["status"] = 400  # the receiver refuses the message: not retried

        async def rejected() -> bool:
            return attempts("rejected") - before[1] == 1

        await eventually(rejected, timeout=30)
        answer["status"] = 204
        await raise_fire(store, "d2")

        async def recovered() -> bool:
            return value("firetower_dispatch_endpoint_failing", endpoint=str(eid)) == 0

        await eventually(recovered, timeout=30)
        assert attempts("delivered") - before[2] == 1
        await rx.stop()


async def _metrics_text(port: int) -> str | None:
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            return (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    except httpx.TransportError:
        return None


async def test_firetower_dispatch_serves_metrics_and_a_standby_runs_without(
        clean_db: Database, tmp_path: Path) -> None:
    port = free_port()
    env = dict(os.environ, FIRETOWER_DATABASE_URL=clean_db.url, FIRETOWER_ENV="development",
               FIRETOWER_DISPATCH_METRICS_PORT=str(port))
    cmd = [sys.executable, "-m", "firetower", "dispatch", "--no-migrate"]
    logs = [tmp_path / "leader.log", tmp_path / "standby.log"]
    leader = spawn_logged(cmd, logs[0], env=env)
    standby = None
    try:
        async def leading() -> bool:
            text = await _metrics_text(port)
            return text is not None and "firetower_dispatch_leader 1.0" in text

        await eventually(leading, timeout=30, interval=0.2)
        standby = spawn_logged(cmd, logs[1], env=env)

        async def warned() -> bool:
            return "metrics not served" in logs[1].read_text()

        await eventually(warned, timeout=30, interval=0.2)
        assert standby.poll() is None and leader.poll() is None
        assert "firetower_dispatch_leader 1.0" in (await _metrics_text(port) or "")
    finally:
        for proc in (standby, leader):
            if proc is not None:
                proc.terminate()
                proc.wait(15)
