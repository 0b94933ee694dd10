"""The writer task: drains the engine's decisions, fire first, into the alarm store. Rule state
is not its business: the service saves it (`AlertingService.save_states`) only while every
decision handed to the writer is committed (`done == enqueued`), so the stored state is never
ahead of the stored alarms (on restart the open alarms are the truth, the state adds pending
durations).

A decision is never dropped because the database is unavailable: whatever
`firetower.db.is_transient` calls transient (a lost or refused connection, a server shutting
down, crashing or in recovery: 57P01, 57P02, 57P03; too many connections, 53300; a
serialization failure or deadlock) is retried with backoff until the database takes it. Only a
decision the database refuses for itself (an invalid transition, a constraint, a bug) is given
up; `on_refused` then reports it, so the service can make the engine's view of which alarms
are open follow the table again.

Every decision gets a ticket (0, 1, 2, ... in the order `put` is called). `low` is the
watermark: every ticket below it is written or refused. The ingester acknowledges a message
to the broker only when `low` has passed the tickets of the decisions made up to that
message's evaluation (alerting/service.py), so a decision still pending when the process dies
is made again from the redelivered message. Latency from decision to commit is kept for the
bench.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from alerting import metrics
from alerting.decision import Action, Decision
from firetower.alarm_store import AlarmChange, AlarmStore, Occurrence
from firetower.alarms import InvalidTransition
from firetower.db import Backoff, is_transient

log = logging.getLogger(__name__)
RETRY_MIN_S, RETRY_MAX_S = 0.05, 2.0
# Decisions already waiting are written together, in one transaction (one commit), up to this
# many: a flood of offline devices costs a few commits, not one each. The queue is ordered by
# priority, so a batch never holds a fire back.
MAX_BATCH = 100
# While the database is unavailable, one warning per this many retries of a write (and the
# first, and whenever the error changes): the retry metric counts them all.
LOG_EVERY_RETRIES = 30


def _must_wait(exc: BaseException) -> bool:
    """Retry: the database is unavailable (`is_transient`), or it refuses this process rather
    than this decision (28: authentication failed when the pool reconnected, e.g. a password
    rotated under a running process), which an operator fixes, not the decision."""
    if is_transient(exc):
        return True
    sqlstate = getattr(exc, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith("28")


def _dt(t: float | None) -> datetime | None:
    return None if t is None else datetime.fromtimestamp(t, UTC)


class AlarmWriter:
    def __init__(self, store: AlarmStore, *,
                 on_refused: Callable[[Decision], None] | None = None,
                 on_progress: Callable[[], None] | None = None) -> None:
        self.store = store
        self.on_refused = on_refused  # a decision given up (not transient): reconcile
        self.on_progress = on_progress  # `low` moved
        self.queue: asyncio.PriorityQueue[tuple[int, int, Decision]] = asyncio.PriorityQueue()
        self._seq = itertools.count()
        self.latencies: list[float] = []  # seconds from decision to commit (bench)
        self.keep_latencies = False
        self.written = 0
        self.failed = 0
        self.enqueued = 0
        self.low = 0  # watermark: every ticket < low is written or refused
        self._finished: set[int] = set()  # tickets >= low already written or refused
        self._task: asyncio.Task[None] | None = None
        self.idle = asyncio.Event()
        self.idle.set()

    def put(self, d: Decision) -> None:
        """The engine's sink: synchronous, never blocks."""
        self.enqueued += 1
        self.idle.clear()
        self.queue.put_nowait((d.priority, next(self._seq), d))  # the ticket: order of put

    @property
    def done(self) -> int:
        """Decisions written or refused: all are committed when done == enqueued."""
        return self.written + self.failed

    async def start(self) -> None:
        """Run on the caller's event loop (the service's)."""
        self._task = asyncio.create_task(self.run(), name="alarm-writer")

    async def stop(self) -> None:
        if self._task is not None:
            await self.drain()
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def run(self) -> None:
        while True:
            _, ticket, d = await self.queue.get()
            batch = [(ticket, d)]
            while len(batch) < MAX_BATCH and not self.queue.empty():
                _, ticket, d = self.queue.get_nowait()
                batch.append((ticket, d))
            await self._write_batch(batch)
            self._finish([t for t, _ in batch])
            if self.queue.empty():
                self.idle.set()

    async def drain(self) -> None:
        while not self.queue.empty() or not self.idle.is_set():
            await asyncio.sleep(0.005)

    def _finish(self, tickets: list[int]) -> None:
        """Move the watermark past tickets written or refused (in any order)."""
        low = self.low
        self._finished.update(tickets)
        while low in self._finished:
            self._finished.discard(low)
            low += 1
        if low != self.low:
            self.low = low
            if self.on_progress is not None:
                self.on_progress()

    async def _write_batch(self, batch: list[tuple[int, Decision]]) -> None:
        if len(batch) == 1:
            await self._write(batch[0][1])
            return
        decisions = [d for _, d in batch]
        changes: list[AlarmChange | None] = []

        async def together() -> None:
            changes.clear()  # a retried batch starts again
            async with self.store.transaction():
                for d in decisions:
                    changes.append(await self.apply(d))

        try:
            await self._retry(together)
        except Exception:  # one refused decision: write them one by one
            log.warning("a batch of %d alarm decisions failed; writing them one by one",
                        len(batch))
            for d in decisions:
                await self._write(d)
            return
        self.written += len(batch)
        now = time.perf_counter()
        if self.keep_latencies:
            self.latencies.extend(now - d.decided for d in decisions)
        metrics.written(decisions, changes, now)

    async def _write(self, d: Decision) -> AlarmChange | None:
        try:
            change = await self._retry(lambda: self.apply(d))
        except InvalidTransition as exc:  # the engine and the table disagree
            log.error("alarm decision %s %s refused: %s", d.action, d.key, exc)
            self._refused(d, "invalid_transition")
            return None
        except Exception:
            # Not an outage (those are retried above): a bug or a constraint. Never let the
            # writer die (every later alarm would be lost): log loudly, count, report it so the
            # engine's view is reconciled with the table, go on with the next decision.
            log.exception("alarm decision %s %s could not be written", d.action, d.key)
            self._refused(d, "error")
            return None
        self.written += 1
        now = time.perf_counter()
        if self.keep_latencies:
            self.latencies.append(now - d.decided)
        metrics.written((d,), (change,), now)  # type: ignore[arg-type]
        return change

    def _refused(self, d: Decision, reason: str) -> None:
        self.failed += 1
        metrics.WRITE_REFUSED.labels(reason).inc()
        if self.on_refused is not None:
            try:
                self.on_refused(d)
            except Exception:
                log.exception("reporting a refused alarm decision failed")

    async def _retry(self, fn: Callable[[], Awaitable[object]]) -> object:
        """Run `fn` until it succeeds or fails with an error that is not transient."""
        backoff = Backoff(RETRY_MIN_S, RETRY_MAX_S)
        last: type[BaseException] | None = None
        while True:
            try:
                return await fn()
            except Exception as exc:
                if not _must_wait(exc):
                    raise
                metrics.WRITE_RETRIES.inc()
                delay = backoff.next()
                if backoff.failures % LOG_EVERY_RETRIES == 1 or type(exc) is not last:
                    last = type(exc)
                    log.warning("alarm write failed: database unavailable (%s: %s); retry %d "
                                "in %.2f s, the decision stays pending", type(exc).__name__,
                                exc, backoff.failures, delay)
                await asyncio.sleep(delay)

    async def apply(self, d: Decision) -> AlarmChange | None:
        s = self.store
        if d.action is Action.RAISE:
            return await s.raise_or_recur(Occurrence(
                d.key, d.alarm_class, _dt(d.at), d.site_id, d.zone,  # type: ignore[arg-type]
                1.0 if d.confidence is None else d.confidence, d.evidence, d.mode,
                d.inhibited_by, d.group_key, _dt(d.device_ts), _dt(d.received_at), d.reason,
                d.seq, _dt(d.ingested_at)))
        if d.action is Action.CLEAR:
            return await s.clear(d.key, at=_dt(d.at), reason=d.reason)  # type: ignore[arg-type]
        if d.action is Action.ANNOTATE:
            return await s.annotate(d.key, confidence=d.confidence, evidence=d.evidence or None,
                                    inhibited_by=d.inhibited_by, uninhibit=d.uninhibit,
                                    reason=d.reason)
        return await s.record_mode(
            scope="device", target=d.key.device_id, point=d.key.point or None, mode=d.mode,
            active=d.mode_active, owner=f"device:{d.key.device_id}", reason=d.reason,
            at=_dt(d.at))  # type: ignore[arg-type]
