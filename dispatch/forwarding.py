"""The verification deadline: forwarding fires to the fire brigade (GB 50440, NFPA 72).

A fire alarm in normal mode is forwarded (an `alarm_events` row of kind `forward`, which the
outbox turns into `alarm.forwarded` webhooks) exactly once:

- at once when an operator gives the verdict `true_fire` (basis `operator`, verified), in
  its own transaction right after the verdict's (woken by the verdict's NOTIFY);
- at once when it is confirmed by coincidence and `forward_on_coincidence` is set (basis
  `coincidence`, verified by the second signal);
- when the verification deadline passes with no verdict (basis `deadline`, unverified), so no
  fire waits on an absent operator. Acknowledging is not a verdict: it does not stop the clock.

Any other verdict (false alarm, test, nuisance) before the deadline stops it. Alarms in test,
disabled or maintenance mode are never forwarded. `forward()` writes through
`AlarmStore.forward` (the one alarm write path): lock the alarm row, re-check, update, append
the event, NOTIFY, in one transaction.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from dispatch import metrics
from firetower.alarm_store import FORWARD_PENDING_SQL, AlarmStore
from firetower.db import Backoff, is_transient

log = logging.getLogger(__name__)
ACTOR = "dispatch"
RETRY_MIN_S, RETRY_MAX_S = 0.2, 5.0  # after a database error

_CANDIDATES = f"""
SELECT id, verdict, evidence ? 'coincidence' AS coincidence,
       extract(epoch FROM clock_timestamp() - coalesce(received_at, stored_at))::float8 AS age_s
FROM alarms WHERE {FORWARD_PENDING_SQL} AND coalesce(received_at, stored_at) > now() - $1::interval
"""


@dataclass(frozen=True, slots=True)
class Plan:
    due: list[tuple[int, str]]  # (alarm id, basis) to forward now
    next_in_s: float | None  # seconds until the earliest future deadline


def plan(rows: list[asyncpg.Record], deadline_s: float, on_coincidence: bool) -> Plan:
    """`age_s` of each row: seconds since the centre received the alarm (database clock)."""
    due: list[tuple[int, str]] = []
    next_in: float | None = None
    for r in rows:
        if r["verdict"] == "true_fire":
            due.append((r["id"], "operator"))
        elif on_coincidence and r["coincidence"]:
            due.append((r["id"], "coincidence"))
        else:
            left = deadline_s - r["age_s"]
            if left <= 0:
                due.append((r["id"], "deadline"))
            elif next_in is None or left < next_in:
                next_in = left
    return Plan(due, next_in)


_REASONS = {"operator": "forwarded: operator verdict true_fire",
            "coincidence": "forwarded: confirmed by coincidence",
            "deadline": "forwarded unverified: no verdict within the verification deadline"}


async def forward(pool: asyncpg.Pool, alarm_id: int, basis: str, *,
                  deadline_s: float | None = None) -> int | None:
    """Record the forwarding of one fire; None if it no longer qualifies (a verdict came in,
    another dispatcher forwarded it). Returns the alarm event id."""
    details: dict[str, object] = {"basis": basis, "verified": basis != "deadline"}
    if deadline_s is not None and basis == "deadline":
        details["deadline_s"] = deadline_s
    change = await AlarmStore(pool).forward(alarm_id, basis, actor=ACTOR,
                                            reason=_REASONS[basis], details=details)
    return None if change is None else change.event_id


class Forwarder:
    """Wakes on every alarm change (NOTIFY firetower_alarm_events) and at the next deadline."""

    def __init__(self, pool: asyncpg.Pool, *, deadline_s: float, on_coincidence: bool,
                 max_age_s: float, rescan_s: float) -> None:
        self._pool = pool
        self._deadline_s, self._on_coincidence = deadline_s, on_coincidence
        self._max_age = timedelta(seconds=max_age_s)
        self._rescan_s = rescan_s
        self.wake = asyncio.Event()

    async def run(self) -> None:
        backoff = Backoff(RETRY_MIN_S, RETRY_MAX_S)
        while True:
            self.wake.clear()
            try:
                wait = await self.step()
                backoff.reset()
            except Exception as exc:  # the deadline must keep running whatever happens
                wait = backoff.next()
                if is_transient(exc):
                    if backoff.failures % 10 == 1:
                        log.warning("forwarder: database unavailable (%s: %s); retrying",
                                    type(exc).__name__, exc)
                else:
                    log.exception("forwarder: unexpected error; retrying")
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=wait)
            except TimeoutError:
                pass

    async def step(self) -> float:
        """Forward what is due; return the seconds until the next deadline (or a rescan)."""
        t0 = time.monotonic()
        rows = await self._pool.fetch(_CANDIDATES, self._max_age)
        p = plan(rows, self._deadline_s, self._on_coincidence)
        for alarm_id, basis in p.due:
            if await forward(self._pool, alarm_id, basis, deadline_s=self._deadline_s):
                metrics.FORWARDS.labels(basis).inc()
                log.info("alarm %s forwarded (%s)", alarm_id, basis)
        if p.next_in_s is None:
            return self._rescan_s
        return max(0.0, min(p.next_in_s - (time.monotonic() - t0), self._rescan_s))
