"""The alarm writer on its own thread, event loop and connection pool.

The ingester decodes telemetry on its event loop in bursts (thousands of messages per socket
read, then batch building for COPY); a commit continuation on that loop waits for the burst to
end, which measured 100-400 ms at 10,000 readings/s. On its own loop the writer only waits for
the GIL (released every 5 ms by the interpreter's switch interval), so a fire decision made in
the middle of a burst is committed without waiting for the burst.

`put()` is thread-safe and never blocks. `done` counts decisions written or refused, so the
service knows when every decision made so far is committed (the moment a rule-state snapshot
may be taken); `low` is the writer's watermark (every ticket below it is written or refused;
tickets are the order of `put`). `on_refused` and `on_progress` are called on the caller's
event loop (the one `start()` ran on). If the writer's task ever ends (it should not: it retries
outages and logs refusals), `on_fatal` is called there too, and the process must exit: nothing
is acknowledged past an uncommitted decision, so the restarted process makes it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable

from alerting.decision import Decision
from alerting.writer import AlarmWriter
from firetower import db
from firetower.alarm_store import AlarmStore, TransactionHook

log = logging.getLogger(__name__)
START_TIMEOUT_S = 30.0


class WriterThread:
    def __init__(self, database_url: str, *, hooks: list[TransactionHook] | None = None,
                 on_refused: Callable[[Decision], None] | None = None,
                 on_progress: Callable[[], None] | None = None,
                 on_fatal: Callable[[BaseException], None] | None = None) -> None:
        self.url = database_url
        self.hooks = hooks or []
        self.on_refused = on_refused
        self.on_progress = on_progress
        self.on_fatal = on_fatal
        self._caller: asyncio.AbstractEventLoop | None = None
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
        self._caller = asyncio.get_running_loop()
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
    def low(self) -> int:
        w = self.writer
        return 0 if w is None else w.low

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
            self.writer = AlarmWriter(
                self.store,
                on_refused=None if self.on_refused is None else self._call(self.on_refused),
                on_progress=None if self.on_progress is None else self._call(self.on_progress))
            self.writer.keep_latencies = self._keep
            task = asyncio.create_task(self.writer.run(), name="alarm-writer")
            task.add_done_callback(self._ended)
            self._ready.set()
            await self._stop.wait()
            task.remove_done_callback(self._ended)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        finally:
            with contextlib.suppress(Exception):  # closing a pool of dead connections
                await asyncio.wait_for(pool.close(), 5.0)

    def _call(self, fn: Callable[..., None]) -> Callable[..., None]:
        """`fn` run on the caller's loop (thread-safe)."""
        def call(*args: object) -> None:
            caller = self._caller
            if caller is not None and not caller.is_closed():
                caller.call_soon_threadsafe(fn, *args)
        return call

    def _ended(self, task: asyncio.Task[None]) -> None:
        exc = (RuntimeError("the alarm writer was cancelled") if task.cancelled()
               else task.exception() or RuntimeError("the alarm writer returned"))
        log.critical("the alarm writer stopped (%s): no alarm can be written any more", exc)
        if self.on_fatal is not None:
            self._call(self.on_fatal)(exc)
