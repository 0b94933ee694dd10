"""The alarm writer on its own thread, event loop and connection pool.

The ingester decodes telemetry on its event loop in bursts (thousands of messages per socket
read, then batch building for COPY); a commit continuation on that loop waits for the burst to
end, which measured 100-400 ms at 10,000 readings/s. On its own loop the writer only waits for
the GIL (released every 5 ms by the interpreter's switch interval), so a fire decision made in
the middle of a burst is committed without waiting for the burst.

`put()` is thread-safe and never blocks. `done` counts decisions written or refused, so the
service knows when every decision made so far is committed (the moment a rule-state snapshot
may be taken).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from alerting.decision import Decision
from alerting.writer import AlarmWriter
from firetower import db
from firetower.alarm_store import AlarmStore, TransactionHook

START_TIMEOUT_S = 30.0


class WriterThread:
    def __init__(self, database_url: str, *, hooks: list[TransactionHook] | None = None) -> None:
        self.url = database_url
        self.hooks = hooks or []
        self.enqueued = 0
        self.writer: AlarmWriter | None = None
        self.store: AlarmStore | None = None
        self._keep = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="alarm-writer", daemon=True)

    # -- lifecycle (called from the service's loop) ------------------------------------------
    async def start(self) -> None:
        self._thread.start()
        ok = await asyncio.to_thread(self._ready.wait, START_TIMEOUT_S)
        if self._error is not None:
            raise self._error
        if not ok:
            raise TimeoutError("the alarm writer thread did not start")

    async def stop(self) -> None:
        if self._loop is None or not self._thread.is_alive():
            return
        await self.drain()
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        await asyncio.to_thread(self._thread.join, START_TIMEOUT_S)

    async def drain(self) -> None:
        """Wait until every decision put so far is written (or refused)."""
        while self.done < self.enqueued and self._thread.is_alive():
            await asyncio.sleep(0.002)

    # -- the engine's sink (any thread) --------------------------------------------------------
    def put(self, d: Decision) -> None:
        assert self._loop is not None and self.writer is not None
        self.enqueued += 1
        self._loop.call_soon_threadsafe(self.writer.put, d)

    @property
    def done(self) -> int:
        w = self.writer
        return 0 if w is None else w.written + w.failed

    @property
    def latencies(self) -> list[float]:
        return [] if self.writer is None else self.writer.latencies

    @property
    def keep_latencies(self) -> bool:
        return self._keep

    @keep_latencies.setter
    def keep_latencies(self, value: bool) -> None:
        self._keep = value
        if self.writer is not None:
            self.writer.keep_latencies = value

    # -- the thread ----------------------------------------------------------------------------
    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # reported to start() if it happens before ready
            self._error = exc
            self._ready.set()

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        pool = await db.create_pool(self.url, min_size=1, max_size=2)
        try:
            self.store = AlarmStore(pool, hooks=self.hooks)

            async def no_state(items: list[tuple[str, bytes]]) -> None:
                return None  # the service saves rule state from its own loop

            self.writer = AlarmWriter(self.store, take_dirty=list, save_states=no_state,
                                      state_flush_s=60.0)
            self.writer.keep_latencies = self._keep
            task = asyncio.create_task(self.writer.run(), name="alarm-writer")
            self._ready.set()
            await self._stop.wait()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        finally:
            await pool.close()
