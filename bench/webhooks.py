"""`firetower bench webhooks`: operator verdict -> webhook receiver latency, and deliveries/s.

Three processes, as in production: this one plays the API (it writes verdicts through the
alarm store), `python -m dispatch` delivers, and a receiver process (dispatch/receiver.py)
verifies every signature and time-stamps arrivals. Against a throwaway database.

1. Latency: `--alarms` open fire alarms get a `true_fire` verdict every `--interval-ms`; for
   each, the time from just before the verdict transaction starts to the arrival of its
   `alarm.verdict` webhook at the receiver (one hop through the outbox), and of its
   `alarm.forwarded` webhook (two hops: the forwarder writes the forward event on the
   verdict's NOTIFY). p50/p99/max. Goal p99 <= 100 ms (GB 50440 allows 3 s).
2. Throughput: `--backlog` events queued for 1 and for `--endpoints` endpoints while no
   dispatcher runs, then a dispatcher started: deliveries/s from its start until the receiver
   has them all (a backlog drain, as after an outage; one message in flight per endpoint).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import records
from bench.stats import summary
from bench.support import cpu_seconds
from firetower.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--alarms", type=int, default=500, help="verdicts in the latency run")
    parser.add_argument("--interval-ms", type=float, default=20.0,
                        help="time between verdicts in the latency run")
    parser.add_argument("--backlog", type=int, default=4000,
                        help="events queued per endpoint in the throughput run")
    parser.add_argument("--endpoints", type=int, default=4, help="endpoints in parallel")
    parser.add_argument("--keep-db", action="store_true", help="keep the benchmark database")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")


def main(args: argparse.Namespace, settings: Settings) -> int:
    begun = records.start()
    report = asyncio.run(run(settings, args))
    print(json.dumps(report, indent=2) if args.json else render(report))
    return records.finish("webhooks", args, begun, report, checks(report))


def checks(r: dict[str, Any]) -> list[records.Check]:
    """Every verdict gave its `alarm.verdict` and `alarm.forwarded` webhook, once each, every
    backlog message was delivered, and every signature verified."""
    lat = r["latency"]
    out = [records.equal("latency run: alarm.verdict received for every verdict",
                         lat["verdict_ms"].get("n", 0), lat["verdicts"]),
           records.equal("latency run: alarm.forwarded received for every verdict",
                         lat["forwarded_ms"].get("n", 0), lat["verdicts"]),
           records.equal("latency run: no bad signature", lat["bad_signatures"], 0)]
    for name, t in sorted(r["throughput"].items()):
        out.append(records.equal(f"backlog drain, {name.replace('_', ' ')}: every message "
                                 "delivered", t["deliveries"], t["expected"]))
        out.append(records.equal(f"backlog drain, {name.replace('_', ' ')}: no bad signature",
                                 t["bad_signatures"], 0))
    return out


# -- receiver process -------------------------------------------------------------------------
def _receiver_main(port: int, secrets: Any, cmd: Any, out: Any) -> None:
    from dispatch.receiver import Receiver

    async def serve() -> None:
        rx = await Receiver([], port=port).start()
        loop = asyncio.get_running_loop()
        while True:
            op, arg = await loop.run_in_executor(None, cmd.get)
            if op == "secrets":
                rx.secrets[:] = arg
                out.put(True)
            elif op == "dump":
                out.put(([(r.id, r.type, r.body["data"].get("alarm", {}).get("id"), r.at)
                          for r in rx.unique], len(rx.requests), rx.bad_signatures))
            elif op == "count":
                out.put(len(rx.unique))
            elif op == "requests":
                out.put(len(rx.requests))
            else:
                await rx.stop()
                out.put(True)
                return

    asyncio.run(serve())


class ReceiverProcess:
    def __init__(self) -> None:
        from firetower.broker import free_port

        ctx = mp.get_context("spawn")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._cmd, self._out = ctx.Queue(), ctx.Queue()
        self._proc = ctx.Process(target=_receiver_main, daemon=True,
                                 args=(self.port, [], self._cmd, self._out))

    def call(self, op: str, arg: Any = None) -> Any:
        self._cmd.put((op, arg))
        return self._out.get(timeout=60)

    def start(self) -> None:
        self._proc.start()
        time.sleep(0.1)

    def stop(self) -> None:
        if self._proc.is_alive():
            self.call("stop")
        self._proc.join(5)


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _spawn_dispatcher(db_url: str) -> subprocess.Popen[str]:
    # the benchmark's receiver listens on loopback, refused unless allowed (docs/security.md)
    env = {**os.environ, "FIRETOWER_DATABASE_URL": db_url,
           "FIRETOWER_WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8"}
    p = subprocess.Popen([sys.executable, "-m", "dispatch", "--no-migrate"], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert p.stdout is not None
    if "ready" not in p.stdout.readline():
        raise RuntimeError("dispatcher did not start")
    return p


# -- the runs ---------------------------------------------------------------------------------
async def run(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    from bench.support import fresh_database
    from firetower import db

    rx = ReceiverProcess()
    rx.start()
    try:
        async with fresh_database(settings.database_url, "firetower_bench_webhooks",
                                  keep=args.keep_db) as url:
            pool = await db.create_pool(url, min_size=2, max_size=8)
            try:
                proc = _spawn_dispatcher(url)
                try:
                    latency = await _latency(pool, settings, rx, args)
                finally:
                    _stop(proc)
                return {"latency": latency,
                        "throughput": await _throughput(pool, url, settings, rx, args)}
            finally:
                await pool.close()
    finally:
        rx.stop()


async def _endpoint(pool: Any, settings: Settings, url: str, **values: Any) -> tuple[int, str]:
    from firetower.webhooks import subscriptions
    from firetower.webhooks.secretbox import SecretBox

    box = SecretBox(settings.secret_key.get_secret_value())
    async with pool.acquire() as conn:
        row, secret = await subscriptions.create(conn, box, {"url": url, **values}, None)
    return row["id"], secret


async def _seed(pool: Any, n: int) -> None:
    await pool.execute("INSERT INTO sites (id, name, address) VALUES ('b1', 'Bench', 'Road 1')"
                       " ON CONFLICT DO NOTHING")
    await pool.executemany(
        "INSERT INTO devices (id, kind, site_id, zone, location) VALUES"
        " ($1, 'smoke_detector', 'b1', 1, 'corridor') ON CONFLICT DO NOTHING",
        [(f"b{i:05d}",) for i in range(n)])


async def _raise(store: Any, device: str, rule: str, alarm_class: Any = None) -> int:
    from firetower.alarm_store import AlarmKey, Occurrence
    from firetower.alarms import AlarmClass

    now = datetime.now(UTC)
    change = await store.raise_or_recur(Occurrence(
        AlarmKey(device, "", rule), alarm_class or AlarmClass.FIRE, now, site_id="b1", received_at=now,
        confidence=0.9, evidence={"obscuration_pct_per_m": 4.0}))
    return change.alarm_id


async def _latency(pool: Any, settings: Settings, rx: ReceiverProcess,
                   args: argparse.Namespace) -> dict[str, Any]:
    from firetower.alarm_store import AlarmStore
    from firetower.alarms import Trigger, Verdict

    store = AlarmStore(pool)
    await _seed(pool, args.alarms)
    _, secret = await _endpoint(pool, settings, rx.url,
                                event_types=["alarm.verdict", "alarm.forwarded"])
    rx.call("secrets", [secret])
    alarms = [await _raise(store, f"b{i:05d}", "smoke.threshold") for i in range(args.alarms)]
    await asyncio.sleep(0.5)
    sent: dict[int, float] = {}
    committed: dict[int, float] = {}
    for a in alarms:
        sent[a] = time.time()
        await store.transition(a, Trigger.VERDICT, actor="operator:bench",
                               verdict=Verdict.TRUE_FIRE)
        committed[a] = time.time()
        await asyncio.sleep(args.interval_ms / 1000)
    deadline = time.monotonic() + 30
    while rx.call("count") < 2 * len(alarms) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    got, requests, bad = rx.call("dump")
    lat: dict[str, list[float]] = {"alarm.verdict": [], "alarm.forwarded": [], "commit": [],
                                   "dispatch": []}
    for _id, type_, alarm_id, at in got:
        if alarm_id in sent and type_ in lat:
            lat[type_].append((at - sent[alarm_id]) * 1000)
            if type_ == "alarm.verdict":
                lat["commit"].append((committed[alarm_id] - sent[alarm_id]) * 1000)
                lat["dispatch"].append((at - committed[alarm_id]) * 1000)
    return {"verdicts": len(alarms), "received": len(got), "requests": requests,
            "bad_signatures": bad, "interval_ms": args.interval_ms,
            "verdict_ms": _pct(lat["alarm.verdict"]),
            "forwarded_ms": _pct(lat["alarm.forwarded"]),
            "verdict_commit_ms": _pct(lat["commit"]),
            "commit_to_receiver_ms": _pct(lat["dispatch"]),
            "load_average": os.getloadavg()[0]}


async def _throughput(pool: Any, url: str, settings: Settings, rx: ReceiverProcess,
                      args: argparse.Namespace) -> dict[str, Any]:
    """Queue a backlog while no dispatcher runs, then start one and time the drain."""
    from firetower.alarm_store import AlarmStore
    from firetower.alarms import AlarmClass

    store = AlarmStore(pool)
    await pool.execute("UPDATE webhook_endpoints SET enabled = false")
    out: dict[str, Any] = {}
    for n_endpoints in sorted({1, args.endpoints}):
        ids, secrets = [], []
        for _ in range(n_endpoints):
            eid, s = await _endpoint(pool, settings, rx.url, event_types=["alarm.raised"])
            ids.append(eid)
            secrets.append(s)
        rx.call("secrets", secrets)
        before = rx.call("requests")
        tag = f"t{n_endpoints}"
        for i in range(args.backlog):
            await _raise(store, f"b{i % args.alarms:05d}", f"{tag}.{i}", AlarmClass.FAULT)
        total = args.backlog * n_endpoints
        proc = _spawn_dispatcher(url)
        t0 = time.time()
        cpu0 = cpu_seconds(proc.pid)  # it is up: start-up done
        try:
            deadline = time.monotonic() + 300
            while rx.call("requests") < before + total and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            last = time.time()
            cpu = cpu_seconds(proc.pid) - cpu0
        finally:
            _stop(proc)
        _got, requests, bad = rx.call("dump")
        n = requests - before
        await pool.execute("UPDATE webhook_endpoints SET enabled = false WHERE id = ANY($1)", ids)
        out[f"{n_endpoints}_endpoint{'s' if n_endpoints > 1 else ''}"] = {
            "deliveries": n, "expected": total, "seconds": round(last - t0, 3),
            "deliveries_per_s": round(n / max(last - t0, 1e-9), 1), "bad_signatures": bad,
            "dispatcher_cpu_ms_per_delivery": round(cpu * 1000 / max(n, 1), 3)}
    return out


def _pct(values: list[float]) -> dict[str, float | int]:
    return summary(values)


def render(r: dict[str, Any]) -> str:
    lat = r["latency"]
    lines = [f"operator verdict -> receiver ({lat['verdicts']} verdicts, one every "
             f"{lat['interval_ms']} ms, {lat['bad_signatures']} bad signatures, "
             f"load average {lat['load_average']:.1f}):"]
    for key, label in (("verdict_ms", "alarm.verdict  "), ("forwarded_ms", "alarm.forwarded"),
                       ("verdict_commit_ms", "  of which: verdict transaction"),
                       ("commit_to_receiver_ms", "  of which: commit -> receiver")):
        p = lat[key]
        if p:
            lines.append(f"  {label} p50 {p['p50']:.1f} ms  p99 {p['p99']:.1f} ms  "
                         f"max {p['max']:.1f} ms  (n={p['n']})")
    lines.append("backlog drain (deliveries/s):")
    for name, t in r["throughput"].items():
        lines.append(f"  {name:<12} {t['deliveries_per_s']:>8.1f}/s  ({t['deliveries']}/"
                     f"{t['expected']} in {t['seconds']} s; dispatcher CPU "
                     f"{t['dispatcher_cpu_ms_per_delivery']:.2f} ms/delivery)")
    return "\n".join(lines)
