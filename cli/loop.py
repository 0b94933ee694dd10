"""`firetower loop`: the closed loop's clock. Every `sweep_interval_s` (HazardPolicy) it opens
work orders for repair-class alarms, closes those whose device reported normal, runs the hazard
rules and escalates overdue hazards (hazards/sweep.py). Safe to run more than once: every step
is idempotent under row locks.

A database outage is ridden out (the sweep is retried with backoff); a database that is not
there at start exits 75 for the supervisor to try again, like the other services.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from cli.exits import unavailable_at_start
from firetower.runner import run_async
from firetower.settings import Settings

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--once", action="store_true", help="sweep once and exit")
    parser.add_argument("--no-migrate", action="store_true",
                        help="do not apply pending migrations at start")


def main(args: argparse.Namespace, settings: Settings) -> int:
    from firetower import db, heartbeat
    from hazards.policy import PolicyError, from_env
    from hazards.sweep import sweep

    try:
        policy = from_env()
    except PolicyError as exc:
        log.error("%s", exc)
        return 78  # EX_CONFIG

    async def run() -> int:
        try:
            if not args.no_migrate:
                await db.migrate(settings.database_url)
            pool = await db.create_pool(settings.database_url, min_size=1, max_size=2)
        except Exception as exc:
            return unavailable_at_start("loop", exc, log)
        backoff = db.Backoff(0.5, 10.0)  # well under a stale heartbeat (60 s)
        print("loop ready", flush=True)
        try:
            while True:
                heartbeat.beat()  # from the loop that does the work: a stuck sweep stops it
                try:
                    report = await sweep(pool, policy=policy)
                except Exception as exc:
                    if not db.is_transient(exc):
                        raise
                    delay = backoff.next()
                    log.warning("sweep: database unavailable (%s); again in %.1f s", exc, delay)
                    await asyncio.sleep(delay)
                    continue
                backoff.reset()
                if any((report.orders_opened, report.orders_closed, report.hazards_recorded,
                        report.escalated)):
                    log.info("sweep: %d orders opened, %d closed, %d hazards, %d escalated",
                             len(report.orders_opened), len(report.orders_closed),
                             len(set(report.hazards_recorded)), len(report.escalated))
                if args.once:
                    return 0
                # between sweeps, awake at least every 10 s to beat: a long interval in the
                # policy is not a hang
                left = policy.sweep_interval_s
                while left > 0:
                    await asyncio.sleep(min(left, 10.0))
                    left -= 10.0
                    heartbeat.beat()
        finally:
            await pool.close()

    return run_async(run)
