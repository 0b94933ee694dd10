"""Faults while messages flow: the database goes away and comes back; the ingester is
SIGKILLed and restarted. Nothing is lost and nothing is stored twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from ingest.service import Ingester
from tests.conftest import ADMIN_URL, settings_for
from tests.helpers import eventually, fleet, ingester_subscribed, publish, register, telemetry_stream
from tests.ingest.test_exactly_once import count, stored_rows

pytestmark = pytest.mark.integration


async def set_database_available(url: str, available: bool) -> None:
    """Refuse (or allow again) new connections to one database and cut the current ones."""
    name = url.rpartition("/")[2]
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(available).lower()}')
        if not available:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()", name)
    finally:
        await admin.close()


async def test_database_outage_loses_nothing(clean_db, own_broker) -> None:
    devices = fleet(400)
    stream = telemetry_stream(devices, per_device=25, seed=3)  # 10,000
    await register(clean_db.url, devices)
    ingester = Ingester(settings_for(clean_db.url, own_broker, ingest_batch_size=500))
    await ingester.start()
    try:
        sender = asyncio.create_task(publish(own_broker.port, stream, rate=2500))
        await eventually(lambda: _at_least(clean_db.url, 1000), 30, 0.01)
        await set_database_available(clean_db.url, False)
        await asyncio.sleep(3)  # messages keep arriving at the broker while the DB is gone
        stored_during = ingester.totals["stored"]
        await set_database_available(clean_db.url, True)
        assert await sender == len(stream)
        await eventually(lambda: _at_least(clean_db.url, len(stream)), 60)
        assert stored_during < len(stream)
    finally:
        await set_database_available(clean_db.url, True)
        await ingester.stop()
    rows = await stored_rows(clean_db.url)
    assert len(rows) == await count(clean_db.url) == len(stream)


def spawn_ingester(db_url: str, mqtt_url: str, client_id: str, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, FIRETOWER_DATABASE_URL=db_url, FIRETOWER_MQTT_URL=mqtt_url,
               FIRETOWER_INGEST_CLIENT_ID=client_id, FIRETOWER_METRICS_PORT="0",
               FIRETOWER_INGEST_BATCH_SIZE="1000")
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "firetower", "ingest", "--no-alerting"],
                                env=env, stdout=out, stderr=subprocess.STDOUT)


async def test_sigkill_mid_stream_then_restart_loses_nothing(clean_db, own_broker,
                                                             tmp_path: Path) -> None:
    log = tmp_path / "ingest.log"
    devices = fleet(400)
    stream = telemetry_stream(devices, per_device=30, seed=5)  # 12,000
    await register(clean_db.url, devices)
    proc = spawn_ingester(clean_db.url, own_broker.url, "ingest-kill-test", log)
    try:
        await ingester_subscribed(clean_db.url, own_broker.port)
        sender = asyncio.create_task(publish(own_broker.port, stream, rate=3000))
        try:
            await eventually(lambda: _at_least(clean_db.url, 2000), 60, 0.01)
        except AssertionError:
            raise AssertionError(log.read_text()[-3000:]) from None
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        killed_at = await count(clean_db.url)
        assert await sender == len(stream)  # the broker queues for the persistent session
        assert killed_at < len(stream)
        proc = spawn_ingester(clean_db.url, own_broker.url, "ingest-kill-test", log)
        try:
            await eventually(lambda: _at_least(clean_db.url, len(stream)), 60)
        except AssertionError:
            raise AssertionError(f"{await count(clean_db.url)} of {len(stream)} stored, "
                                 f"{killed_at} at the kill; log:\n{log.read_text()[-3000:]}"
                                 f"\nbroker:\n{own_broker.log_tail()}") from None
        await asyncio.sleep(0.5)  # a redelivery after the last row would show up as a dup
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
    rows = await stored_rows(clean_db.url)
    assert len(rows) == await count(clean_db.url) == len(stream)



async def _at_least(url: str, n: int) -> bool:
    return await count(url) >= n
