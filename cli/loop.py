"""`firetower loop`: the closed loop's clock. Every `sweep_interval_s` (HazardPolicy) it opens
work orders for repair-class alarms, closes those whose device reported normal, runs the hazard
rules and escalates overdue hazards (hazards/sweep.py). Safe to run more than once: every step
is idempotent under row locks.

Once a month is over it also generates that month's briefing (docs/assessment.md "Briefings")
of every jurisdiction at the levels of FIRETOWER_BRIEFING_LEVELS (default province, city,
district), its days counted in FIRETOWER_BRIEFING_TZ (default UTC); a month already stored is
never generated again (assessment/briefing_store.py `generate_due`). Without a CJK font the
briefings are skipped with one error in the log, and the sweep goes on.

A database outage is ridden out (the sweep is retried with backoff); a database that is not
there at start exits 75 for the supervisor to try again, like the other services.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from typing import Any

from cli.exits import unavailable_at_start
from firetower.runner import run_async
from firetower.settings import Settings

log = logging.getLogger(__name__)
LEVELS_ENV = "FIRETOWER_BRIEFING_LEVELS"
TZ_ENV = "FIRETOWER_BRIEFING_TZ"


def briefing_settings(env: dict[str, str]) -> tuple[tuple[str, ...], str]:
    """(levels, time zone) of the scheduled briefings; ValueError for a wrong one."""
    from assessment.briefing_store import LEVELS, SCHEDULE_LEVELS, zone

    raw = env.get(LEVELS_ENV)
    levels = SCHEDULE_LEVELS if raw is None else tuple(
        x.strip() for x in raw.split(",") if x.strip())
    bad = sorted(set(levels) - set(LEVELS))
    if bad:
        raise ValueError(f"{LEVELS_ENV}: unknown levels {', '.join(bad)} "
                         f"(known: {', '.join(LEVELS)})")
    tz = env.get(TZ_ENV) or "UTC"
    try:
        zone(tz)
    except ValueError as exc:
        raise ValueError(f"{TZ_ENV}: {exc}") from None
    return levels, tz


class Briefings:
    """The schedule's step: last month's briefings, once; the font looked for once."""

    def __init__(self, levels: tuple[str, ...], tz: str) -> None:
        self.levels, self.tz = levels, tz
        self.font: Any = None
        self.disabled = not levels

    async def step(self, pool: Any) -> list[int]:
        from assessment.briefing_pdf import FontMissing, find_font
        from assessment.briefing_store import generate_due
        from firetower import heartbeat

        if self.disabled:
            return []
        if self.font is None:
            try:
                self.font = find_font()
            except FontMissing as exc:
                log.error("briefings: not generated: %s", exc)
                self.disabled = True
                return []
        done = await generate_due(pool, font=self.font, levels=self.levels, tz=self.tz,
                                  before_each=lambda: heartbeat.beat())
        if done:
            log.info("briefings: %d generated (ids %s)", len(done), done)
        return done


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
        levels, tz = briefing_settings(dict(os.environ))
    except (PolicyError, ValueError) as exc:
        log.error("%s", exc)
        return 78  # EX_CONFIG
    briefings = Briefings(levels, tz)

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
                try:
                    await briefings.step(pool)
                except Exception as exc:  # a briefing never stops the hazard loop
                    if db.is_transient(exc):
                        log.warning("briefings: database unavailable (%s); next sweep", exc)
                    else:
                        log.exception("briefings: failed; not tried again until a restart")
                        briefings.disabled = True
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
