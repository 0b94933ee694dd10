"""Run one coroutine as a process's main: until it returns, or until SIGINT/SIGTERM cancels it.

Used by every composition root (`cli/`, `simulators/command.py`, the benchmarks), so it lives
in the kernel, which none of them may be imported by.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Coroutine
from typing import Any


def run_async(coro_fn: Callable[[], Coroutine[Any, Any, int | None]]) -> int:
    """Run a coroutine until it returns or SIGINT/SIGTERM arrives (then cancel it cleanly)."""

    async def runner_main() -> int:
        task = asyncio.ensure_future(coro_fn())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, task.cancel)
        try:
            return (await task) or 0
        except asyncio.CancelledError:
            return 0

    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(runner_main())


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where installed (faster sockets and callbacks), unless FIRETOWER_EVENT_LOOP=asyncio.
    Only for the loop this command runs: the process-wide policy is left alone."""
    if os.environ.get("FIRETOWER_EVENT_LOOP", "uvloop") != "uvloop":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
