"""The writer drains fire first, retries a lost connection, and saves rule state only when its
queue is empty (so the stored state is never ahead of the stored alarms)."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg

from alerting.decision import Action, Decision
from alerting.writer import AlarmWriter
from firetower.alarm_store import AlarmKey
from firetower.alarms import PRIORITY, AlarmClass


class RecordingStore:
    def __init__(self, fail_first: int = 0) -> None:
        self.calls: list[str] = []
        self.fail = fail_first
        self.transactions = 0

    @contextlib.asynccontextmanager
    async def transaction(self):  # type: ignore[no-untyped-def]
        self.transactions += 1
        yield

    async def raise_or_recur(self, occ, **kw):  # type: ignore[no-untyped-def]
        if self.fail:
            self.fail -= 1
            raise asyncpg.PostgresConnectionError("connection lost")
        self.calls.append(occ.key.device_id)
        await asyncio.sleep(0)


def decision(device: str, cls: AlarmClass) -> Decision:
    return Decision(Action.RAISE, PRIORITY[cls], AlarmKey(device, "", cls.value), cls, 0.0)


async def test_fire_jumps_the_queue_and_state_waits_for_an_empty_queue() -> None:
    store = RecordingStore()
    saved: list[int] = []

    async def save(items: list[tuple[str, bytes]]) -> None:
        saved.append(len(store.calls))

    w = AlarmWriter(store, take_dirty=lambda: [("x", b"")],  # type: ignore[arg-type]
                    save_states=save, state_flush_s=0.01)
    for i in range(500):
        w.put(decision(f"off-{i}", AlarmClass.OFFLINE))
    w.put(decision("fire-1", AlarmClass.FIRE))
    task = asyncio.create_task(w.run())
    try:
        await asyncio.sleep(0.05)
        await w.drain()
        assert store.calls[0] == "fire-1" and len(store.calls) == 501
        assert store.transactions == 5  # 5 batches of 100 and a single: few commits
        assert saved and saved[0] == 501  # the first state save came after the whole queue
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_lost_connection_is_retried_not_dropped() -> None:
    store = RecordingStore(fail_first=3)

    async def save(items: list[tuple[str, bytes]]) -> None:
        return None

    w = AlarmWriter(store, take_dirty=list, save_states=save)  # type: ignore[arg-type]
    task = asyncio.create_task(w.run())
    try:
        w.put(decision("fire-1", AlarmClass.FIRE))
        await asyncio.sleep(0.6)
        await w.drain()
        assert store.calls == ["fire-1"] and w.failed == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
