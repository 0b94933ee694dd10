"""`firetower simulate`: a fleet publishing protocol v1 to the broker.

Default: 20 sites (one panel and 10 devices of each field kind per site), every device
reporting every 60 s of virtual time, paced in real time, until interrupted.
`--speed 0` publishes as fast as possible; `--rate N` at N msg/s regardless of virtual time.

`--speed S` above 1 fast-forwards: the virtual clock starts `catch_up_lead(S)` in the past
and runs S times faster than the wall clock until it has caught up with it, then in real
time. No stamp is ever ahead of the centre's clock: a stamp more than 60 s ahead is not
believed (the centre re-stamps the message with its receive time and raises a clock fault),
so a fleet stamping S times faster than the clock would play its scenarios in real time
after all, with a clock fault on every device.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
from datetime import UTC, datetime, timedelta
from itertools import islice
from urllib.parse import urlsplit

from firetower.runner import run_async
from firetower.settings import Settings
from simulators.fleet import build_fleet
from simulators.publisher import publish
from simulators.scenarios import SCENARIOS, generate


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sites", type=int, default=20, help="sites (one alarm panel each)")
    parser.add_argument("--per-kind", type=int, default=10,
                        help="smoke, heat and sprinkler-pressure devices of each kind per site")
    parser.add_argument("--seed", type=int, default=1, help="same seed, same messages")
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS),
                        help="scenario to inject (repeatable; default normal)")
    parser.add_argument("--interval", type=float, default=None,
                        help="virtual seconds between reports (default: the scenario's, 60)")
    parser.add_argument("--duration", type=float, default=None,
                        help="virtual seconds to simulate (default: forever when paced in real "
                             "time, else the scenario's length)")
    parser.add_argument("--count", type=int, default=None, help="stop after this many messages")
    parser.add_argument("--speed", type=float, default=None,
                        help="virtual seconds per wall second (default 1; 0 = as fast as "
                             "possible); above 1 the run starts in the past and plays at this "
                             "speed until it has caught up with the clock")
    parser.add_argument("--rate", type=float, default=None,
                        help="publish at this many msg/s, ignoring virtual time")
    parser.add_argument("--start", default=None,
                        help="virtual start time, RFC 3339 (default: now for paced runs, "
                             "earlier when faster than real time, now minus the duration for "
                             "unpaced ones)")
    parser.add_argument("--processes", type=int, default=1, help="publisher processes")
    parser.add_argument("--register", action="store_true",
                        help="register the fleet in the database first (idempotent)")
    parser.add_argument("--mqtt-url", default=None, help="override FIRETOWER_MQTT_URL")
    parser.add_argument("--shared-only", action="store_true",
                        help="publish every device over the shared connection(s); by default a "
                             "device a scenario takes offline gets its own connection, so the "
                             "broker sends its real last will")
    parser.add_argument("--describe", action="store_true",
                        help="print the injections as JSON lines and exit")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument("--confirm-events", action="store_true",
                        help="keep each event until the centre confirms it on "
                             "centre/v1/{device}/confirm and send it again until then, as a "
                             "real device does (docs/protocol.md); needs a centre behind the "
                             "broker, and a connection allowed to read the confirmations")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


# Fast-forward (--speed above 1): how far back the virtual clock starts. Enough for every
# demo scenario's expected alarm (the latest, a battery's early warning, needs six hourly
# means: 6-7 hours in), caught up within 45 minutes of wall time, inside the first hour over
# which the centre judges a device clock that is behind (alerting ClockParams.window_s), so
# the clocks of a fast-forwarded fleet are never taken for wrong.
FAST_FORWARD_S = 8 * 3600.0
CATCH_UP_WALL_S = 45 * 60.0


def catch_up_lead(speed: float) -> float:
    """Virtual seconds a paced run at `speed` starts in the past (0 at real time or slower)."""
    return min(FAST_FORWARD_S, max(0.0, speed - 1.0) * CATCH_UP_WALL_S)


def seq_base(start: datetime) -> int:
    """Where the devices' seqs start: the virtual start in epoch milliseconds. A simulator
    started again (by a supervisor, or by hand) continues every device's counter upwards, as a
    real device keeps its counter across a reboot: counting from 1 again, its events would
    repeat seqs the rule engine has seen and be taken for redeliveries. (A device reports at
    most once per 5 virtual seconds, so up to a speed of 5,000 the new base is above any seq
    the earlier run reached.)"""
    return max(0, int(start.timestamp() * 1000))


def main(args: argparse.Namespace, settings: Settings) -> int:
    if args.list:
        for name, s in SCENARIOS.items():
            first = s.description.splitlines()[0] if s.description else ""
            print(f"{name:24s} {first}")
        return 0
    if args.rate is not None and args.speed is not None:
        print("firetower simulate: give --rate or --speed, not both", file=sys.stderr)
        return 2
    if args.mqtt_url:
        settings = settings.model_copy(update={"mqtt_url": args.mqtt_url})
    return run_async(lambda: simulate(args, settings))


def _plan(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    scenarios = args.scenario or ["normal"]
    speed = 1.0 if args.speed is None and args.rate is None else args.speed
    paced_real_time = speed is not None and speed > 0
    duration = args.duration
    if duration is None and paced_real_time and args.count is None:
        duration = math.inf
    if duration is None:
        duration = max(SCENARIOS[n].duration_s for n in scenarios)
    if args.start:
        start = datetime.fromisoformat(args.start)
    elif paced_real_time:
        start = datetime.now(UTC) - timedelta(seconds=catch_up_lead(speed))
    elif math.isinf(duration):
        start = datetime.now(UTC)
    else:   # generated faster than real time: end now, so no ts lies in the future
        start = datetime.now(UTC) - timedelta(seconds=duration)
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    fleet = build_fleet(args.seed, args.sites, args.per_kind)
    run = generate(fleet, args.seed, start, scenarios, duration=duration,
                   interval=args.interval, seq_base=seq_base(start))
    return run, (speed if speed and speed > 0 else None)


async def simulate(args: argparse.Namespace, settings: Settings) -> int:
    run, speed = _plan(args)
    if args.describe:
        for inj in run.injections:
            print(json.dumps(inj.as_dict()))
        return 0
    if args.register:
        from simulators.registry import register_fleet

        reg = await register_fleet(settings.database_url, run.fleet)
        if not args.quiet:
            print(f"simulate: registered {reg.sites} new sites, {reg.floors} floors with "
                  f"plans, {reg.devices} new devices ({reg.details_filled} existing rows "
                  "given what they lacked)", file=sys.stderr)
    url = urlsplit(settings.mqtt_url)
    if not args.quiet:
        print(f"simulate: {len(run.fleet):,} devices at {len(run.fleet.sites)} sites, "
              f"scenarios {', '.join(run.scenarios)}, start {run.start.isoformat()}",
              file=sys.stderr)
        for inj in run.injections:
            print(f"simulate: inject {inj.condition} -> {inj.expect} on "
                  f"{', '.join(inj.device_ids[:3])} at {inj.start.isoformat()}", file=sys.stderr)
    messages = iter(run) if args.count is None else islice(run, args.count)
    stats = await publish(messages, host=url.hostname or "127.0.0.1", port=url.port or 1883,
                          rate=args.rate, speed=speed, processes=args.processes,
                          credentials=settings.mqtt_credentials,
                          dedicated=() if args.shared_only else run.dedicated,
                          quiet=args.quiet, catch_up=speed is not None and not args.start,
                          confirm=args.confirm_events)
    if not args.quiet:
        print(f"simulate: {stats}", file=sys.stderr)
    await asyncio.sleep(0)
    return 0 if stats.errors == 0 else 1
