"""A publisher process of `firetower bench e2e`: `python -m firetower.commands.bench_e2e_publisher
CONFIG.json`.

It publishes the telemetry of its share of the fleet over one simulator `Lane` (QoS 1, bounded
window of unacknowledged messages), each device once per `interval` seconds in round-robin
order (so the offered rate is devices / interval), `burst` times as often inside the burst
window, and injects the fire events of the panels it owns at their scheduled instants, with the
device's next `seq` (so the rule engine sees them in order). Quiet-day readings: the point is
the pipeline, not the physics (the simulator's own `Simulation` keeps a model and an RNG per
device, too heavy for a million devices in a benchmark process).

Mode `count` publishes exactly `count` messages as fast as it can (the ceiling's backlog).

stdout: one JSON line every 0.5 s (`{"t", "sent", "acked"}`), then a final line with
`"final": true`, the totals by type and the wall time of each fire's publish.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

import msgspec

from firetower.protocol import encode, format_ts
from simulators.lanes import Lane

REPORT_EVERY_S = 0.5
CHUNK = 500  # messages published between two turns of the event loop

# Quiet-day readings by kind (the bytes after `"ts":"...",`).
_BODY = {
    "smoke_detector": b'"obscuration_pct_per_m":0.21,"temperature_c":21.4,"co_ppm":1.0,'
                      b'"battery_v":3.02}',
    "heat_detector": b'"temperature_c":21.6,"battery_v":3.01}',
    "sprinkler_pressure": b'"pressure_kpa":601.3,"flow_lps":0.0}',
    "alarm_panel": b'"mains_ok":true,"battery_ok":true,"battery_v":27.2}',
}


class Schedule:
    """How many telemetry messages are due `el` seconds after the start."""

    def __init__(self, rate: float, burst_factor: float, burst_start: float,
                 burst_s: float) -> None:
        self.rate, self.factor = rate, burst_factor
        self.b0, self.b1 = burst_start, burst_start + burst_s

    def due(self, el: float) -> int:
        extra = max(0.0, min(el, self.b1) - self.b0) * (self.factor - 1.0)
        return int(self.rate * (el + extra))


def _report(lane: Lane, **extra: Any) -> None:
    s = lane.stats
    line = {"t": time.time(), "sent": s.sent, "acked": s.acked, "errors": s.errors, **extra}
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


async def run(cfg: dict[str, Any]) -> int:
    with open(cfg["devices_file"], "rb") as f:
        devices: list[tuple[str, str]] = msgspec.msgpack.decode(f.read())
    topics = [f"fire/v1/{d}/telemetry" for d, _ in devices]
    bodies = [_BODY[k] for _, k in devices]
    index = {d: i for i, (d, _) in enumerate(devices)}
    seqs = [0] * len(devices)
    fires = sorted(cfg.get("fires", []), key=lambda f: f["at"])
    lane = Lane(cfg["host"], cfg["port"], window=cfg.get("window", 10_000),
                client_id=cfg["client_id"])
    await lane.start()
    t0 = cfg.get("t0") or time.time()
    started = max(t0, time.time())
    while (wait := t0 - time.time()) > 0:
        await asyncio.sleep(min(wait, 0.05))
    count = cfg.get("count")
    sched = Schedule(cfg.get("rate", 0.0), cfg.get("burst_factor", 1.0),
                     cfg.get("burst_start", 0.0), cfg.get("burst_s", 0.0))
    duration = cfg.get("duration", 0.0)
    fired: list[dict[str, Any]] = []
    n = 0
    m = len(devices)
    put = lane.put
    last_report = time.monotonic()
    while True:
        el = time.time() - t0
        if count is None and el >= duration:
            break
        while fires and fires[0]["at"] <= el:
            f = fires.pop(0)
            i = index[f["panel"]]
            seqs[i] += 1
            body = {"seq": seqs[i], "ts": "", "category": "fire", "active": True,
                    "zone": f["zone"], "point": f["point"], "component": "smoke_detector",
                    "location": f["location"]}
            at = time.time()
            body["ts"] = format_ts(datetime.fromtimestamp(at, UTC))
            await put(f"fire/v1/{f['panel']}/event", encode(body), 1, False)
            fired.append({"fire": f["fire"], "panel": f["panel"], "seq": seqs[i],
                          "published_at": at, "ts": body["ts"]})
        due = count if count is not None else sched.due(el)
        if n < due:
            ts = format_ts(datetime.now(UTC)).encode()
            for _ in range(min(due - n, CHUNK)):
                i = n % m
                seqs[i] += 1
                await put(topics[i], b'{"seq":%d,"ts":"%s",%s' % (seqs[i], ts, bodies[i]), 1,
                          False)
                n += 1
            await asyncio.sleep(0)
        elif count is not None:
            break
        else:
            next_fire = fires[0]["at"] - el if fires else 1.0
            await asyncio.sleep(max(0.0, min(0.002, next_fire)))
        if time.monotonic() - last_report >= REPORT_EVERY_S:
            _report(lane)
            last_report = time.monotonic()
    _report(lane, published_until=time.time())
    drained = await lane.drain(300.0)
    await lane.stop()
    _report(lane, final=True, started=started, telemetry=n, events=len(fired), fires=fired,
            error=None if drained else "timed out waiting for PUBACKs")
    return 0 if drained and not lane.stats.errors else 1


def main() -> int:
    with open(sys.argv[1]) as f:
        cfg = json.load(f)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(run(cfg))
    return uvloop.run(run(cfg))


if __name__ == "__main__":
    sys.exit(main())
