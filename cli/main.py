"""`firetower` console command: the composition root of every process.

`python -m cli` runs the same, and so does `python -m firetower` (the kernel's entry-point shim).

Each subcommand imports its service package lazily, so `firetower migrate` does not load
FastAPI and the service packages never import each other.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from firetower.settings import get_settings

# subcommand -> module with `configure(parser)` and `main(args) -> int`
COMMANDS: dict[str, tuple[str, str]] = {
    "migrate": ("cli.migrate", "apply database migrations (idempotent)"),
    "ingest": ("cli.ingest", "run the MQTT ingester and rule engine"),
    "simulate": ("simulators.command", "run the device simulator"),
    "bench": ("cli.bench", "run a benchmark"),
    "run": ("cli.run", "run the whole centre with a simulated fleet"),
    "api": ("cli.api", "run the warning-centre API"),
    "user": ("cli.user", "manage API users"),
    "broker": ("cli.broker", "run Mosquitto with the project's configuration"),
    "dispatch": ("cli.dispatch", "deliver alarm webhooks to dispatch systems"),
    "loop": ("cli.loop", "run the hazard loop: work orders, hazard rules, escalation"),
    "notify": ("cli.notify", "send notifications: policies, escalation, duty rosters, watch windows"),
    "localdb": ("cli.localdb",
                "the private PostgreSQL of the demo and the tests (start|stop|status|url)"),
}


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
