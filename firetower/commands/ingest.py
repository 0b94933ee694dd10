"""`firetower ingest`: the MQTT ingester (with the rule engine when it is installed)."""

from __future__ import annotations

import argparse

from firetower.cli import run_async
from firetower.settings import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--client-id", help="MQTT client id (one per ingester instance)")
    parser.add_argument("--shared-group", help="MQTT shared subscription group (scale-out)")


def main(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.service import run

    if args.client_id:
        settings = settings.model_copy(update={"ingest_client_id": args.client_id})
    if args.shared_group:
        settings = settings.model_copy(update={"ingest_shared_group": args.shared_group})
    if settings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port, addr="127.0.0.1")
    return run_async(lambda: run(settings))
