"""The dispatcher process rides out a database restart or crash (issue 11): it used to exit
(status 3) when its listening connection went away, and nothing restarted it, so no fire would
have been forwarded after a database crash.

- A PRIVATE cluster (tests/pgcluster.py) crashed with `pg_ctl stop -m immediate` and held in
  crash recovery (57P03) for longer than the dispatcher's old check interval: the process is
  still running afterwards and delivers what was raised before, during and after.
- `pg_terminate_backend` on every connection of the dispatcher (57P01): the same.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from dispatch.receiver import Receiver
from firetower import db
from firetower.alarm_store import AlarmStore
from tests.conftest import ADMIN_URL, Database
from tests.dispatch.common import LOOPBACK, PUBLIC_URL, endpoint, raise_fire, seed
from tests.helpers import eventually, spawn_logged
from tests.pgcluster import PgCluster

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    c = PgCluster().init()
    try:
        c.start()
        yield c
    finally:
        c.destroy()


def spawn(db_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "FIRETOWER_DATABASE_URL": db_url, "FIRETOWER_PUBLIC_URL": PUBLIC_URL,
           "FIRETOWER_DISPATCH_RESCAN_S": "0.5", "FIRETOWER_DISPATCH_BACKOFF_BASE_S": "0.1",
           "FIRETOWER_DISPATCH_BACKOFF_MAX_S": "1", "PYTHONUNBUFFERED": "1",
           "FIRETOWER_WEBHOOK_ALLOW_NETWORKS": LOOPBACK}
    env.pop("FIRETOWER_METRICS_PORT", None)
    env.pop("FIRETOWER_DISPATCH_METRICS_PORT", None)
    return spawn_logged([sys.executable, "-m", "dispatch", "--no-migrate"], log, "ab", cwd=ROOT,
                        env=env)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


async def _received(rx: Receiver, n: int) -> bool:
    return len(rx.unique) >= n


async def raise_with_retry(url: str, device: str, rule: str) -> None:
    """Raise a fire as the rule engine would: retried until the database takes it."""
    async def attempt() -> bool:
        try:
            conn = await db.connect(url)
        except Exception as exc:
            if db.is_transient(exc):
                return False
            raise
        try:
            store = AlarmStore(conn)
            await raise_fire(store, device, rule=rule)
            return True
        finally:
            await conn.close()

    await eventually(attempt, 60, 0.2)


async def test_dispatcher_survives_a_database_crash_and_delivers_after(
        cluster: PgCluster, tmp_path: Path) -> None:
    url = await cluster.create_database(f"dispatch_{uuid.uuid4().hex[:8]}")
    await db.migrate(url, use_timescale=False)
    await seed(url)
    rx = Receiver([])
    await rx.start()
    log = tmp_path / "dispatch.log"
    conn = await db.connect(url)
    pool = await db.create_pool(url, min_size=1, max_size=2)
    try:
        _eid, secret = await endpoint(pool, rx.url)
        rx.secrets.append(secret)
        await pool.close()
        proc = spawn(url, log)
        try:
            await raise_fire(AlarmStore(conn), "d0", rule="before.crash")
            await conn.close()
            await eventually(lambda: _received(rx, 1), 30)

            cluster.crash()
            await asyncio.sleep(1.0)  # on purpose: 1 s down, connections refused
            await asyncio.to_thread(cluster.start_in_recovery)
            await asyncio.sleep(5.0)  # on purpose: 5 s of 57P03 (the old process exited here)
            assert proc.poll() is None, log.read_text()[-3000:]
            await asyncio.to_thread(cluster.end_recovery)

            await raise_with_retry(url, "d1", "after.crash")
            try:
                await eventually(lambda: _received(rx, 2), 30)
            except AssertionError:
                raise AssertionError(f"not delivered after the recovery (process "
                                     f"{'running' if proc.poll() is None else 'exited ' + str(proc.returncode)});"
                                     f" log:\n{log.read_text()[-3000:]}") from None
            assert proc.poll() is None, log.read_text()[-3000:]
            text = log.read_text()
            assert "lost the database connection that holds leadership" in text
            assert "leading again" in text
        finally:
            stop(proc)
    finally:
        if not conn.is_closed():
            await conn.close()
        await rx.stop()
    assert rx.bad_signatures == 0
    assert len(rx.unique) == 2


async def test_dispatcher_connections_terminated_57P01(clean_db: Database,
                                                      tmp_path: Path) -> None:
    await seed(clean_db.url)
    rx = Receiver([])
    await rx.start()
    log = tmp_path / "dispatch.log"
    pool = await asyncpg.create_pool(clean_db.url, min_size=1, max_size=2,
                                     init=db.init_connection,
                                     server_settings={"application_name": "the-test"})
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        _eid, secret = await endpoint(pool, rx.url)
        rx.secrets.append(secret)
        store = AlarmStore(pool)
        proc = spawn(clean_db.url, log)
        try:
            await raise_fire(store, "d0", rule="before")
            await eventually(lambda: _received(rx, 1), 30)
            dbname = clean_db.url.rpartition("/")[2]
            for _ in range(2):  # twice: the reconnected dispatcher rides out the second too
                killed = await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = $1 AND application_name <> 'the-test'", dbname)
                assert killed >= 2  # the listening connection and the pools' connections
                await asyncio.sleep(4.0)  # on purpose: past the old process's check interval
                assert proc.poll() is None, log.read_text()[-3000:]
            await raise_fire(store, "d1", rule="after")
            await eventually(lambda: _received(rx, 2), 30)
            assert proc.poll() is None
            assert log.read_text().count("leading again") >= 2
        finally:
            stop(proc)
    finally:
        await admin.close()
        await pool.close()
        await rx.stop()
    assert len(rx.unique) == 2 and rx.bad_signatures == 0
