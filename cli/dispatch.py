"""`firetower dispatch`: deliver alarm webhooks from the outbox and forward fires whose
verification deadline passed (see docs/webhooks.md). Run one or more: one leads, the others
wait as hot standbys.

Once started it rides out a database restart or crash (dispatch/dispatcher.py). If the
database is unavailable when it starts, it exits with status 75 and one log line, for its
supervisor (deploy/systemd/firetower-dispatch.service) to start it again."""

from __future__ import annotations

import argparse
import logging

from cli.exits import unavailable_at_start
from firetower.runner import run_async
from firetower.settings import Settings

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--deadline", type=float, metavar="S",
                        help="verification deadline in seconds (default 60, or "
                             "FIRETOWER_DISPATCH_VERIFICATION_DEADLINE_S)")
    parser.add_argument("--forward-on-coincidence", action="store_true", default=None,
                        help="forward fires confirmed by coincidence at once")
    parser.add_argument("--no-migrate", action="store_true",
                        help="do not apply pending migrations at start")


def main(args: argparse.Namespace, settings: Settings) -> int:
    from cli.api import serve_metrics
    from dispatch.config import DispatchSettings
    from dispatch.dispatcher import serve
    from firetower import db

    updates: dict[str, object] = {}
    if args.deadline is not None:
        updates["verification_deadline_s"] = args.deadline
    if args.forward_on_coincidence:
        updates["forward_on_coincidence"] = True
    config = DispatchSettings(**updates)  # type: ignore[arg-type]
    serve_metrics(settings.dispatch_metrics_port, "dispatch")

    async def run() -> int:
        try:
            if not args.no_migrate:
                await db.migrate(settings.database_url)
            await serve(settings, config, ready=lambda: print("dispatch ready", flush=True))
        except Exception as exc:
            return unavailable_at_start("dispatch", exc, log)
        return 0

    return run_async(run)
