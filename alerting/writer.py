"""The writer task: drains the engine's decisions, fire first, into the alarm store, and
persists rule state only when the queue is empty (so the stored state is never ahead of the
stored alarms: on restart the open alarms are the truth, the state adds pending durations).

A decision is retried until the database takes it (connection loss, restart): an alarm is
never dropped. Latency from decision to commit is kept for the bench.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg

from alerting import metrics
from alerting.decision import Action, Decision
from firetower.alarm_store import AlarmChange, AlarmStore, Occurrence
from firetower.alarms import InvalidTransition

log = logging.getLogger(__name__)
RETRY_MIN_S, RETRY_MAX_S = 0.05, 2.0
# Decisions already waiting are written together, in one transaction (one commit), up to this
# many: a flood of offline devices costs a few commits, not one each. The queue is ordered by
# priority, so a batch never holds a fire back.
MAX_BATCH = 100
_RETRYABLE = (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError,
              asyncpg.SerializationError, asyncpg.DeadlockDetectedError)


def _dt(t: float | None) -> datetime | None:
    return None if t is None else datetime.fromtimestamp(t, UTC)


class AlarmWriter:
    def __init__(self, store: AlarmStore, *, take_dirty: Callable[[], list[tuple[str, bytes]]],
                 save_states: Callable[[list[tuple[str, bytes]]], Awaitable[None]],
                 state_flush_s: float = 0.5) -> None:
        self.store = store
        self.take_dirty = take_dirty
        self.save_states = save_states
        self.state_flush_s = state_flush_s
        self.queue: asyncio.PriorityQueue[tuple[int, int, Decision]] = asyncio.PriorityQueue()
        self._seq = itertools.count()
        self.latencies: list[float] = []  # seconds from decision to commit (bench)
        self.keep_latencies = False
        self.written = 0
        self.failed = 0
        self.enqueued = 0
        self._task: asyncio.Task[None] | None = None
        self.idle = asyncio.Event()
        self.idle.set()

    def put(self, d: Decision) -> None:
        """The engine's sink: synchronous, never blocks."""
        self.enqueued += 1
        self.idle.clear()
        self.queue.put_nowait((d.priority, next(self._seq), d))

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
        last_flush = time.monotonic()
        while True:
            try:
                async with asyncio.timeout(self.state_flush_s):
                    _, _, d = await self.queue.get()
            except TimeoutError:
                d = None
            if d is not None:
                batch = [d]
                while len(batch) < MAX_BATCH and not self.queue.empty():
                    batch.append(self.queue.get_nowait()[2])
                await self._write_batch(batch)
            if self.queue.empty():
                if time.monotonic() - last_flush >= self.state_flush_s or d is None:
                    await self.flush_states()
                    last_flush = time.monotonic()
                self.idle.set()

    async def flush_states(self) -> None:
        items = self.take_dirty()  # taken while the queue is empty: all their alarms committed
        if items:
            try:
                await self._retry(lambda: self.save_states(items))
            except Exception:  # losing a state save costs pending durations, not alarms
                log.exception("rule state of %d devices not saved", len(items))

    async def drain(self) -> None:
        while not self.queue.empty() or not self.idle.is_set():
            await asyncio.sleep(0.005)

    async def _write_batch(self, batch: list[Decision]) -> None:
        if len(batch) == 1:
            await self._write(batch[0])
            return

        changes: list[AlarmChange | None] = []

        async def together() -> None:
            changes.clear()  # a retried batch starts again
            async with self.store.transaction():
                for d in batch:
                    changes.append(await self.apply(d))

        try:
            await self._retry(together)
        except Exception:  # one refused decision: write them one by one
            log.warning("a batch of %d alarm decisions failed; writing them one by one",
                        len(batch))
            for d in batch:
                await self._write(d)
            return
        self.written += len(batch)
        now = time.perf_counter()
        if self.keep_latencies:
            self.latencies.extend(now - d.decided for d in batch)
        metrics.written(batch, changes, now)

    async def _write(self, d: Decision) -> AlarmChange | None:
        try:
            change = await self._retry(lambda: self.apply(d))
        except InvalidTransition as exc:  # the engine and the table disagree: log, go on
            log.error("alarm decision %s %s refused: %s", d.action, d.key, exc)
            self.failed += 1
            metrics.WRITE_REFUSED.labels("invalid_transition").inc()
            return None
        except Exception:
            # Not a connection problem: a bug or a constraint. Never let the writer die (every
            # later alarm would be lost): log loudly, count, go on with the next decision.
            log.exception("alarm decision %s %s could not be written", d.action, d.key)
            self.failed += 1
            metrics.WRITE_REFUSED.labels("error").inc()
            return None
        self.written += 1
        now = time.perf_counter()
        if self.keep_latencies:
            self.latencies.append(now - d.decided)
        metrics.written((d,), (change,), now)  # type: ignore[arg-type]
        return change

    async def _retry(self, fn: Callable[[], Awaitable[object]]) -> object:
        delay = RETRY_MIN_S
        while True:
            try:
                return await fn()
            except _RETRYABLE as exc:
                metrics.WRITE_RETRIES.inc()
                log.warning("alarm write failed (%s); retrying in %.2f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

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
