"""`firetower bench alerting`: rule-evaluation throughput and event -> stored alarm latency.

1. Throughput: the engine alone, one core, fed pre-built decoded readings of a mixed fleet
   (smoke, heat, sprinkler, panel) with quiet-day values: readings evaluated per second.
   Next to it, the rule-engine state per device: in memory (tracemalloc around building the
   engine and feeding it until every window is full, per kind and for the mixed fleet) and
   serialized (`DeviceState.dump()`, what `rule_state` stores).
2. Latency: the alerting service against a throwaway PostgreSQL database, fed telemetry at the
   ingest rate (`--rate` readings/s) while panel fire events arrive every `--event-interval-ms`;
   for each event, the time from its arrival at the listener to the committed alarm (the
   writer's commit returned), p50/p99/max; plus the database's own `stored_at - received_at`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bench import records
from bench.stats import summary
from bench.support import drop_database, fresh_broker
from firetower.settings import Settings

KINDS = ("smoke_detector", "heat_detector", "sprinkler_pressure", "alarm_panel")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--devices", type=int, default=10_000, help="fleet size")
    parser.add_argument("--readings", type=int, default=500_000,
                        help="readings for the throughput run")
    parser.add_argument("--rate", type=float, default=20_000.0,
                        help="telemetry readings/s fed during the latency run")
    parser.add_argument("--events", type=int, default=400, help="fire events in the latency run")
    parser.add_argument("--event-interval-ms", type=float, default=25.0)
    parser.add_argument("--memory-devices", type=int, default=1000,
                        help="devices per kind for the in-memory state measurement (0 = skip)")
    parser.add_argument("--no-db", action="store_true", help="throughput only")
    parser.add_argument("--through-broker", action="store_true",
                        help="also measure publish -> stored alarm through the broker and the "
                             "ingester, with telemetry from --publishers (a broker of its own "
                             "unless FIRETOWER_MQTT_URL is set)")
    parser.add_argument("--publishers", type=int, default=1,
                        help="telemetry publisher processes (about 20,000 msg/s each)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")


def main(args: argparse.Namespace, settings: Settings) -> int:
    begun = records.start()
    report: dict[str, Any] = {"throughput": throughput(args.devices, args.readings)}
    if args.memory_devices > 0:
        report["memory"] = memory(args.memory_devices)
    if not args.no_db:
        report["latency"] = asyncio.run(latency(settings, args))
    if args.through_broker:
        report["end_to_end"] = asyncio.run(end_to_end(settings, args))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render(report))
    return records.finish("alerting", args, begun, report, checks(report))


def checks(r: dict[str, Any]) -> list[records.Check]:
    """Quiet telemetry raises nothing; the memory figures are at steady state; every fire
    event gave one stored alarm; through the broker, every reading was stored once."""
    out = [records.equal("quiet telemetry: no alarm decision", r["throughput"]["decisions"], 0)]
    for kind, m in sorted(r.get("memory", {}).items()):
        if isinstance(m, dict):
            out.append(records.equal(f"memory, {kind}: every window full at the measurement",
                                     m["windows_full"], True))
    if "latency" in r:
        lt = r["latency"]
        out.append(records.equal("in process: one stored alarm per fire event",
                                 lt["alarms_stored"], lt["events"]))
    if "end_to_end" in r:
        e = r["end_to_end"]
        out.append(records.equal("through the broker: one stored alarm per fire event",
                                 e["alarms_stored"], e["events"]))
        out.append(records.equal("through the broker: every reading stored once",
                                 e["telemetry_stored"], e["telemetry_sent"]))
    return out


# -- fleet and readings ---------------------------------------------------------------------
def _fleet(n: int) -> list[tuple[str, str, str | None, int]]:
    """(id, kind, parent, zone): one panel per 40 devices, detectors in zones of 8."""
    out: list[tuple[str, str, str | None, int]] = []
    panel: str | None = None
    for i in range(n):
        if i % 40 == 0:
            panel = f"b-pnl-{i:06d}"
            out.append((panel, "alarm_panel", None, 0))
            continue
        kind = KINDS[i % 3]
        out.append((f"b-{kind[:4]}-{i:06d}", kind,
                    panel if kind != "sprinkler_pressure" else None, (i % 40) // 8 + 1))
    return out[:n]


def _readings(fleet: list[tuple[str, str, str | None, int]], n: int) -> list[Any]:
    from firetower.model import Telemetry

    rng = random.Random(7)
    t0 = datetime.now(UTC) - timedelta(hours=2)
    out = []
    rounds = max(1, n // len(fleet))
    ambient = {dev: rng.uniform(19, 24) for dev, _, _, _ in fleet}
    g = rng.gauss  # sensor noise as the simulator's physics: 0.1 °C, 0.05 %/m, 0.8 kPa
    for r in range(rounds):
        ts = t0 + timedelta(seconds=10 * r)
        for dev, kind, _, _ in fleet:
            if kind == "smoke_detector":
                m = Telemetry(dev, r, ts, ts, obscuration_pct_per_m=abs(g(0.2, 0.05)),
                              temperature_c=g(ambient[dev], 0.1), co_ppm=abs(g(1.0, 0.6)),
                              battery_v=3.0)
            elif kind == "heat_detector":
                m = Telemetry(dev, r, ts, ts, temperature_c=g(ambient[dev], 0.1),
                              battery_v=3.0)
            elif kind == "sprinkler_pressure":
                m = Telemetry(dev, r, ts, ts, pressure_kpa=g(600, 0.8), flow_lps=0.0)
            else:
                m = Telemetry(dev, r, ts, ts, mains_ok=True, battery_ok=True, battery_v=27.2)
            out.append(m)
    return out[:n]


def _engine(fleet: list[tuple[str, str, str | None, int]], sink: Any) -> Any:
    from alerting.clock import SystemClock
    from alerting.device import DeviceInfo
    from alerting.engine import Engine
    from firetower.model import DeviceKind

    e = Engine(clock=SystemClock(), sink=sink)
    e.set_devices([DeviceInfo(d, DeviceKind(k), "bench", p, z) for d, k, p, z in fleet])
    return e


def throughput(devices: int, readings: int) -> dict[str, Any]:
    fleet = _fleet(devices)
    msgs = _readings(fleet, readings)
    decisions: list[Any] = []
    engine = _engine(fleet, decisions.append)
    on_message = engine.on_message
    for m in msgs[: len(fleet)]:  # warm up: first reading of every device
        on_message(m)
    body = msgs[len(fleet):]
    t0 = time.perf_counter()
    c0 = time.process_time()
    for m in body:
        on_message(m)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    return {"devices": len(fleet), "readings": len(body), "seconds": round(wall, 3),
            "readings_per_s": round(len(body) / wall), "cpu_readings_per_s": round(len(body) / cpu),
            "decisions": len(decisions), "state_bytes_per_device": _state_size(engine)}


def _state_size(engine: Any) -> int:
    blobs = [st.dump() for st in list(engine.devices.values())[:1000]]
    return round(sum(len(b) for b in blobs) / max(1, len(blobs)))


# -- in-memory state at steady state ------------------------------------------------------------
def memory(devices_per_kind: int = 1000) -> dict[str, Any]:
    """Bytes the engine holds per device once every window is full, per kind and for the mixed
    fleet of `throughput()`: tracemalloc's traced memory after building the engine and feeding
    it, minus before (fleet, device ids and messages are made inside the measured span, so what
    the engine keeps of them counts; what it drops does not)."""
    out: dict[str, Any] = {}
    _measure(lambda: _fleet(80))  # warm up: imports, caches and interned names are not state
    for kind in KINDS:
        out[kind] = _measure(lambda k=kind: [(f"m-{k[:4]}-{i:07d}", k, None, 1 + i % 5)
                                             for i in range(devices_per_kind)])
    out["mixed"] = _measure(lambda: _fleet(devices_per_kind * len(KINDS)))
    out["max_bytes_per_device"] = max(out[k]["bytes_per_device"] for k in KINDS)
    return out


def _measure(make_fleet: Any) -> dict[str, Any]:
    decisions = 0

    def sink(_: Any) -> None:
        nonlocal decisions
        decisions += 1

    gc.collect()
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        fleet = make_fleet()
        n = len(fleet)
        engine = _engine(fleet, sink)
        on_message = engine.on_message
        readings = 0
        for m in _steady_readings(fleet):
            on_message(m)
            readings += 1
        del m, fleet
        engine.take_dirty()  # the service saves (and forgets) dirty states every 0.5 s
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        if not was_tracing:
            tracemalloc.stop()
    full = _windows_full(engine)
    serialized = _state_size(engine)
    del engine
    return {"devices": n, "readings": readings, "decisions": decisions,
            "bytes_per_device": round((after - before) / n),
            "serialized_bytes_per_device": serialized, "windows_full": full}


def _steady_readings(fleet: list[tuple[str, str, str | None, int]]) -> Iterator[Any]:
    """Readings that fill every window the kind keeps, built one at a time (nothing here holds
    them): hourly readings over 50 h (battery means per hour over 24 h, smoke chamber baseline
    per hour over 48 h, the temperature rings), sprinkler pressure every 150 s over 3.2 h with a
    jockey pump start every 300 s (5-minute pressure means over 3 h, the ring of pump starts),
    and 8 status-only events per panel (the recent event seqs)."""
    from firetower.model import Event, EventCategory, Telemetry

    rng = random.Random(11)
    g = rng.gauss
    t0 = datetime.now(UTC) - timedelta(hours=60)
    hourly = 50
    for h in range(hourly):
        ts = t0 + timedelta(hours=h)
        for i, (dev, kind, _, _) in enumerate(fleet):
            ambient = 19.0 + i % 50 / 10
            if kind == "smoke_detector":
                yield Telemetry(dev, h, ts, datetime.now(UTC),
                                obscuration_pct_per_m=abs(g(0.2, 0.05)),
                                temperature_c=g(ambient, 0.1), co_ppm=abs(g(1.0, 0.6)),
                                battery_v=g(3.0, 0.003))
            elif kind == "heat_detector":
                yield Telemetry(dev, h, ts, datetime.now(UTC), temperature_c=g(ambient, 0.1),
                                battery_v=g(3.0, 0.003))
            elif kind == "sprinkler_pressure":
                yield Telemetry(dev, h, ts, datetime.now(UTC), pressure_kpa=g(600, 0.8),
                                flow_lps=0.0, battery_v=g(3.6, 0.003))
            else:
                yield Telemetry(dev, h, ts, datetime.now(UTC), mains_ok=True, battery_ok=True,
                                battery_v=g(27.2, 0.02))
    t1 = t0 + timedelta(hours=hourly)
    for j in range(76):  # 38 pump starts, 38 five-minute buckets
        ts = t1 + timedelta(seconds=150 * j)
        for dev, kind, _, _ in fleet:
            if kind == "sprinkler_pressure":
                yield Telemetry(dev, 1000 + j, ts, datetime.now(UTC),
                                pressure_kpa=g(600 if j % 2 == 0 else 625, 0.8), flow_lps=0.0)
    for j in range(8):
        ts = t1 + timedelta(seconds=j)
        for dev, kind, _, _ in fleet:
            if kind == "alarm_panel":
                yield Event(dev, 100_000 + j, ts, datetime.now(UTC), EventCategory.FEEDBACK,
                            True, zone=1, point=j + 1)


def _windows_full(engine: Any) -> bool:
    """Every window each device keeps is full (the measurement is at steady state)."""
    for st in engine.devices.values():
        for w in (st.recent, st.starts, st.battery, st.chamber, st.pressure):
            if w is None:
                continue
            full = w.full if hasattr(w, "full") else w.n >= w.size
            if not full:
                return False
        if st.battery is None:
            return False
    return True


# -- latency -----------------------------------------------------------------------------------
def _bench_url(url: str) -> str:
    parts = urlsplit(url)
    name = parts.path.lstrip("/") or "firetower"
    return urlunsplit(parts._replace(path=f"/{name}_bench_alerting_{uuid.uuid4().hex[:6]}"))


async def _bench_database(settings: Settings, devices: int) -> tuple[str, list[Any]]:
    """A migrated throwaway database with a fleet of `devices` registered (panels first)."""
    from firetower import db

    url = _bench_url(settings.database_url)
    await db.migrate(url)
    fleet = _fleet(devices)
    conn = await db.connect(url)
    try:
        await conn.execute("INSERT INTO sites (id, name) VALUES ('bench', 'bench')")
        await conn.copy_records_to_table(
            "devices", columns=["id", "kind", "site_id", "parent_id", "zone", "lifecycle"],
            records=[(d, k, "bench", p, z, "in_service") for d, k, p, z in
                     sorted(fleet, key=lambda f: f[2] is not None)])
    finally:
        await conn.close()
    return url, fleet


async def latency(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    import asyncpg

    from alerting.service import AlertingService
    from firetower import db
    from firetower.model import Event, EventCategory

    url, fleet = await _bench_database(settings, args.devices)
    svc = AlertingService(settings.model_copy(update={"database_url": url}))
    await svc.start()
    assert svc.writer is not None
    svc.writer.keep_latencies = True
    readings = _readings(fleet, int(args.rate * args.events * args.event_interval_ms / 1000) + 1)
    panels = [d for d, k, _, _ in fleet if k == "alarm_panel"]
    per_tick = max(1, int(args.rate / 1000))  # fed every millisecond of the run
    fed = 0
    arrivals: list[float] = []
    try:
        t_start = time.perf_counter()
        next_event = t_start
        ev = 0
        while ev < args.events:
            now = time.perf_counter()
            due = int((now - t_start) * args.rate)
            while fed < min(due, len(readings)):
                svc.on_message(readings[fed])
                fed += 1
            if now >= next_event:
                ts = datetime.now(UTC)
                arrivals.append(time.perf_counter())
                svc.on_message(Event(panels[ev % len(panels)], 10_000 + ev, ts, ts,
                                     EventCategory.FIRE, True, zone=1 + ev % 5,
                                     point=1 + ev, component="manual_call_point"))
                ev += 1
                next_event += args.event_interval_ms / 1000
            await asyncio.sleep(0.0005 if per_tick else 0)
        elapsed = time.perf_counter() - t_start
        await svc.writer.drain()
        lat = svc.writer.latencies
        fire_lat = sorted(lat)  # only fire decisions are made in this run (quiet telemetry)
        conn2: asyncpg.Connection = await db.connect(url)
        try:
            stored = [r[0] for r in await conn2.fetch(
                "SELECT extract(epoch FROM stored_at - received_at) FROM alarms"
                " WHERE type = 'panel.fire' ORDER BY 1")]
        finally:
            await conn2.close()
    finally:
        await svc.stop()
        await drop_database(url)
    return {"telemetry_rate_per_s": round(fed / elapsed), "events": len(arrivals),
            "alarms_stored": len(stored),
            "arrival_to_commit_ms": _pcts(fire_lat),
            "db_stored_minus_received_ms": _pcts([float(x) for x in stored])}


# -- through the broker and the ingester -------------------------------------------------------
def _publish_telemetry(host: str, port: int, devices: list[tuple[str, str]], rate: float,
                       seconds: float) -> int:
    """A publisher process: quiet telemetry, QoS 1, at `rate` messages/s for `seconds`."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from firetower.protocol import encode, format_ts, topic_for

    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:8]}",
                    protocol=paho.MQTTv311)
    c.max_inflight_messages_set(2000)
    c.connect(host, port)
    c.loop_start()
    topics = [(topic_for(d, "telemetry"), k) for d, k in devices]
    t0 = time.monotonic()
    n = 0
    while (el := time.monotonic() - t0) < seconds:
        due = int(el * rate)
        while n < due:
            topic, kind = topics[n % len(topics)]
            body: dict[str, Any] = {"seq": n, "ts": format_ts(datetime.now(UTC))}
            if kind == "smoke_detector":
                body.update(obscuration_pct_per_m=0.2, temperature_c=21.0)
            elif kind == "heat_detector":
                body.update(temperature_c=21.0)
            else:
                body.update(pressure_kpa=600.0, flow_lps=0.0)
            while c.publish(topic, encode(body), 1).rc == paho.MQTT_ERR_QUEUE_SIZE:
                time.sleep(0.001)
            n += 1
        time.sleep(0.001)
    time.sleep(1.0)
    c.loop_stop()
    c.disconnect()
    return n


async def end_to_end(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """Publish -> stored alarm: fire events published every `--event-interval-ms` while
    `--publishers` processes send telemetry at `--rate` in total, all through the broker and
    the ingester with the alerting service as its listener. The broker is one of its own
    (the project's configuration, a free port) unless FIRETOWER_MQTT_URL names one."""
    if os.environ.get("FIRETOWER_MQTT_URL"):
        return await _end_to_end(settings, args)
    with fresh_broker() as broker:
        return await _end_to_end(settings.model_copy(update={"mqtt_url": broker.url}), args)


async def _end_to_end(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    import multiprocessing

    import asyncpg

    from alerting.service import AlertingService
    from firetower import db
    from firetower.mqtt import AsyncMqtt
    from firetower.protocol import encode, format_ts, topic_for
    from ingest.service import Ingester

    url, fleet = await _bench_database(settings, args.devices)
    s = settings.model_copy(update={"database_url": url, "metrics_port": None,
                                    "ingest_client_id": f"bench-ingest-{uuid.uuid4().hex[:6]}"})
    svc = AlertingService(s)
    await svc.start()
    assert svc.writer is not None
    svc.writer.keep_latencies = True
    ing = Ingester(s, listeners=[svc])
    await ing.start()
    pub = AsyncMqtt(s.mqtt_host, s.mqtt_port, credentials=s.mqtt_credentials)
    await pub.start()
    sensors = [(d, k) for d, k, _, _ in fleet if k != "alarm_panel"]
    panels = [d for d, k, _, _ in fleet if k == "alarm_panel"]
    seconds = args.events * args.event_interval_ms / 1000 + 2.0
    ctx = multiprocessing.get_context("spawn")
    loop = asyncio.get_running_loop()
    try:
        with ctx.Pool(args.publishers) as pool:
            jobs = [pool.apply_async(_publish_telemetry, (
                s.mqtt_host, s.mqtt_port, sensors[i::args.publishers],
                args.rate / args.publishers, seconds)) for i in range(args.publishers)]
            await asyncio.sleep(1.0)  # let the telemetry flow first
            for ev in range(args.events):
                ts = format_ts(datetime.now(UTC))
                pub.publish(topic_for(panels[ev % len(panels)], "event"), encode(
                    {"seq": 20_000 + ev, "ts": ts, "category": "fire", "active": True,
                     "zone": 1 + ev % 5, "point": 1 + ev, "component": "manual_call_point"}))
                await asyncio.sleep(args.event_interval_ms / 1000)
            sent = sum(await asyncio.gather(*(loop.run_in_executor(None, j.get)
                                              for j in jobs)))
        assert svc.writer is not None
        await svc.writer.drain()
        c2: asyncpg.Connection = await db.connect(url)
        try:
            rows = await c2.fetch(
                "SELECT extract(epoch FROM stored_at - device_ts) AS e2e,"
                " extract(epoch FROM stored_at - received_at) AS rx FROM alarms"
                " WHERE type = 'panel.fire'")
            stored_telemetry = await c2.fetchval("SELECT count(*) FROM telemetry")
        finally:
            await c2.close()
    finally:
        await pub.stop()
        await ing.stop()
        await svc.stop()
        await drop_database(url)
    return {"telemetry_sent": sent, "telemetry_rate_per_s": round(sent / seconds),
            "telemetry_stored": stored_telemetry, "events": args.events,
            "alarms_stored": len(rows),
            "publish_to_stored_ms": _pcts([float(r["e2e"]) for r in rows]),
            "received_to_stored_ms": _pcts([float(r["rx"]) for r in rows]),
            "decision_to_commit_ms": _pcts(svc.writer.latencies)}


def _pcts(xs: list[float]) -> dict[str, float | int]:
    """Seconds -> the milliseconds summary (bench/stats.py)."""
    return summary(xs, scale=1000)


def render(r: dict[str, Any]) -> str:
    t = r["throughput"]
    lines = [
        "alerting bench",
        f"  rule evaluation: {t['readings_per_s']:,} readings/s wall "
        f"({t['cpu_readings_per_s']:,}/s CPU) over {t['readings']:,} readings of "
        f"{t['devices']:,} devices, one core; state {t['state_bytes_per_device']} B/device "
        "serialized",
    ]
    if "memory" in r:
        mem = r["memory"]
        lines.append("  rule-engine state at steady state (every window full), per device:")
        for k in (*KINDS, "mixed"):
            x = mem[k]
            lines.append(f"    {k:<20} {x['bytes_per_device']:>5} B in memory "
                         f"({x['serialized_bytes_per_device']} B serialized; "
                         f"{x['devices']:,} devices, {x['readings']:,} readings"
                         f"{'' if x['windows_full'] else ', windows NOT full'})")
    if "latency" in r:
        lt = r["latency"]
        a, d = lt["arrival_to_commit_ms"], lt["db_stored_minus_received_ms"]
        lines += [
            f"  event -> stored alarm at {lt['telemetry_rate_per_s']:,} readings/s: "
            f"p50 {a.get('p50')} ms, p99 {a.get('p99')} ms, max {a.get('max')} ms "
            f"({lt['events']} fire events, {lt['alarms_stored']} alarms stored)",
            f"  database stored_at - received_at: p50 {d.get('p50')} ms, p99 {d.get('p99')} ms",
        ]
    if "end_to_end" in r:
        e = r["end_to_end"]
        a, d = e["publish_to_stored_ms"], e["received_to_stored_ms"]
        lines += [
            f"  through the broker, telemetry {e['telemetry_rate_per_s']:,}/s "
            f"({e['telemetry_stored']:,} stored): publish -> stored alarm p50 {a.get('p50')} ms,"
            f" p99 {a.get('p99')} ms, max {a.get('max')} ms; ingester receipt -> stored "
            f"p50 {d.get('p50')} ms, p99 {d.get('p99')} ms ({e['alarms_stored']}/{e['events']})",
            f"  decision -> commit {e['decision_to_commit_ms']}",
        ]
    return "\n".join(lines)
