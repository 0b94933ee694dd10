"""`firetower localdb start|stop|restart|status|url`: the private PostgreSQL cluster of the demo
and the tests (firetower/localpg.py), in var/postgresql (or $FIRETOWER_VAR_DIR/postgresql).

`start` is idempotent and prints where it listens; `url` prints a connection URL for a
database of it (`FIRETOWER_DATABASE_URL=$(firetower localdb url) firetower user add ...`).
The machine's own PostgreSQL is never touched.
"""

from __future__ import annotations

import argparse
import sys

from firetower import localpg
from firetower.settings import Settings

DEMO_DATABASE = "firetower"
# Managing the private cluster needs no FIRETOWER_* settings (no key, no environment).
NEEDS_SETTINGS = False


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("start", "stop", "restart", "status", "url"))
    parser.add_argument("--database", default=DEMO_DATABASE,
                        help=f"the database `url` names (default {DEMO_DATABASE}, the demo's)")


def main(args: argparse.Namespace, settings: Settings | None) -> int:
    root = localpg.default_root()
    try:
        if args.action == "stop":
            stopped = localpg.stop(root)
            print(f"private PostgreSQL in {root}: {'stopped' if stopped else 'not running'}")
            return 0
        if args.action == "status":
            cluster = localpg.open_cluster(root)
            up = cluster.data.exists() and cluster.running()
            print(f"private PostgreSQL in {root}: "
                  + (f"running on 127.0.0.1:{cluster.port}" if up else "not running"))
            return 0 if up else 3
        if args.action == "restart":
            localpg.stop(root)
        cluster, started = localpg.ensure(root)
    except localpg.LocalPgError as exc:
        print(f"firetower localdb: {exc}", file=sys.stderr)
        return 1
    if args.action == "url":
        print(cluster.url(args.database))
    else:
        print(f"private PostgreSQL {'started' if started else 'running'} on "
              f"127.0.0.1:{cluster.port} (data in {cluster.data}, log {cluster.log})", flush=True)
    return 0
