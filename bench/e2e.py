"""`firetower bench e2e`: the whole pipeline, every component in its own process.

simulator publishers -> Mosquitto -> `firetower ingest` (rule engine in the same process) ->
PostgreSQL (telemetry, alarms) -> `firetower api` live stream -> an operator client that gives a
`true_fire` verdict over the API as soon as it sees a fire -> `firetower dispatch` -> a local
webhook receiver that verifies every signature.

One run, on its own Mosquitto (deploy/mosquitto/firetower.conf) and a throwaway database:
1. register the fleet in bulk (COPY, `simulators.registry`), an admin and an operator, and a
   webhook endpoint (through the API) pointing at the receiver;
2. ceiling: the same publishers queue a backlog at the broker for a counting subscriber's
   persistent session, which then drains it (the broker alone, as `bench ingest` measures);
3. the run: every device reports every `--interval` seconds (`--burst` times as often for
   `--burst-duration` seconds mid-run), `--fires` panel fire events (a smoke detector's fire
   signalled by its panel, as the simulator's fire scenarios end) at known instants;
4. afterwards: loss in the database, redeliveries as the ingester counted them (rows its
   INSERT skipped as already stored), and per fire the latency of every stage, from the
   client-side observations (publish, SSE arrival, verdict answer, receiver arrival)
   and from the alarm row's latency clocks; CPU seconds and peak RSS of every process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import multiprocessing as mp
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec

from bench import records
from bench.e2e_report import alarm_key
from bench.support import (
    REDELIVERED_METRIC,
    CountingSubscriber,
    cpu_seconds,
    create_session,
    fresh_broker,
    fresh_database,
)
from firetower.runner import run_async
from firetower.settings import Settings

PUBLISHER = "bench.e2e_publisher"
COUNTER_ID = "bench-e2e-counter"
SMOKE_HOLD_S = 12.0  # a smoke fire's detector reads above the alarm level this long (for_s 10)
# The alarm row's latency clocks, in pipeline order (ingested_at, shown_at and delivered_at
# come with migration 0005; a column that does not exist is read as None).
CLOCKS = ("device_ts", "received_at", "ingested_at", "stored_at", "shown_at",
          "acknowledged_at", "verdict_at", "forwarded_at", "delivered_at")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--devices", type=int, default=20_000,
                        help="registered devices (rounded up to whole sites)")
    parser.add_argument("--per-kind", type=int, default=10,
                        help="devices of each field kind per site (plus one panel per site)")
    parser.add_argument("--interval", type=float, default=60.0,
                        help="each device reports every S seconds (rate = devices / S)")
    parser.add_argument("--rate", type=float, help="offered telemetry msg/s (instead of "
                        "devices / interval)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of publishing")
    parser.add_argument("--fires", type=int, default=10, help="fires injected")
    parser.add_argument("--fire-kind", choices=("panel", "smoke", "mixed"), default="panel",
                        help="panel: the panel's fire event for a smoke detector (alarm at "
                             "once); smoke: the detector's own readings cross the alarm level "
                             f"with CO and heat (alarm after the rule's {SMOKE_HOLD_S - 2:.0f} s "
                             "hold); mixed: alternately")
    parser.add_argument("--burst", type=float, default=1.0,
                        help="X: publish at X times the rate during the burst")
    parser.add_argument("--burst-duration", type=float, default=10.0, help="seconds")
    parser.add_argument("--burst-at", type=float,
                        help="burst start, seconds into the run (default: centred)")
    parser.add_argument("--publishers", type=int, default=2, help="publisher processes")
    parser.add_argument("--ceiling-messages", type=int,
                        help="backlog for the broker-only ceiling (default: the run's "
                             "messages, at most 200,000)")
    parser.add_argument("--skip-ceiling", action="store_true")
    parser.add_argument("--plain", action="store_true",
                        help="plain PostgreSQL even if TimescaleDB is installed")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="write the full result as JSON ('-' for stdout)")
    parser.add_argument("--plot", type=Path, metavar="PATH.png",
                        help="rate, latency and CPU over time (PNG)")
    parser.add_argument("--profile-ingest", type=Path, metavar="PATH",
                        help="write a cProfile of the ingester process here")
    parser.add_argument("--broker-budget", type=int, metavar="BYTES",
                        help="the ingester's broker memory budget (FIRETOWER_BROKER_MEMORY_BUDGET;"
                             " default: half this machine's memory): backlog alarms at 50 and "
                             "80 %% of it")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    parser.add_argument("--settle-timeout", type=float, default=120.0,
                        help="seconds to wait, after publishing, for the store and the fires")


# What the record keeps of a run (the full result, with every sample and fire, is --json's)
RECORD_KEYS = ("storage", "cores", "load_average_start", "load_average_end", "config",
               "fleet_build_s", "register_s", "startup_s", "ceiling", "published", "throughput",
               "fires", "latency_ms", "latency_ms_by_kind", "processes", "receiver",
               "postgres_busy_backends")


def main(args: argparse.Namespace, settings: Settings) -> int:
    begun = records.start()

    async def go() -> int:
        from bench.e2e_report import format_report, plot

        logging.getLogger("httpx").setLevel(logging.WARNING)
        result = await run_bench(args, settings)
        if args.plot:
            plot(result, args.plot)
            result["plot"] = str(args.plot)
        if args.json:
            text = json.dumps(result, indent=2)
            if str(args.json) == "-":
                print(text)
            else:
                args.json.write_text(text)
        print(format_report(result), file=sys.stderr if str(args.json) == "-" else sys.stdout)
        checks = [records.Check(**c) for c in result["checks"]]
        return records.finish("e2e", args, begun, {k: result[k] for k in RECORD_KEYS
                                                   if k in result}, checks)

    return run_async(go)


def _log(text: str) -> None:
    print(f"bench e2e: {text}", file=sys.stderr, flush=True)


# -- the fleet and the fires ------------------------------------------------------------------
def plan_fires(fleet: Any, n: int, duration: float, seed: int,
               kind: str = "panel") -> list[dict[str, Any]]:
    """`n` smoke detectors on distinct sites (then distinct points), each catching fire at an
    instant spread evenly over the middle of the run: signalled by its panel's fire event
    (`panel`), or by its own readings crossing the alarm level (`smoke`), or alternately."""
    from firetower.model import DeviceKind

    rng = random.Random(f"bench-e2e/{seed}")
    smoke = fleet.of_kind(DeviceKind.SMOKE_DETECTOR)
    if n and not smoke:
        raise SystemExit("bench e2e: the fleet has no smoke detector (--per-kind 0)")
    by_site: dict[str, list[Any]] = {}
    for d in smoke:
        by_site.setdefault(d.site_id, []).append(d)
    sites = list(by_site)
    rng.shuffle(sites)
    for s in sites:
        rng.shuffle(by_site[s])
    chosen = []
    for k in range(min(n, len(smoke))):
        chosen.append(by_site[sites[k % len(sites)]][k // len(sites)])
    kinds = ["smoke" if kind == "smoke" or (kind == "mixed" and k % 2) else "panel"
             for k in range(len(chosen))]
    span = duration - (SMOKE_HOLD_S + 1.0 if "smoke" in kinds else 0.0)
    if chosen and span <= 0:
        raise SystemExit(f"bench e2e: smoke fires need --duration > {SMOKE_HOLD_S + 1:.0f} s")
    fires = []
    for k, (d, fk) in enumerate(zip(chosen, kinds, strict=True)):
        at = span * (0.5 if n == 1 else 0.1 + 0.8 * k / (n - 1))
        fire = {"fire": k, "kind": fk, "at": round(at, 3), "detector": d.id,
                "panel": d.parent_id, "zone": d.zone, "point": d.point, "location": d.location}
        if fk == "panel":
            fire.update(device=d.parent_id)
        else:
            fire.update(device=d.id, hold_s=SMOKE_HOLD_S, every_s=1.0)
        fires.append(fire)
    return fires


def _write_partitions(fleet: Any, n: int, workdir: Path) -> tuple[list[Path], dict[str, int]]:
    parts: list[list[tuple[str, str]]] = [[] for _ in range(n)]
    owner: dict[str, int] = {}
    for j, d in enumerate(fleet.devices):
        parts[j % n].append((d.id, d.kind.value))
        owner[d.id] = j % n
    paths = []
    for i, part in enumerate(parts):
        p = workdir / f"devices-{i}.msgpack"
        p.write_bytes(msgspec.msgpack.encode(part))
        paths.append(p)
    return paths, owner


# -- processes ----------------------------------------------------------------------------------
@dataclass
class Publisher:
    """One publisher process and what it reported."""

    proc: asyncio.subprocess.Process
    index: int
    last: dict[str, Any] = field(default_factory=lambda: {"sent": 0, "acked": 0})
    final: dict[str, Any] | None = None
    reader: asyncio.Task[None] | None = None

    async def read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            try:
                rep = json.loads(line)
            except ValueError:
                continue
            self.last = rep
            if rep.get("final"):
                self.final = rep


async def start_publishers(workdir: Path, files: list[Path], port: int, tag: str,
                           common: dict[str, Any], per: list[dict[str, Any]]) -> list[Publisher]:
    pubs = []
    for i, f in enumerate(files):
        cfg = {"host": "127.0.0.1", "port": port, "devices_file": str(f),
               "client_id": f"bench-e2e-{tag}-{i}-{os.getpid()}", **common, **per[i]}
        path = workdir / f"publisher-{tag}-{i}.json"
        path.write_text(json.dumps(cfg))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", PUBLISHER, str(path), stdout=subprocess.PIPE,
            stderr=open(workdir / f"publisher-{tag}-{i}.log", "wb"))
        p = Publisher(proc, i)
        p.reader = asyncio.create_task(p.read())
        pubs.append(p)
    return pubs


async def finish_publishers(pubs: list[Publisher], timeout: float) -> list[dict[str, Any]]:
    await asyncio.wait_for(asyncio.gather(*(p.proc.wait() for p in pubs)), timeout)
    await asyncio.gather(*(p.reader for p in pubs if p.reader))
    finals = []
    for p in pubs:
        if p.final is None or p.final.get("error"):
            raise RuntimeError(f"publisher {p.index} failed: {p.final}")
        finals.append(p.final)
    return finals


def _spawn(name: str, argv: list[str], env: dict[str, str], workdir: Path,
           profile: Path | None = None) -> subprocess.Popen[bytes]:
    log = open(workdir / f"{name}.log", "wb")
    prof = ["-m", "cProfile", "-o", str(profile)] if profile else []
    return subprocess.Popen([sys.executable, *prof, "-m", "firetower", *argv], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def _wait_for(what: str, check: Any, timeout: float, proc: subprocess.Popen[bytes] | None,
                    workdir: Path, log_name: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        try:
            if await check():
                return
        except (OSError, httpx.HTTPError, asyncpg.PostgresError):
            pass
        await asyncio.sleep(0.2)
    tail = (workdir / f"{log_name}.log").read_text(errors="replace")[-2000:]
    raise RuntimeError(f"{what} did not start:\n{tail}")


def _drop_session(port: int, client_id: str) -> None:
    """End a persistent session (the ceiling's), so the run's messages do not queue for it."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    c.connect("127.0.0.1", port)
    c.loop(0.5)
    c.disconnect()
    c.loop(0.1)


class Sampler:
    """CPU seconds and peak RSS of named processes from /proc, every `every` seconds, plus the
    run's counters (published, stored) next to them."""

    def __init__(self, every: float = 1.0) -> None:
        self.every = every
        self.pids: dict[str, int] = {}
        self.cpu: dict[str, float] = {}      # last CPU seconds seen
        self.cpu0: dict[str, float] = {}     # at mark()
        self.peak_kb: dict[str, int] = {}
        self.rows: list[dict[str, Any]] = []
        self.pg_pids: dict[int, float] = {}  # backends of the bench database: last CPU s
        self.counters: Any = None            # async () -> dict of counters

    def add(self, name: str, pid: int) -> None:
        self.pids[name] = pid
        self._read(name, pid)

    def _read(self, name: str, pid: int) -> None:
        try:
            self.cpu[name] = cpu_seconds(pid)
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_kb[name] = max(self.peak_kb.get(name, 0), int(line.split()[1]))
        except (OSError, IndexError, ValueError):
            pass  # gone: keep the last reading

    async def sample(self, conn: asyncpg.Connection | None, dbname: str) -> dict[str, Any]:
        for name, pid in self.pids.items():
            self._read(name, pid)
        waits: dict[str, int] = {}
        if conn is not None:
            for r in await conn.fetch(
                    "SELECT pid, state, wait_event_type, wait_event FROM pg_stat_activity"
                    " WHERE datname = $1 AND pid <> pg_backend_pid()", dbname):
                try:
                    self.pg_pids[r["pid"]] = cpu_seconds(r["pid"])
                except OSError:
                    pass
                if r["state"] not in (None, "idle"):  # what the busy backends wait on
                    w = f"{r['wait_event_type']}:{r['wait_event']}" if r["wait_event"] else "CPU"
                    waits[w] = waits.get(w, 0) + 1
            self.cpu["postgres"] = sum(self.pg_pids.values())
        row = {"t": time.time(), "cpu": dict(self.cpu), "pg_waits": waits}
        if self.counters is not None:
            row.update(await self.counters())
        self.rows.append(row)
        return row

    def mark(self) -> None:
        self.cpu0 = dict(self.cpu)

    async def loop(self, url: str, dbname: str) -> None:
        conn = await asyncpg.connect(url)
        try:
            while True:
                await self.sample(conn, dbname)
                await asyncio.sleep(self.every)
        finally:
            await conn.close()


# The ingester's metrics read during the run (summed over labels). They move when a batch
# commits; `pending` is the batch being written, and a batch write slower than 1 s is a stall
# on the database side (the ingester waits for the write to commit).
INGEST_METRICS = {"firetower_ingest_stored_total": "stored",
                  REDELIVERED_METRIC: "redelivered",
                  # the broker's backlog as the ingester's watch reads it (docs/overload.md)
                  "firetower_broker_heap_bytes": "broker_heap",
                  "firetower_broker_memory_budget_bytes": "broker_budget",
                  "firetower_ingest_pending_messages": "pending",
                  "firetower_ingest_flush_seconds_count": "flushes",
                  'firetower_ingest_flush_seconds_bucket{le="1.0"}': "flushes_within_1s"}


async def _ingest_metrics(client: httpx.AsyncClient, port: int) -> dict[str, int | None]:
    # A saturated ingester answers its metrics thread late (the GIL): wait, retry, never die.
    for attempt in range(10):
        try:
            text = (await client.get(f"http://127.0.0.1:{port}/metrics", timeout=30)).text
            break
        except httpx.HTTPError:
            if attempt == 9:
                raise
            await asyncio.sleep(1.0)
    # the broker gauges are unknown (None) until exported and reported, never 0
    out = {k: math.nan if k.startswith("broker_") else 0.0 for k in INGEST_METRICS.values()}
    for line in text.splitlines():
        name, _, labels = line.partition("{")
        name = name.partition(" ")[0]
        if 'le="1.0"' in labels:
            name += '{le="1.0"}'
        if name in INGEST_METRICS:
            key, value = INGEST_METRICS[name], float(line.rsplit(" ", 1)[1])
            out[key] = value if math.isnan(out[key]) else out[key] + value
    return {k: None if math.isnan(v) else int(v) for k, v in out.items()}


async def _ingest_stored(client: httpx.AsyncClient, port: int) -> int:
    return (await _ingest_metrics(client, port))["stored"] or 0


async def wait_stored(client: httpx.AsyncClient, port: int, n: int, deadline: float) -> int:
    """Poll the ingester's stored count until it reaches `n` or time.monotonic() passes
    `deadline`; the last count read."""
    stored = 0
    while time.monotonic() < deadline:
        stored = await _ingest_stored(client, port)
        if stored >= n:
            break
        await asyncio.sleep(0.2)
    return stored


# -- the run ----------------------------------------------------------------------------------
async def run_bench(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from api.permissions import Role
    from api.users import add_user
    from bench.e2e_report import analyse
    from bench.ingest import _wait_subscribed
    from bench.webhooks import ReceiverProcess
    from firetower.broker import free_port
    from simulators.fleet import build_fleet
    from simulators.registry import register_fleet

    per_site = 1 + 3 * args.per_kind
    sites = max(1, math.ceil(args.devices / per_site))
    t = time.perf_counter()
    fleet = build_fleet(args.seed, sites, args.per_kind)
    n_devices = len(fleet.devices)
    rate = args.rate or n_devices / args.interval
    burst_at = args.burst_at if args.burst_at is not None else max(
        0.0, (args.duration - args.burst_duration) / 2)
    fires = plan_fires(fleet, args.fires, args.duration, args.seed, args.fire_kind)
    result: dict[str, Any] = {
        "benchmark": "e2e", "cores": os.cpu_count(), "load_average_start": os.getloadavg()[0],
        "config": {"devices": n_devices, "sites": sites, "per_kind": args.per_kind,
                   "interval_s": None if args.rate else args.interval,
                   "offered_rate": round(rate, 1), "duration_s": args.duration,
                   "fires": len(fires), "fire_kind": args.fire_kind, "burst": args.burst,
                   "burst_s": args.burst_duration if args.burst != 1 else 0.0,
                   "burst_at_s": burst_at if args.burst != 1 else None,
                   "publishers": args.publishers, "plain": args.plain, "seed": args.seed},
        "fleet_build_s": round(time.perf_counter() - t, 2),
    }
    workdir = Path(tempfile.mkdtemp(prefix="firetower-bench-e2e-"))
    ctx = mp.get_context("spawn")
    try:
        with fresh_broker() as broker:
            async with fresh_database(settings.database_url, "firetower_bench_e2e",
                                      plain=args.plain, keep=args.keep) as url:
                result.update(await _run(args, settings, url, broker, fleet, rate, burst_at,
                                         fires, workdir, ctx, free_port, add_user, Role,
                                         register_fleet, _wait_subscribed, ReceiverProcess))
        result.update(analyse(result))
    finally:
        if result.get("ok"):
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            result["logs"] = str(workdir)
    result["load_average_end"] = os.getloadavg()[0]
    return result


async def _run(args: argparse.Namespace, settings: Settings, url: str, broker: Any, fleet: Any,
               rate: float, burst_at: float, fires: list[dict[str, Any]], workdir: Path,
               ctx: Any, free_port: Any, add_user: Any, Role: Any, register_fleet: Any,
               wait_subscribed: Any, ReceiverProcess: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    dbname = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(url)
    out["storage"] = await conn.fetchval("SELECT flavour FROM schema_migrations LIMIT 1")
    t = time.perf_counter()
    reg = await register_fleet(conn, fleet)
    out["register_s"] = round(time.perf_counter() - t, 2)
    _log(f"registered {reg.devices:,} devices at {reg.sites:,} sites in {out['register_s']} s "
         f"({out['storage']})")
    passwords = {"bench-admin": secrets.token_urlsafe(12), "bench-operator": secrets.token_urlsafe(12)}
    await add_user(conn, "bench-admin", Role.ADMIN, passwords["bench-admin"], None)
    await add_user(conn, "bench-operator", Role.OPERATOR, passwords["bench-operator"], None)
    files, owner = _write_partitions(fleet, max(1, args.publishers), workdir)
    total = int(rate * (args.duration + (args.burst - 1) * min(
        args.burst_duration, max(0.0, args.duration - burst_at))))
    if not args.skip_ceiling:
        out["ceiling"] = await _ceiling(args, broker.port, files, workdir,
                                        args.ceiling_messages or min(max(total, 1000), 200_000))
        _log(f"ceiling: {out['ceiling']}")

    # -- the components ---------------------------------------------------------------------
    sampler = Sampler()
    rx = ReceiverProcess()
    rx.start()
    sampler.add("receiver", rx._proc.pid)
    sampler.add("mosquitto", broker.process.pid)
    api_port, metrics_port = free_port(), free_port()
    env = dict(os.environ, FIRETOWER_DATABASE_URL=url, FIRETOWER_MQTT_URL=broker.url,
               FIRETOWER_METRICS_PORT=str(metrics_port),
               FIRETOWER_API_METRICS_PORT=str(free_port()),
               FIRETOWER_DISPATCH_METRICS_PORT=str(free_port()),
               FIRETOWER_API_PORT=str(api_port), FIRETOWER_API_HOST="127.0.0.1",
               FIRETOWER_PUBLIC_URL=f"http://127.0.0.1:{api_port}",
               FIRETOWER_API_TOKEN_MINUTES="1440",
               FIRETOWER_INGEST_CLIENT_ID=f"bench-e2e-ingest-{os.getpid()}",
               # the benchmark's own receiver listens on loopback, which the webhook address
               # policy refuses unless allowed (docs/security.md)
               FIRETOWER_WEBHOOK_ALLOW_NETWORKS="127.0.0.0/8")
    if args.broker_budget:
        env["FIRETOWER_BROKER_MEMORY_BUDGET"] = str(args.broker_budget)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    operator: Any = None
    stop_op = ctx.Event()
    op_out = ctx.Queue()
    http = httpx.AsyncClient(timeout=10.0)
    sample_task: asyncio.Task[None] | None = None
    api = f"http://127.0.0.1:{api_port}"
    try:
        t = time.perf_counter()
        procs["ingest"] = _spawn("ingest", ["ingest"], env, workdir, args.profile_ingest)
        procs["api"] = _spawn("api", ["api", "--no-migrate"], env, workdir)
        procs["dispatch"] = _spawn("dispatch", ["dispatch", "--no-migrate"], env, workdir)
        for name, p in procs.items():
            sampler.add(name, p.pid)

        async def ingest_ready() -> bool:
            await wait_subscribed(conn, broker.port)
            return True

        async def api_ready() -> bool:
            return (await http.get(f"{api}/api/v1/openapi.json")).status_code == 200

        async def dispatch_ready() -> bool:
            return "dispatch ready" in (workdir / "dispatch.log").read_text(errors="replace")

        await asyncio.gather(
            _wait_for("firetower ingest", ingest_ready, 600, procs["ingest"], workdir, "ingest"),
            _wait_for("firetower api", api_ready, 120, procs["api"], workdir, "api"),
            _wait_for("firetower dispatch", dispatch_ready, 120, procs["dispatch"], workdir,
                      "dispatch"))
        out["startup_s"] = round(time.perf_counter() - t, 2)
        _log(f"ingest, api and dispatch up in {out['startup_s']} s")

        # webhook endpoint through the API, the operator on the live stream
        r = await http.post(f"{api}/api/v1/auth/token",
                            data={"username": "bench-admin", "password": passwords["bench-admin"]})
        r.raise_for_status()
        admin = {"Authorization": f"Bearer {r.json()['access_token']}"}
        r = await http.post(f"{api}/api/v1/webhooks", headers=admin, json={
            "name": "bench receiver", "url": rx.url, "classes": ["fire"],
            "event_types": ["alarm.raised", "alarm.verdict", "alarm.forwarded"]})
        r.raise_for_status()
        rx.call("secrets", [r.json()["secret"]])
        from bench.e2e_operator import operator_main

        ready = ctx.Event()
        operator = ctx.Process(target=operator_main, daemon=True, args=(
            api, "bench-operator", passwords["bench-operator"], ready, stop_op, op_out))
        operator.start()
        sampler.add("operator", operator.pid)
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, ready.wait, 30):
            raise RuntimeError("the operator client did not get the stream's snapshot")

        # -- publish ------------------------------------------------------------------------
        n_pub = len(files)
        t0 = time.time() + 1.0
        per = [{"rate": rate / n_pub,
                "fires": [f for f in fires if owner[f["device"]] == i]} for i in range(n_pub)]
        common = {"t0": t0, "duration": args.duration, "burst_factor": args.burst,
                  "burst_start": burst_at, "burst_s": args.burst_duration}
        pubs = await start_publishers(workdir, files, broker.port, "run", common, per)
        for pub in pubs:
            sampler.add(f"publisher-{pub.index}", pub.proc.pid)

        async def counters() -> dict[str, Any]:
            try:
                m: dict[str, int | None] = dict(await _ingest_metrics(http, metrics_port))
            except (OSError, httpx.HTTPError):
                m = dict.fromkeys(INGEST_METRICS.values())
            return {"sent": sum(p.last.get("sent", 0) for p in pubs),
                    "acked": sum(p.last.get("acked", 0) for p in pubs), **m}

        sampler.counters = counters
        # the CPU window opens when publishing starts (t0): the publishers' start-up and the
        # components' idle time before it are not counted
        await asyncio.sleep(max(0.0, t0 - time.time()))
        await sampler.sample(None, dbname)
        sampler.mark()
        sample_task = asyncio.create_task(sampler.loop(url, dbname))
        _log(f"publishing {rate:,.0f} msg/s from {len(fleet.devices):,} devices for "
             f"{args.duration} s, {len(fires)} fires")
        finals = await finish_publishers(pubs, args.duration + 600)
        published_end = max(f["t"] for f in finals)
        out["published"] = {"telemetry": sum(f["telemetry"] for f in finals),
                            "events": sum(f["events"] for f in finals),
                            "acked": sum(f["acked"] for f in finals),
                            "publishing_ended": max(p.last.get("published_until", 0)
                                                    for p in pubs) or published_end}
        fired = [x for f in finals for x in f["fires"]]
        n_msgs = out["published"]["telemetry"] + out["published"]["events"]

        # -- settle: everything stored, every fire shown and delivered -------------------------
        deadline = time.monotonic() + args.settle_timeout
        stored = await wait_stored(http, metrics_port, n_msgs, deadline)
        out["stored_at_settle"] = {"t": time.time(), "stored": stored}
        rx_got: list[Any] = []
        keys = [alarm_key(f) for f in fires if f["fire"] in {x["fire"] for x in fired}]
        while time.monotonic() < deadline:
            rx_got, _, _ = rx.call("dump")
            forwarded = {a for _, typ, a, _ in rx_got if typ == "alarm.forwarded"}
            alarmed = await conn.fetchval(  # injected fires with a fire alarm
                "SELECT count(DISTINCT (device_id, point)) FROM alarms WHERE class = 'fire'"
                " AND (device_id, point) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
                [k[0] for k in keys], [k[1] for k in keys])
            n_fire_alarms = await conn.fetchval(
                "SELECT count(*) FROM alarms WHERE class = 'fire' AND mode = 'normal'")
            if alarmed >= len(keys) and len(forwarded) >= n_fire_alarms:
                break
            await asyncio.sleep(0.5)
        await sampler.sample(None, dbname)
        sample_task.cancel()
        stop_op.set()
        op = await loop.run_in_executor(None, op_out.get, True, 60)
        rx_got, rx_requests, rx_bad = rx.call("dump")
        out["operator"] = {k: v for k, v in op.items() if k != "fires"}
        out["receiver"] = {"unique": len(rx_got), "requests": rx_requests,
                           "bad_signatures": rx_bad}
        out["db"] = await _database_figures(conn)
        out["fire_rows"] = await _alarm_rows(conn)
        out["broker_alarms"] = [
            {"type": r["type"], "state": r["state"], "raised_at": r["raised_at"].timestamp(),
             "cleared_at": r["cleared_at"] and r["cleared_at"].timestamp(),
             "evidence": json.loads(r["evidence"])}
            for r in await conn.fetch(
                "SELECT type, state, raised_at, cleared_at, evidence FROM alarms"
                " WHERE device_id LIKE 'broker:%' ORDER BY id")]
        out["fired"] = fired
        out["fires_plan"] = fires
        out["operator_fires"] = op["fires"]
        out["receiver_events"] = [{"type": typ, "alarm_id": a, "at": at}
                                  for _, typ, a, at in rx_got]
        out["t0"] = t0
        out["samples"] = sampler.rows
        out["cpu0"] = sampler.cpu0
        out["peak_rss_kb"] = sampler.peak_kb
    finally:
        if sample_task is not None:
            sample_task.cancel()
        stop_op.set()
        await http.aclose()
        if operator is not None:
            operator.join(10)
        for name in ("ingest", "api", "dispatch"):
            if name in procs:
                _stop(procs[name], signal.SIGINT if name == "ingest" else signal.SIGTERM)
        rx.stop()
        await conn.close()
    return out


async def _ceiling(args: argparse.Namespace, port: int, files: list[Path], workdir: Path,
                   n: int) -> dict[str, Any]:
    """The broker alone: the same publishers queue `n` messages for a persistent counting
    session, which then drains them (first to last message received)."""
    create_session(port, COUNTER_ID)
    k = len(files)
    per = [{"count": n // k + (1 if i < n % k else 0)} for i in range(k)]
    pubs = await start_publishers(workdir, files, port, "ceiling", {}, per)
    finals = await finish_publishers(pubs, 600)
    pub_s = max(f["t"] for f in finals) - min(f["started"] for f in finals)
    counter = CountingSubscriber(port, n, client_id=COUNTER_ID, persistent=True)
    counter.start()
    got = await counter.result()
    _drop_session(port, COUNTER_ID)
    return {"messages": n, "received": got["received"], "lost": n - got["received"],
            "msgs_per_s": round(got["received"] / max(got["seconds"], 1e-9)),
            "publish_msgs_per_s": round(sum(f["acked"] for f in finals) / pub_s),
            "subscriber_cpu_us_per_msg": round(got["cpu_s"] / max(got["received"], 1) * 1e6, 1)}


async def _database_figures(conn: asyncpg.Connection) -> dict[str, Any]:
    q = conn.fetchval
    return {
        "telemetry_rows": await q("SELECT count(*) FROM telemetry"),
        "telemetry_distinct": await q(
            "SELECT count(*) FROM (SELECT DISTINCT device_id, seq, ts FROM telemetry) d"),
        "event_rows": await q("SELECT count(*) FROM events"),
        "event_distinct": await q(
            "SELECT count(*) FROM (SELECT DISTINCT device_id, seq, ts FROM events) d"),
        "rejects": await q("SELECT count(*) FROM rejects"),
        "alarms_by_class": {r["class"]: r["n"] for r in await conn.fetch(
            "SELECT class, count(*) AS n FROM alarms GROUP BY class")},
        "stored_per_s": [(r["s"], r["n"]) for r in await conn.fetch(
            "SELECT extract(epoch FROM date_trunc('second', received_at))::bigint AS s,"
            " count(*) AS n FROM telemetry GROUP BY 1 ORDER BY 1")],
    }


async def _alarm_rows(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    have = {r["column_name"] for r in await conn.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'alarms'")}
    cols = ", ".join(f"extract(epoch FROM {c})::float8 AS {c}" if c in have else f"NULL AS {c}"
                     for c in CLOCKS)
    rows = await conn.fetch(f"SELECT id, device_id, point, type, forward_basis, {cols} "
                            "FROM alarms WHERE class = 'fire' ORDER BY id")
    return [dict(r) for r in rows]
