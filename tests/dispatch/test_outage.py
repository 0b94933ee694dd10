"""Receiver down, then back; dispatcher SIGKILLed mid-delivery and restarted: every event
arrives, in order per endpoint, exactly once by event id (receivers de-duplicate by
webhook-id; at most the message in flight at the kill is sent twice).

"Several minutes" of downtime is shortened here to ~24 s (12 s refusing connections, then
12 s answering 503) with a 0.2 s backoff base and a 2 s cap, so the dispatcher goes through
the same states (many failed attempts per message, a head-of-line message retried while
newer events queue behind it) in test time."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from dispatch.receiver import Receiver
from firetower.alarm_store import AlarmStore
from tests.conftest import Database
from tests.dispatch.common import LOOPBACK, PUBLIC_URL, endpoint, pool_for, raise_fire, running, seed
from tests.helpers import eventually, spawn_logged

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


async def expected_ids(pool: asyncpg.Pool, endpoint_id: int) -> list[str]:
    rows = await pool.fetch(
        "SELECT e.uid FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id"
        " WHERE d.endpoint_id = $1 ORDER BY d.id", endpoint_id)
    return [f"evt_{r['uid'].hex}" for r in rows]


async def test_receiver_down_then_back(clean_db: Database) -> None:
    await seed(clean_db.url)
    flaky = Receiver([], answer=lambda _r: 503)
    steady = Receiver([])
    async with pool_for(clean_db.url) as pool, \
            running(clean_db.url, backoff_base_s=0.2, backoff_max_s=2.0):
        store = AlarmStore(pool)
        e_flaky, s1 = await endpoint(pool, flaky.url)
        e_steady, s2 = await endpoint(pool, steady.url)
        flaky.secrets.append(s1)
        steady.secrets.append(s2)
        await steady.start()  # `flaky` is down: connections refused
        n = 0
        for phase in ("refused", "503"):
            if phase == "503":
                await flaky.start()
            for _ in range(24):
                await raise_fire(store, f"d{n % 4}", site="s1" if n % 2 == 0 else "s2",
                                 rule=f"rule.{n}")
                n += 1
                await asyncio.sleep(0.5)  # pacing: an alarm every 0.5 s
        assert flaky.unique == []
        flaky.answer = lambda _r: 204
        want_flaky = await expected_ids(pool, e_flaky)
        want_steady = await expected_ids(pool, e_steady)
        assert len(want_flaky) == len(want_steady) == n
        await eventually(lambda: _all(flaky, n), timeout=30)
        attempts = await pool.fetchval(
            "SELECT count(*) FROM webhook_attempts a JOIN webhook_deliveries d"
            " ON d.id = a.delivery_id WHERE d.endpoint_id = $1 AND a.outcome = 'retry'", e_flaky)
        await flaky.stop()
        await steady.stop()
    assert flaky.ids == want_flaky and steady.ids == want_steady
    assert len(flaky.requests) == n and len(steady.requests) == n  # no duplicates either
    assert flaky.bad_signatures == steady.bad_signatures == 0
    assert attempts >= 10


async def _all(rx: Receiver, n: int) -> bool:
    return len(rx.unique) >= n


def _spawn(db_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "FIRETOWER_DATABASE_URL": db_url, "FIRETOWER_PUBLIC_URL": PUBLIC_URL,
           "FIRETOWER_METRICS_PORT": "", "FIRETOWER_DISPATCH_RESCAN_S": "0.5",
           "FIRETOWER_WEBHOOK_ALLOW_NETWORKS": LOOPBACK,
           "FIRETOWER_DISPATCH_BACKOFF_BASE_S": "0.1", "FIRETOWER_DISPATCH_BACKOFF_MAX_S": "1"}
    env.pop("FIRETOWER_METRICS_PORT")
    return spawn_logged([sys.executable, "-m", "dispatch", "--no-migrate"], log, "ab", cwd=ROOT,
                        env=env)


async def test_sigkill_mid_delivery_loses_nothing(clean_db: Database, tmp_path: Path) -> None:
    await seed(clean_db.url)
    slow = Receiver([], delay_s=0.02)
    other = Receiver([], delay_s=0.01)
    log = tmp_path / "dispatch.log"
    async with pool_for(clean_db.url) as pool:
        store = AlarmStore(pool)
        e1, s1 = await endpoint(pool, slow.url)
        e2, s2 = await endpoint(pool, other.url)
        slow.secrets.append(s1)
        other.secrets.append(s2)
        await slow.start()
        await other.start()
        for i in range(150):
            await raise_fire(store, f"d{i % 4}", rule=f"rule.{i}")
        want1, want2 = await expected_ids(pool, e1), await expected_ids(pool, e2)
        proc = _spawn(clean_db.url, log)
        try:
            for kill_at in (30, 90):
                await eventually(functools.partial(_all, slow, kill_at), timeout=30)
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                await asyncio.sleep(0.2)  # on purpose: a request in flight at the kill may end
                mid = len(slow.unique)
                assert mid < 150  # killed mid-stream
                for i in range(10):  # more alarms while no dispatcher runs
                    await raise_fire(store, f"d{i % 4}", rule=f"late.{kill_at}.{i}")
                await asyncio.sleep(0.5)  # on purpose: nothing may be delivered meanwhile
                assert len(slow.unique) == mid
                proc = _spawn(clean_db.url, log)
            want1, want2 = await expected_ids(pool, e1), await expected_ids(pool, e2)
            await eventually(lambda: _all(slow, len(want1)), timeout=60)
            await eventually(lambda: _all(other, len(want2)), timeout=30)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        await slow.stop()
        await other.stop()
    assert len(want1) == len(want2) == 170
    assert slow.ids == want1 and other.ids == want2, log.read_text()[-3000:]
    assert len(slow.requests) - len(slow.unique) <= 2  # at most one re-send per kill
    assert slow.bad_signatures == other.bad_signatures == 0


LONG_OUTAGE_S = float(os.environ.get("FIRETOWER_WEBHOOK_OUTAGE_S", "0"))


@pytest.mark.skipif(not LONG_OUTAGE_S, reason="set FIRETOWER_WEBHOOK_OUTAGE_S=180 to run")
async def test_receiver_down_for_minutes(clean_db: Database) -> None:
    """The unshortened version, with the default backoff (1 s doubling to 30 s): the receiver
    refuses connections for FIRETOWER_WEBHOOK_OUTAGE_S seconds while an alarm is raised every
    2 s; once it is back every event arrives in order, exactly once, within one backoff cap."""
    await seed(clean_db.url)
    rx = Receiver([])
    async with pool_for(clean_db.url) as pool, \
            running(clean_db.url, backoff_base_s=1.0, backoff_max_s=30.0):
        store = AlarmStore(pool)
        eid, secret = await endpoint(pool, rx.url, event_types=["alarm.raised"])
        rx.secrets.append(secret)
        loop = asyncio.get_running_loop()
        t_end = loop.time() + LONG_OUTAGE_S
        n = 0
        while loop.time() < t_end:
            await raise_fire(store, f"d{n % 4}", site="s1" if n % 2 == 0 else "s2",
                             rule=f"rule.{n}")
            n += 1
            await asyncio.sleep(2.0)  # pacing: an alarm every 2 s of the outage
        want = await expected_ids(pool, eid)
        await rx.start()
        t_back = loop.time()
        await eventually(lambda: _all(rx, n), timeout=60)
        recovered_s = loop.time() - t_back
        attempts = await pool.fetchval(
            "SELECT count(*) FROM webhook_attempts a JOIN webhook_deliveries d"
            " ON d.id = a.delivery_id WHERE d.endpoint_id = $1", eid)
        await rx.stop()
    print(f"outage {LONG_OUTAGE_S:.0f} s: {n} events, {attempts} attempts, all delivered "
          f"{recovered_s:.1f} s after the receiver came back")
    assert rx.ids == want and len(rx.requests) == n and rx.bad_signatures == 0
    assert recovered_s <= 31 + 5
