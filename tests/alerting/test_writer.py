"""The writer drains fire first, retries a lost connection and a database in recovery (never
drops a decision on an outage), reports a decision the database refuses, and keeps a watermark
of the decisions written. (Rule state is saved by the service, only while every decision is
committed: tests/alerting/test_state_save.py.)"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerting.decision import Action, Decision
from alerting.writer import AlarmWriter
from firetower.alarm_store import AlarmKey
from firetower.alarms import PRIORITY, AlarmClass


class RecordingStore:
    def __init__(self, fail_first: int = 0,
                 error: type[Exception] = asyncpg.PostgresConnectionError,
                 refuse: set[str] | None = None) -> None:
        self.calls: list[str] = []
        self.fail = fail_first
        self.error = error
        self.refuse = refuse or set()
        self.transactions = 0
        self.writer: AlarmWriter | None = None
        self.low_at_call: list[int] = []

    @contextlib.asynccontextmanager
    async def transaction(self):  # type: ignore[no-untyped-def]
        self.transactions += 1
        yield

    async def raise_or_recur(self, occ, **kw):  # type: ignore[no-untyped-def]
        if self.fail:
            self.fail -= 1
            raise self.error("the database is unavailable")
        if occ.key.device_id in self.refuse:
            raise asyncpg.CheckViolationError("refused by the database")
        self.calls.append(occ.key.device_id)
        if self.writer is not None:
            self.low_at_call.append(self.writer.low)
        await asyncio.sleep(0)  # an await point, as the real store has


def decision(device: str, cls: AlarmClass) -> Decision:
    return Decision(Action.RAISE, PRIORITY[cls], AlarmKey(device, "", cls.value), cls, 0.0)


async def test_fire_jumps_the_queue_and_waiting_decisions_share_commits() -> None:
    store = RecordingStore()
    w = AlarmWriter(store)  # type: ignore[arg-type]
    for i in range(500):
        w.put(decision(f"off-{i}", AlarmClass.OFFLINE))
    w.put(decision("fire-1", AlarmClass.FIRE))
    task = asyncio.create_task(w.run())
    try:
        await asyncio.wait_for(w.drain(), 30)
        assert store.calls[0] == "fire-1" and len(store.calls) == 501
        assert store.transactions == 5  # 5 batches of 100 and a single: few commits
        assert (w.written, w.done, w.low) == (501, 501, 501)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_lost_connection_is_retried_not_dropped() -> None:
    store = RecordingStore(fail_first=3)
    w = AlarmWriter(store)  # type: ignore[arg-type]
    task = asyncio.create_task(w.run())
    try:
        w.put(decision("fire-1", AlarmClass.FIRE))
        await asyncio.wait_for(w.drain(), 30)
        assert store.calls == ["fire-1"] and (w.written, w.failed) == (1, 0)
        assert store.fail == 0  # the three failures happened, and were retried
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# What the database answers while it restarts, crashes or is in crash recovery, when it has
# no connection slot left, and when it refuses this process's login (a password rotated under
# it): the writer used to drop the decision on each of these (issue 11).
OUTAGE_ERRORS = [asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError,
                 asyncpg.CrashShutdownError, asyncpg.TooManyConnectionsError,
                 asyncpg.InvalidPasswordError, asyncpg.ConnectionDoesNotExistError,
                 ConnectionRefusedError]


@pytest.mark.parametrize("error", OUTAGE_ERRORS, ids=lambda e: e.__name__)
async def test_a_database_outage_is_retried_not_dropped(error: type[Exception]) -> None:
    store = RecordingStore(fail_first=4, error=error)

    w = AlarmWriter(store)  # type: ignore[arg-type]
    task = asyncio.create_task(w.run())
    try:
        w.put(decision("fire-1", AlarmClass.FIRE))
        for i in range(3):  # a batch, retried together
            w.put(decision(f"off-{i}", AlarmClass.OFFLINE))
        await asyncio.wait_for(w.drain(), 10)
        assert (w.written, w.failed) == (4, 0)
        assert store.calls[0] == "fire-1" and len(store.calls) == 4
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_refused_decision_is_reported_and_the_others_written() -> None:
    store = RecordingStore(refuse={"bad"})
    refused: list[Decision] = []

    w = AlarmWriter(store, on_refused=refused.append)  # type: ignore[arg-type]
    for name in ("a", "bad", "b"):  # one batch: it fails, then one by one
        w.put(decision(name, AlarmClass.FIRE))
    task = asyncio.create_task(w.run())
    try:
        await asyncio.wait_for(w.drain(), 10)
        assert store.calls[-2:] == ["a", "b"]
        assert [d.key.device_id for d in refused] == ["bad"]
        assert (w.written, w.failed, w.low) == (2, 1, 3)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_the_watermark_passes_a_ticket_only_when_every_earlier_one_is_done() -> None:
    """Fire first reorders the queue; `low` still says "every decision before it is done"."""
    store = RecordingStore()
    moves: list[int] = []

    w = AlarmWriter(store, on_progress=lambda: moves.append(w.low))  # type: ignore[arg-type]
    store.writer = w
    w.put(decision("off-0", AlarmClass.OFFLINE))  # ticket 0
    w.put(decision("fire-1", AlarmClass.FIRE))  # ticket 1, written first
    task = asyncio.create_task(w.run())
    try:
        await asyncio.wait_for(w.drain(), 10)
        assert store.calls == ["fire-1", "off-0"]
        assert store.low_at_call == [0, 0]  # the fire written, ticket 0 not yet: low stays 0
        assert w.low == 2 and moves and moves[-1] == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@given(st.permutations(range(30)))
def test_the_watermark_is_the_first_ticket_not_done_in_any_completion_order(
        order: list[int]) -> None:
    w = AlarmWriter(RecordingStore())  # type: ignore[arg-type]
    done: set[int] = set()
    for t in order:
        w._finish([t])
        done.add(t)
        first_missing = next(i for i in range(31) if i not in done)
        assert w.low == first_missing
