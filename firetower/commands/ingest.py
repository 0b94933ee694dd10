"""`firetower ingest`: the MQTT ingester, with the rule engine in the same process.

The rule engine is fed each message as soon as the ingester has decoded it, so nothing is
decoded twice and a fire never waits for a telemetry batch to be written.
"""

from __future__ import annotations

import argparse
import logging

from firetower.cli import run_async
from firetower.settings import Settings

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--client-id", help="MQTT client id (one per ingester instance)")
    parser.add_argument("--shared-group", help="MQTT shared subscription group (scale-out)")
    parser.add_argument("--no-alerting", action="store_true",
                        help="store only; do not run the rule engine in this process")


def main(args: argparse.Namespace, settings: Settings) -> int:
    from firetower import db
    from ingest.service import Ingester

    if args.client_id:
        settings = settings.model_copy(update={"ingest_client_id": args.client_id})
    if args.shared_group:
        settings = settings.model_copy(update={"ingest_shared_group": args.shared_group})
    if settings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port, addr="127.0.0.1")

    async def serve() -> None:
        import asyncio

        await db.migrate(settings.database_url)
        listeners = []
        alerting = None
        if not args.no_alerting:
            try:
                from alerting.service import AlertingService
            except ImportError:
                log.warning("rule engine not installed; storing only")
            else:
                alerting = AlertingService(settings)
                await alerting.start()  # loads active alarms and rule state before consuming
                listeners.append(alerting)
        ingester = Ingester(settings, listeners=listeners)
        await ingester.start()
        try:
            await asyncio.Event().wait()
        finally:
            await ingester.stop()
            if alerting is not None:
                await alerting.stop()

    return run_async(serve)
