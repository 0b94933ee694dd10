"""The notifier under faults: the real `firetower notify` process sending to a real SMTP
server (aiosmtpd) while fires are raised at a steady pace through `AlarmStore`, the one
writer of alarms, on the fault suite's private PostgreSQL cluster.

- the notifier SIGKILLed twice and started again (as its unit's `Restart=always` would);
- PostgreSQL crashed (immediate stop, no checkpoint) and held in crash recovery, the
  notifier left to ride it out (nobody restarts it);
- the SMTP server away for 5 s and back on the same port.

After each: every fire alarm's e-mail was accepted by the SMTP server at least once (the
alarm id is in the body), no message is dead and the outbox has nothing left to do.
docs/faults.md ("The notifier") gives the measured figures.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from firetower import db
from tests.faults.centre import Proc
from tests.faults.notify_support import (
    Fires,
    Smtp,
    diagnose,
    notifier,
    report,
    seed,
    settle,
    wait_ready,
)
from tests.pgcluster import PgCluster

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(240)]

FIRES = 80  # one every 100 ms: 8 s of fires
# A message leased to a notifier that is then killed is sent again when its lease runs out
# (notify/outbox.py lease_s: 2 x the attempt timeout + 5 s, 25 s by default): the SIGKILL case
# settles within about 35 s of its last kill.
LEASE_SETTLE_S = 60.0
SETTLE_S = 60.0


@dataclass
class World:
    url: str
    smtp: Smtp
    proc: Proc
    pool: asyncpg.Pool


@pytest.fixture
async def world(pg_cluster: PgCluster, faults_template: str) -> AsyncIterator[World]:
    await asyncio.to_thread(pg_cluster.wait_ready)
    url = await pg_cluster.create_database(f"notify_{uuid.uuid4().hex[:10]}", faults_template)
    await seed(url)
    root = Path(tempfile.mkdtemp(prefix="firetower-notify-faults-"))
    smtp = Smtp()
    smtp.start()
    proc = notifier(url, smtp, root)
    pool: asyncpg.Pool | None = None
    try:
        proc.start()
        await wait_ready(proc)
        pool = await db.create_pool(url, min_size=1, max_size=4)
        yield World(url, smtp, proc, pool)
    finally:
        proc.stop()
        if pool is not None:
            pool.terminate()  # the database may have just crashed: no graceful close
        smtp.stop()
        shutil.rmtree(root, ignore_errors=True)


async def at(start: float, offset_s: float) -> None:
    """Sleep until `offset_s` after `start` (monotonic): the case's timeline."""
    delay = start + offset_s - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)  # on purpose: the fault's place in the fire stream


async def under_fire(world: World, fault: Callable[[float], Awaitable[None]],
                     settle_s: float) -> tuple[Fires, dict[str, Any]]:
    """Raise the fires, inject `fault` (given the stream's start, monotonic) meanwhile, wait
    for the outbox to settle; the fires and the figures of the run."""
    fires = Fires(world.pool, FIRES)
    raising = asyncio.create_task(fires.run())
    try:
        await fault(time.monotonic())
        await raising
    finally:
        raising.cancel()
        await asyncio.gather(raising, return_exceptions=True)
    state = await settle(world.url, world.smtp, world.proc, settle_s)
    figures = report(state, world.smtp, fires)
    figures["retry_errors"] = state["retry_errors"]
    return fires, figures


def check(figures: dict[str, Any], proc: Proc) -> None:
    why = diagnose(proc, figures)
    assert figures["raised_by_test"] == FIRES, why
    assert figures["fires"] == FIRES, why  # every raise committed once, no other fire alarm
    assert not figures["missing"], f"fire alarms never e-mailed: {why}"
    assert not figures["strangers"], why
    assert figures["messages"].get("dead", 0) == 0, why
    assert figures["messages"].get("pending", 0) == 0, why
    assert figures["messages"].get("sent", 0) == FIRES, why
    assert figures["jobs"]["undone"] == 0, why


async def test_notifier_sigkill_twice(world: World) -> None:
    """`firetower notify` SIGKILLed twice while fires are raised and e-mailed, started again
    1 s after each kill (its unit's RestartSec). The SMTP server takes 200 ms per message, so
    two or three are in flight at a kill. A message leased but not recorded at a kill is sent
    again when its lease runs out: at least once, twice if the server had it already."""
    world.smtp.mailbox.delay_s = 0.2
    kills: list[datetime] = []
    orphaned: list[tuple[datetime, int]] = []  # (kill, alarm) leased by a killed notifier

    async def kill_twice(start: float) -> None:
        for offset in (2.5, 5.5):
            await at(start, offset)
            world.proc.kill()
            killed = datetime.now(UTC)
            kills.append(killed)
            conn = await asyncpg.connect(world.url)
            try:
                orphaned.extend((killed, r["alarm_id"]) for r in await conn.fetch(
                    "SELECT alarm_id FROM notify_messages WHERE status = 'pending'"
                    " AND next_attempt_at > clock_timestamp() + interval '20 seconds'"))
            finally:
                await conn.close()
            await asyncio.sleep(1.0)  # on purpose: deploy/systemd RestartSec=1
            world.proc.start()
            await wait_ready(world.proc)

    fires, figures = await under_fire(world, kill_twice, LEASE_SETTLE_S)
    times = world.smtp.times()
    first = world.smtp.first_at()
    figures["orphaned_leases_per_kill"] = [sum(1 for k, _ in orphaned if k == kill)
                                           for kill in kills]
    # an orphan's resend: its last e-mail, counted from the kill that orphaned it
    resent = [times[a][-1] - k for k, a in orphaned if a in times]
    figures["orphans_resent_after_s"] = (
        [round(min(resent).total_seconds(), 1), round(max(resent).total_seconds(), 1)]
        if resent else None)
    figures["orphans_first_emailed_late"] = sum(1 for k, a in orphaned if a in first
                                                and first[a] > k)
    delays = sorted((first[a] - t).total_seconds() for a, t in fires.raised_at.items()
                    if a in first)
    figures["raise_to_first_email_s"] = {
        "p50": round(delays[len(delays) // 2], 2), "max": round(delays[-1], 2),
        "over_10s": sum(1 for d in delays if d > 10)} if delays else None
    print(f"notifier SIGKILL x2: {figures}")
    check(figures, world.proc)
    assert world.proc.starts == 3


async def test_database_crash_under_the_notifier(world: World, pg_cluster: PgCluster) -> None:
    """PostgreSQL killed (immediate stop: every backend gone, no checkpoint) while fires are
    raised and e-mailed, down 1 s, then 3 s in crash recovery refusing every connection with
    57P03, then open again. Nobody restarts the notifier: it must ride the outage out. A raise
    refused meanwhile is tried again by the test until it commits."""
    marks: dict[str, datetime] = {}

    async def crash(start: float) -> None:
        await at(start, 3.0)
        marks["crashed"] = datetime.now(UTC)
        await asyncio.to_thread(pg_cluster.crash)
        await asyncio.sleep(1.0)  # on purpose: the database is away 1 s
        await asyncio.to_thread(pg_cluster.start_in_recovery)
        await asyncio.sleep(3.0)  # on purpose: 3 s in crash recovery (57P03)
        await asyncio.to_thread(pg_cluster.end_recovery)
        marks["opened"] = datetime.now(UTC)

    fires, figures = await under_fire(world, crash, SETTLE_S)
    crashed, opened = marks["crashed"], marks["opened"]
    mails = world.smtp.mails()
    after = [m["at"] for m in mails if m["at"] >= opened]
    figures["outage_s"] = round((opened - crashed).total_seconds(), 1)
    figures["first_email_after_reopen_s"] = (
        round((min(after) - opened).total_seconds(), 2) if after else None)
    # the fires whose raise committed during or right after the outage: raise -> e-mail
    first = world.smtp.first_at()
    delays = [(first[a] - t).total_seconds() for a, t in fires.raised_at.items()
              if a in first and t >= crashed]
    figures["raise_to_email_after_crash_max_s"] = round(max(delays), 2) if delays else None
    print(f"database crash: {figures}")
    assert world.proc.alive() and world.proc.starts == 1, (
        f"the notifier exited: {diagnose(world.proc, figures)}")
    assert fires.failed > 0, "no raise was refused: the crash missed the fire stream"
    check(figures, world.proc)
    assert figures["jobs"]["failed"] == 0, diagnose(world.proc, figures)


async def test_smtp_server_down_for_five_seconds(world: World) -> None:
    """The SMTP server stops for 5 s (connections refused) and a new one starts on the same
    port: the fires raised meanwhile are retried (fire: from 1 s, doubling) and e-mailed once
    it is back, none dead."""
    async def smtp_away(start: float) -> None:
        await at(start, 2.0)
        await asyncio.to_thread(world.smtp.stop)
        await asyncio.sleep(5.0)  # on purpose: no SMTP server for 5 s
        await asyncio.to_thread(world.smtp.start)

    fires, figures = await under_fire(world, smtp_away, SETTLE_S)
    down, back = world.smtp.stopped_at, world.smtp.started_at
    assert down is not None and back is not None
    during = [a for a, t in fires.raised_at.items() if down <= t < back]
    first = world.smtp.first_at()
    recovered = [(first[a] - back).total_seconds() for a in during if a in first]
    figures["raised_while_down"] = len(during)
    figures["emailed_after_return_s"] = (
        [round(min(recovered), 2), round(max(recovered), 2)] if recovered else None)
    print(f"SMTP down 5 s: {figures}")
    check(figures, world.proc)
    assert len(during) >= 30, diagnose(world.proc, figures)
    assert all(first[a] >= back for a in during if a in first), diagnose(world.proc, figures)
    assert figures["attempts"].get("retry", 0) > 0, diagnose(world.proc, figures)
    assert world.proc.alive() and world.proc.starts == 1, diagnose(world.proc, figures)
