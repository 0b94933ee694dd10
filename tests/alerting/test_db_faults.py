"""Real database faults under the rule engine (issue 11, "a decided alarm is never dropped").

- A PRIVATE PostgreSQL cluster (tests/pgcluster.py) is crashed (`pg_ctl stop -m immediate`)
  while panel fire events stream in, and held in crash recovery (clients get 57P03) for
  seconds before it accepts connections again: every fire event stored becomes exactly one
  alarm, and the rule engine's LISTEN connection comes back.
- `pg_terminate_backend` on the alarm writer's connection in the middle of its transaction
  (57P01; asyncpg then reports the closed connection) while the database refuses new
  connections (55000), and a role whose CONNECTION LIMIT is used up (53300): the decision is
  written once the database takes it, not dropped.
- The ingester + rule engine SIGKILLed after a fire event's data commit and before its alarm
  commit: the event was not acknowledged, so the broker redelivers it and the restarted
  process raises the alarm.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from alerting.decision import Action, Decision
from alerting.service import AlertingService
from alerting.writer import AlarmWriter
from firetower import db
from firetower.alarm_store import AlarmKey, AlarmStore
from firetower.alarms import PRIORITY, AlarmClass
from firetower.mqtt import AsyncMqtt
from firetower.protocol import encode, format_ts, topic_for
from ingest.service import Ingester
from tests.conftest import ADMIN_URL, settings_for
from tests.helpers import eventually
from tests.pgcluster import PgCluster

from .common import register

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
# How long the crashed cluster stays in recovery (the fault run of issue 11: 35 s). Kept short
# in the suite; FIRETOWER_CRASH_RECOVERY_S=35 runs the long version.
RECOVERY_S = float(os.environ.get("FIRETOWER_CRASH_RECOVERY_S", "3"))
EVERY_S = 0.04  # one fire event every 40 ms


# -- the private cluster -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    c = PgCluster().init()
    try:
        c.start()
        yield c
    finally:
        c.destroy()


@pytest.fixture
async def cluster_db(cluster: PgCluster) -> str:
    cluster.wait_ready()
    url = await cluster.create_database(f"crash_{uuid.uuid4().hex[:8]}")
    await db.migrate(url, use_timescale=False)
    return url


def fire_event(seq: int, zone: int) -> bytes:
    """A fire in its own zone of the panel (fires of one zone would also confirm each other:
    coincidence annotations, which are not what this tests)."""
    return encode({"seq": seq, "ts": format_ts(datetime.now(UTC)), "category": "fire",
                   "active": True, "zone": zone, "point": 1, "location": f"zone {zone}"})


async def fires_stored(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch("SELECT zone, point FROM events WHERE device_id = 'pnl-1'"
                            " AND category = 'fire' AND active")
    return sorted(f"{r['zone']}/{r['point']}" for r in rows)


async def test_database_crash_and_recovery_every_stored_fire_event_is_one_alarm(
        cluster: PgCluster, cluster_db: str, broker) -> None:  # type: ignore[no-untyped-def]
    await register(cluster_db, [("pnl-1", "alarm_panel", None, None)])
    settings = settings_for(cluster_db, broker)
    svc = AlertingService(settings, state_flush_s=0.1)
    await svc.start()
    ing = Ingester(settings, listeners=[svc])
    await ing.start()
    pub = AsyncMqtt("127.0.0.1", broker.port)
    await pub.start()
    sent = 0

    async def publish(n: int, every_s: float = EVERY_S) -> None:
        nonlocal sent
        for _ in range(n):
            sent += 1
            pub.publish(topic_for("pnl-1", "event"), fire_event(sent, sent), 1)
            await asyncio.sleep(every_s)  # pacing: a fire event every every_s

    try:
        await publish(25)  # 1 s of fire events with the database up
        cluster.crash()  # every connection broken, no checkpoint
        await publish(25)  # while it is down: connections refused
        await asyncio.to_thread(cluster.start_in_recovery)  # up, refusing with 57P03
        await publish(round(RECOVERY_S / EVERY_S))  # in crash recovery
        await asyncio.to_thread(cluster.end_recovery)
        await publish(25)  # and after
        await eventually(lambda: pub.outstanding == 0,
                         what="the broker's PUBACK of every fire event")
        conn = await db.connect(cluster_db)
        try:
            await eventually(lambda: _count(conn, "SELECT count(*) FROM events", sent), 60)
            stored = await fires_stored(conn)
            assert len(stored) == sent == 75 + round(RECOVERY_S / EVERY_S)

            async def alarms_of_every_event() -> bool:
                got = await conn.fetch("SELECT point, count FROM alarms WHERE class = 'fire'")
                return len(got) >= len(stored)

            try:
                await eventually(alarms_of_every_event, 30 + RECOVERY_S)
            except AssertionError:
                pass  # the assertions below say what is missing
            rows = await conn.fetch("SELECT point, count FROM alarms WHERE class = 'fire'"
                                    " AND type = 'panel.fire' ORDER BY point")
            alarmed = sorted(r["point"] for r in rows)
            missing = sorted(set(stored) - set(alarmed), key=lambda p: int(p.split("/")[0]))
            assert not missing, (f"{len(missing)} of {len(stored)} stored fire events have no "
                                 f"alarm: {missing[:20]}")
            assert alarmed == stored  # exactly one alarm per fire event ...
            assert all(r["count"] == 1 for r in rows)  # ... each raised once
            raises = await conn.fetchval("SELECT count(*) FROM alarm_events WHERE kind = 'raise'")
            assert raises == len(stored)
            print(f"{len(stored)} fire events stored, {len(alarmed)} alarms, {RECOVERY_S:g} s "
                  f"in crash recovery")
            assert svc.writer is not None and svc.writer.done == svc.writer.enqueued

            # the rule engine's LISTEN connection came back: a device registered now reaches
            # the engine by NOTIFY (or by the reload after the reconnect)
            await conn.execute("INSERT INTO devices (id, kind, site_id) VALUES"
                               " ('pnl-new', 'alarm_panel', 's1')")

            async def known() -> bool:
                return svc.engine is not None and "pnl-new" in svc.engine.devices

            await eventually(known, 20)
        finally:
            await conn.close()
    finally:
        await pub.stop()
        await ing.stop()
        await svc.stop()


async def _count(conn: asyncpg.Connection, sql: str, n: int) -> bool:
    return await conn.fetchval(sql) >= n


# -- faults on the machine's database, on one connection or one role ---------------------------
def fire_decision(device: str, point: str = "") -> Decision:
    return Decision(Action.RAISE, PRIORITY[AlarmClass.FIRE], AlarmKey(device, point, "panel.fire"),
                    AlarmClass.FIRE, datetime.now(UTC).timestamp(), "s1", confidence=0.9)


@contextlib.asynccontextmanager
async def writer_on(pool: asyncpg.Pool) -> AsyncIterator[AlarmWriter]:
    w = AlarmWriter(AlarmStore(pool))
    task = asyncio.create_task(w.run())
    try:
        yield w
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_writer_connection_terminated_while_the_database_refuses_connections(
        clean_db, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    app = f"alarm-writer-{uuid.uuid4().hex[:6]}"
    pool = await asyncpg.create_pool(clean_db.url, min_size=1, max_size=2,
                                     init=db.init_connection,
                                     server_settings={"application_name": app})
    blocker = await db.connect(clean_db.url)
    admin = await asyncpg.connect(ADMIN_URL)
    caplog.set_level(logging.WARNING, logger="alerting.writer")
    try:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("LOCK TABLE alarms IN ACCESS EXCLUSIVE MODE")
        async with writer_on(pool) as w:
            w.put(fire_decision("pnl-1", "1/1"))

            async def writer_waiting() -> list[int]:
                return [r["pid"] for r in await admin.fetch(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = $1"
                    " AND wait_event_type = 'Lock'", app)]

            pids = await eventually(writer_waiting, 30)
            dbname = clean_db.url.rpartition("/")[2]
            await admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
            try:
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) pid", pids)
                await eventually(lambda: _logged(caplog, "is not currently accepting connections"),
                                 what="the writer's reconnection refused")
                assert w.written == 0
            finally:
                await admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
            await tx.rollback()
            await asyncio.wait_for(w.drain(), 20)
            assert (w.written, w.failed) == (1, 0)
            # what it met: the transaction died with 57P01 (asyncpg reports the connection
            # closed), then the reconnection was refused (55000, not accepting connections)
            assert await _logged(caplog, "connection is closed")
            assert await _logged(caplog, "is not currently accepting connections")
        n = await blocker.fetchval("SELECT count(*) FROM alarms WHERE device_id = 'pnl-1'")
        assert n == 1
    finally:
        await blocker.close()
        await admin.close()
        await pool.close()


async def test_no_connection_slot_for_the_writer_53300(
        clean_db, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    role = f"ft_limited_{uuid.uuid4().hex[:8]}"
    dbname = clean_db.url.rpartition("/")[2]
    admin = await asyncpg.connect(clean_db.url.rpartition("/")[0] + "/" + dbname)
    await admin.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 1")
    await admin.execute(f'GRANT CONNECT ON DATABASE "{dbname}" TO {role}')
    await admin.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
    await admin.execute(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}")
    url = clean_db.url.replace("://postgres@", f"://{role}@")
    caplog.set_level(logging.WARNING, logger="alerting.writer")
    hog = await asyncpg.connect(url)  # the role's only connection slot
    pool = await asyncpg.create_pool(url, min_size=0, max_size=1, init=db.init_connection)
    try:
        async with writer_on(pool) as w:
            w.put(fire_decision("pnl-2", "1/2"))
            await eventually(lambda: _logged(caplog, "TooManyConnectionsError"),
                             what="the writer refused a connection slot")
            assert w.written == 0
            await hog.close()  # a slot frees up
            await asyncio.wait_for(w.drain(), 20)
            assert (w.written, w.failed) == (1, 0)
            assert await _logged(caplog, "TooManyConnectionsError")  # 53300 is what it met
        assert await admin.fetchval("SELECT count(*) FROM alarms WHERE device_id = 'pnl-2'") == 1
    finally:
        if not hog.is_closed():
            await hog.close()
        await pool.close()
        await admin.execute(f"DROP OWNED BY {role}")
        await admin.execute(f"DROP ROLE {role}")
        await admin.close()


async def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(text in r.getMessage() for r in caplog.records)


# -- the ingester dies between the data commit and the alarm commit ------------------------------
async def spawn(db_url: str, mqtt_url: str, client_id: str, log: Path
                ) -> asyncio.subprocess.Process:
    with log.open("ab") as err:  # the child keeps its own copy of the file
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.alerting.proc", db_url, mqtt_url, client_id, cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=err,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line.strip() == b"ready", (line, log.read_text()[-2000:])
    return proc


async def test_killed_before_the_alarm_commit_the_fire_event_comes_back(
        clean_db, broker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    await register(clean_db.url, [("pnl-1", "alarm_panel", None, None)])
    client = f"ack-after-alarm-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "ingest.log"
    proc = await spawn(clean_db.url, broker.url, client, log)
    pub = AsyncMqtt("127.0.0.1", broker.port)
    await pub.start()
    conn = await db.connect(clean_db.url)
    blocker = await db.connect(clean_db.url)
    tx = blocker.transaction()
    try:
        await tx.start()  # the alarm writer's transaction waits on this lock
        await blocker.execute("LOCK TABLE alarms IN ACCESS EXCLUSIVE MODE")
        pub.publish(topic_for("pnl-1", "event"), fire_event(1, 7), 1)
        await eventually(lambda: fires_stored(conn), 30)  # the data is committed ...
        await asyncio.sleep(0.5)  # on purpose: (before issue 11, acknowledged within it)
        assert await conn.fetchval("SELECT count(*) FROM alarm_events") == 0
        proc.send_signal(signal.SIGKILL)  # ... and the alarm is not
        await proc.wait()
        await tx.rollback()
        assert await conn.fetchval("SELECT count(*) FROM alarms") == 0
        proc = await spawn(clean_db.url, broker.url, client, log)

        async def alarmed() -> list[asyncpg.Record]:
            return await conn.fetch("SELECT point, count FROM alarms WHERE type = 'panel.fire'")

        try:
            rows = await eventually(alarmed, 30)
        except AssertionError:
            raise AssertionError("the fire event's alarm was lost with the killed ingester; "
                                 f"log:\n{log.read_text()[-3000:]}") from None
        assert [(r["point"], r["count"]) for r in rows] == [("7/1", 1)]
        assert await fires_stored(conn) == ["7/1"]  # stored once (redelivered, de-duplicated)
    finally:
        if not blocker.is_closed():
            await blocker.close()
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
        await conn.close()
        await pub.stop()
