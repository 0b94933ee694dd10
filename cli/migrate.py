"""`firetower migrate`: create the database if needed and apply pending migrations."""

from __future__ import annotations

import argparse

from firetower import db
from firetower.runner import run_async
from firetower.settings import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plain", action="store_true",
                        help="use plain PostgreSQL even if TimescaleDB is available")


def main(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> int:
        applied = await db.migrate(settings.database_url,
                                   use_timescale=False if args.plain else None)
        for name in applied:
            print(f"applied {name}")
        if not applied:
            print("database is up to date")
        return 0

    return run_async(go)
