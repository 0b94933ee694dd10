"""`firetower` console command: the composition root of every process.

Each subcommand imports its service package lazily, so `firetower migrate` does not load
FastAPI and the service packages never import each other.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from firetower.settings import get_settings

# subcommand -> module with `configure(parser)` and `main(args) -> int`
COMMANDS: dict[str, tuple[str, str]] = {
    "migrate": ("firetower.commands.migrate", "apply database migrations (idempotent)"),
    "ingest": ("firetower.commands.ingest", "run the MQTT ingester and rule engine"),
    "simulate": ("simulators.command", "run the device simulator"),
    "bench": ("firetower.commands.bench", "run a benchmark"),
    "run": ("firetower.commands.run", "run the whole centre with a simulated fleet"),
    "api": ("firetower.commands.api", "run the warning-centre API"),
    "user": ("firetower.commands.user", "manage API users"),
    "broker": ("firetower.commands.broker", "run Mosquitto with the project's configuration"),
    "dispatch": ("firetower.commands.dispatch", "deliver alarm webhooks to dispatch systems"),
    "localdb": ("firetower.commands.localdb",
                "the private PostgreSQL of the demo and the tests (start|stop|status|url)"),
}


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
    import os

    if os.environ.get("FIRETOWER_EVENT_LOOP", "uvloop") != "uvloop":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="firetower", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in COMMANDS.items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue  # a service not installed in this build
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(module=module)
        mod.configure(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    mod = importlib.import_module(args.module)
    settings = None
    if getattr(mod, "NEEDS_SETTINGS", True):  # `firetower localdb` reads none
        try:
            settings = get_settings()
        except ValueError as exc:
            print(f"firetower: configuration error: {exc}", file=sys.stderr)
            return 2
    return int(mod.main(args, settings) or 0)


if __name__ == "__main__":
    sys.exit(main())
