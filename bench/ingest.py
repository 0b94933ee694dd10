"""`firetower bench ingest`: the simulator through a real broker into a real database.

Same run, same messages, two measurements:
1. ceiling: the broker alone, delivering to a plain paho subscriber that only counts;
2. ingest: the broker delivering to `firetower ingest` (QoS 1, ack after commit), timed from
   the first publish until the last row is committed; then loss is counted in the database
   (stored (device, seq, ts) against what was sent) and redeliveries by the ingester (rows
   its INSERT skipped as already stored: the tables are unique on that key, so counting rows
   against distinct keys could only give 0).
Everything (publishers, broker, ingester, PostgreSQL) shares this machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from bench import records
from bench.support import (
    REDELIVERED_METRIC,
    CountingSubscriber,
    cpu_seconds,
    create_session,
    fresh_broker,
    fresh_database,
    scrape_metrics,
)
from firetower.broker import free_port
from firetower.runner import run_async
from firetower.settings import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--messages", type=int, default=200_000, help="messages per phase")
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--per-kind", type=int, default=30,
                        help="devices of each field kind per site (plus one panel per site)")
    parser.add_argument("--rate", type=float, help="offered msg/s (default: as fast as possible)")
    parser.add_argument("--processes", type=int, default=2, help="publisher processes")
    parser.add_argument("--batch-size", type=int, help="FIRETOWER_INGEST_BATCH_SIZE override")
    parser.add_argument("--with-alerting", action="store_true",
                        help="run the rule engine inside the ingester too")
    parser.add_argument("--plain", action="store_true", help="plain PostgreSQL even if "
                        "TimescaleDB is available")
    parser.add_argument("--mode", choices=("backlog", "live"), default="backlog",
                        help="backlog: queue the messages at the broker, then time how fast "
                        "the subscriber drains them (publisher speed does not count); live: "
                        "time while publishing")
    parser.add_argument("--skip-ceiling", action="store_true")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the ingester here")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")


def build_messages(sites: int, per_kind: int, count: int) -> tuple[Any, list[Any]]:
    from simulators.fleet import build_fleet
    from simulators.stream import Simulation

    fleet = build_fleet(7, sites, per_kind)
    per_device = -(-count // len(fleet.devices)) + 1
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=per_device + 1)
    sim = Simulation(fleet, 7, start, births=False)
    messages = list(itertools.islice(sim.stream(per_device * sim.interval), count))
    return fleet, messages


async def _stored(conn: asyncpg.Connection) -> int:
    return await conn.fetchval(
        "SELECT (SELECT count(*) FROM telemetry) + (SELECT count(*) FROM events) "
        "+ (SELECT count(*) FROM device_status)")


async def _wait_subscribed(conn: asyncpg.Connection, port: int) -> None:
    from simulators.publisher import publish
    from simulators.stream import Outgoing

    probe = Outgoing("fire/v1/bench-probe/status", b"{}", 1, False, "bench-probe", None,
                     datetime.now(UTC))
    for _ in range(300):
        await publish([probe], port=port, quiet=True)
        if await conn.fetchval(
                "SELECT 1 FROM unregistered_devices WHERE device_id = 'bench-probe'"):
            return
        await asyncio.sleep(0.2)
    raise RuntimeError("ingester did not subscribe")


def _spawn_ingester(args: argparse.Namespace, url: str, broker_url: str,
                    client_id: str, metrics_port: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, FIRETOWER_DATABASE_URL=url, FIRETOWER_MQTT_URL=broker_url,
               FIRETOWER_METRICS_PORT=str(metrics_port), FIRETOWER_INGEST_CLIENT_ID=client_id)
    if args.batch_size:
        env["FIRETOWER_INGEST_BATCH_SIZE"] = str(args.batch_size)
    cmd = [sys.executable]
    if args.profile:
        cmd += ["-m", "cProfile", "-o", str(args.profile)]
    cmd += ["-m", "firetower", "ingest"]
    if not args.with_alerting:
        cmd.append("--no-alerting")
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(2)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def _ceiling(args: argparse.Namespace, port: int, messages: list[Any]) -> dict[str, Any]:
    from simulators.publisher import publish

    n = len(messages)
    backlog = args.mode == "backlog"
    if backlog:
        create_session(port, "bench-counter")
        t0 = time.perf_counter()
        await publish(messages, port=port, processes=args.processes, rate=args.rate, quiet=True)
        pub_s = time.perf_counter() - t0
    counter = CountingSubscriber(port, n, client_id="bench-counter", persistent=backlog)
    counter.start()
    if not backlog:
        t0 = time.perf_counter()
        await publish(messages, port=port, processes=args.processes, rate=args.rate, quiet=True)
        pub_s = time.perf_counter() - t0
    got = await counter.result()
    return {"received": got["received"], "lost": n - got["received"],
            "msgs_per_s": round(got["received"] / max(got["seconds"], 1e-9)),
            "publish_msgs_per_s": round(n / pub_s),
            "subscriber_cpu_us_per_msg": round(got["cpu_s"] / max(got["received"], 1) * 1e6, 1)}


async def _ingest(args: argparse.Namespace, url: str, broker: Any,
                  messages: list[Any]) -> dict[str, Any]:
    from simulators.publisher import publish

    n = len(messages)
    client_id = f"bench-ingest-{os.getpid()}"
    metrics_port = free_port()
    proc = _spawn_ingester(args, url, broker.url, client_id, metrics_port)
    conn = await asyncpg.connect(url)
    try:
        await _wait_subscribed(conn, broker.port)  # also creates the persistent session
        if args.mode == "backlog":
            _stop(proc)  # messages now queue at the broker for the ingester's session
        base = await _stored(conn)
        # live: the ingester is up and idle, so its CPU window opens as publishing starts
        cpu_publish = cpu_seconds(proc.pid) if args.mode == "live" else 0.0
        t0 = time.perf_counter()
        await publish(messages, port=broker.port, processes=args.processes, rate=args.rate,
                      quiet=True)
        pub_s = time.perf_counter() - t0
        # The ingester's CPU per message over the measured window only: from the first poll
        # that sees rows of this run (backlog: the restarted ingester's start-up, imports and
        # connect, are before it) or from the first publish (live: it is up and idle), to the
        # poll that saw the last rows; divided by the rows stored between those two polls.
        window: tuple[int, float] | None = None  # (rows, CPU s) at the window's start
        if args.mode == "backlog":
            proc = _spawn_ingester(args, url, broker.url, client_id, metrics_port)
        else:
            window = (base, cpu_publish)
        last, last_change, cpu_last = base, time.perf_counter(), 0.0
        while last - base < n and time.perf_counter() - last_change < 30:
            await asyncio.sleep(0.05)
            count = await _stored(conn)
            if count != last:
                last, last_change, cpu_last = count, time.perf_counter(), cpu_seconds(proc.pid)
                if window is None:
                    window = (count, cpu_last)
        if args.mode == "backlog":
            # from the first message the restarted ingester received to the last commit
            first = await conn.fetchval("SELECT min(received_at) FROM telemetry "
                                        "WHERE received_at > now() - interval '1 hour'")
            done_wall = time.time() - (time.perf_counter() - last_change)
            elapsed = done_wall - first.timestamp()
        else:
            elapsed = last_change - t0
        # the ingester that drained the run (in backlog mode the first one only subscribed)
        redelivered = (await scrape_metrics(metrics_port, {REDELIVERED_METRIC: "n"}))["n"]
        rejects = await conn.fetchval("SELECT count(*) FROM rejects")
        flavour = await conn.fetchval("SELECT flavour FROM schema_migrations LIMIT 1")
    finally:
        await conn.close()
        _stop(proc)
    stored = last - base
    rows0, cpu0 = window or (last, cpu_last)
    return {"storage": flavour, "messages": n, "stored": stored, "lost": n - stored,
            "redelivered": int(redelivered), "rejected": rejects,
            "msgs_per_s": round(stored / max(elapsed, 1e-9)),
            "publish_msgs_per_s": round(n / pub_s),
            "cpu_window_rows": last - rows0, "ingester_cpu_s": round(cpu_last - cpu0, 3),
            "ingester_cpu_us_per_msg": (round((cpu_last - cpu0) / (last - rows0) * 1e6, 1)
                                        if last > rows0 else None),
            "with_alerting": args.with_alerting}


async def run_bench(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from simulators.registry import register_fleet

    t_gen = time.perf_counter()
    fleet, messages = build_messages(args.sites, args.per_kind, args.messages)
    result: dict[str, Any] = {
        "benchmark": "ingest", "mode": args.mode, "messages": len(messages),
        "devices": len(fleet.devices), "publisher_processes": args.processes,
        "offered_rate": args.rate, "generate_s": round(time.perf_counter() - t_gen, 2),
        "cores": os.cpu_count(),
    }
    with fresh_broker() as broker:
        if not args.skip_ceiling:
            result["ceiling"] = await _ceiling(args, broker.port, messages)
            _log(f"ceiling: {result['ceiling']}")
        async with fresh_database(settings.database_url, "firetower_bench", plain=args.plain,
                                  keep=args.keep) as url:
            await register_fleet(url, fleet)
            result["ingest"] = await _ingest(args, url, broker, messages)
    if "ceiling" in result:
        result["ingest_vs_ceiling"] = round(
            result["ingest"]["msgs_per_s"] / max(result["ceiling"]["msgs_per_s"], 1), 3)
    return result


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(args: argparse.Namespace, settings: Settings) -> int:
    begun = records.start()

    async def go() -> int:
        result = await run_bench(args, settings)
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            print(format_report(result))
        return records.finish("ingest", args, begun, result, checks(result))

    return run_async(go)


def checks(r: dict[str, Any]) -> list[records.Check]:
    """Every message stored exactly once and none rejected; the ceiling lost nothing."""
    i = r["ingest"]
    out = [records.equal("every message stored exactly once (rows of the run = messages)",
                         i["stored"], r["messages"]),
           records.equal("no message rejected", i["rejected"], 0)]
    if "ceiling" in r:
        out.append(records.equal("the broker-only ceiling received every message",
                                 r["ceiling"]["lost"], 0))
    return out


def format_report(r: dict[str, Any]) -> str:
    i = r["ingest"]
    lines = [f"firetower bench ingest ({r['mode']}): {r['messages']:,} messages from "
             f"{r['devices']:,} devices, {r['publisher_processes']} publisher processes, "
             f"{r['cores']} cores"]
    if "ceiling" in r:
        c = r["ceiling"]
        lines.append(f"  broker only (counting subscriber): {c['msgs_per_s']:>8,} msg/s  "
                     f"lost {c['lost']}  (subscriber CPU {c['subscriber_cpu_us_per_msg']} µs/msg)")
    lines.append(f"  ingest -> {i['storage']:<9} (QoS 1, ack after commit): {i['msgs_per_s']:>8,} "
                 f"msg/s  stored {i['stored']:,}  lost {i['lost']}  redelivered "
                 f"{i['redelivered']} (stored once)")
    lines.append(f"  ingester CPU {i['ingester_cpu_us_per_msg']} µs/msg (measured window); "
                 f"publishers {i['publish_msgs_per_s']:,} msg/s")
    if "ingest_vs_ceiling" in r:
        lines.append(f"  ingest / ceiling = {r['ingest_vs_ceiling']}")
    return "\n".join(lines)
