"""A publisher process of `firetower bench e2e`: `python -m bench.e2e_publisher
CONFIG.json`.

It publishes the telemetry of its share of the fleet over one `simulators.wire_lane.WireLane`
(QoS 1, bounded window of unacknowledged messages; it writes the packets itself, at about a
tenth of paho's CPU per message, so the simulated devices take less of the machine they share
with the centre), each device once per `interval` seconds in round-robin
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
from simulators.wire_lane import WireLane

REPORT_EVERY_S = 0.5
CHUNK = 500  # messages published between two turns of the event loop
BASELINE_S = 2.0  # a smoke fire's detector reports normally this long before (the baseline)

# Quiet-day readings by kind (the bytes after `"ts":"...",`).
_BODY = {
    "smoke_detector": b'"obscuration_pct_per_m":0.21,"temperature_c":21.4,"co_ppm":1.0,'
                      b'"battery_v":3.02}',
    "heat_detector": b'"temperature_c":21.6,"battery_v":3.01}',
    "sprinkler_pressure": b'"pressure_kpa":601.3,"flow_lps":0.0}',
    "alarm_panel": b'"mains_ok":true,"battery_ok":true,"battery_v":27.2}',
}
# A smoke detector in a fire: twice the default alarm level (6.4 %/m), with the CO and the
# temperature rise that confirm it (docs/alarms.md: smoke must then hold `for_s`, 10 s).
_BURNING = b'"obscuration_pct_per_m":12.8,"temperature_c":27.4,"co_ppm":60.0,"battery_v":3.02}'


class Fires:
    """The fires this process injects, as timed actions: a panel's fire event (`panel`), or a
    smoke detector whose readings cross the alarm level (`smoke`): one normal reading
    `BASELINE_S` before, then a burning reading every `every_s` for `hold_s` seconds (and any
    scheduled report of the detector in that window burns too)."""

    def __init__(self, fires: list[dict[str, Any]]) -> None:
        actions: list[tuple[float, int, str, dict[str, Any]]] = []
        for f in fires:
            if f.get("kind", "panel") == "panel":
                actions.append((f["at"], 0, "panel", f))
                continue
            actions.append((f["at"] - BASELINE_S, -1, "baseline", f))
            k = 0
            while k * f["every_s"] <= f["hold_s"]:
                actions.append((f["at"] + k * f["every_s"], k, "burning", f))
                k += 1
        self.actions = sorted(actions, key=lambda a: (a[0], a[1]))
        self.records: dict[int, dict[str, Any]] = {}
        self.events = 0
        self.readings = 0

    def due(self, el: float) -> list[tuple[str, dict[str, Any]]]:
        out = []
        while self.actions and self.actions[0][0] <= el:
            _, _, what, f = self.actions.pop(0)
            out.append((what, f))
        return out

    def next_in(self, el: float) -> float:
        return self.actions[0][0] - el if self.actions else 1.0

    def body(self, what: str, f: dict[str, Any], seq: int, ts: str) -> tuple[str, bytes]:
        if what == "panel":
            self.events += 1
            return f"fire/v1/{f['device']}/event", encode(
                {"seq": seq, "ts": ts, "category": "fire", "active": True, "zone": f["zone"],
                 "point": f["point"], "component": "smoke_detector", "location": f["location"]})
        self.readings += 1
        rest = _BURNING if what == "burning" else _BODY["smoke_detector"]
        return (f"fire/v1/{f['device']}/telemetry",
                b'{"seq":%d,"ts":"%s",%s' % (seq, ts.encode(), rest))

    def record(self, what: str, f: dict[str, Any], seq: int, at: float, ts: str) -> None:
        if what == "baseline":
            return
        rec = self.records.setdefault(f["fire"], {
            "fire": f["fire"], "kind": f.get("kind", "panel"), "device": f["device"],
            "seq": seq, "published_at": at, "ts": ts, "readings": []})
        if what == "burning":
            rec["readings"].append([seq, at, ts])


class Schedule:
    """How many telemetry messages are due `el` seconds after the start."""

    def __init__(self, rate: float, burst_factor: float, burst_start: float,
                 burst_s: float) -> None:
        self.rate, self.factor = rate, burst_factor
        self.b0, self.b1 = burst_start, burst_start + burst_s

    def due(self, el: float) -> int:
        extra = max(0.0, min(el, self.b1) - self.b0) * (self.factor - 1.0)
        return int(self.rate * (el + extra))


def _report(lanes: list[WireLane], **extra: Any) -> None:
    line = {"t": time.time(), "sent": sum(ln.stats.sent for ln in lanes),
            "acked": sum(ln.stats.acked for ln in lanes),
            "errors": sum(ln.stats.errors for ln in lanes), **extra}
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


async def run(cfg: dict[str, Any]) -> int:
    with open(cfg["devices_file"], "rb") as fh:
        devices: list[tuple[str, str]] = msgspec.msgpack.decode(fh.read())
    topics = [f"fire/v1/{d}/telemetry" for d, _ in devices]
    bodies = [_BODY[k] for _, k in devices]
    index = {d: i for i, (d, _) in enumerate(devices)}
    seqs = [0] * len(devices)
    fires = Fires(cfg.get("fires", []))
    # device index -> (end of its burning window in run seconds, the fire's record)
    burning: dict[int, tuple[float, dict[str, Any]]] = {}
    lane = WireLane(cfg["host"], cfg["port"], window=cfg.get("window", 10_000),
                    client_id=cfg["client_id"])
    await lane.start()
    # A panel has its own connection: its fire event is not queued behind the telemetry of the
    # thousands of other devices this process stands in for (which share `lane`).
    panel_lane = WireLane(cfg["host"], cfg["port"], window=100,
                          client_id=f"{cfg['client_id']}-panels")
    await panel_lane.start()
    t0 = cfg.get("t0") or time.time()
    started = max(t0, time.time())
    while (wait := t0 - time.time()) > 0:
        await asyncio.sleep(min(wait, 0.05))
    count = cfg.get("count")
    sched = Schedule(cfg.get("rate", 0.0), cfg.get("burst_factor", 1.0),
                     cfg.get("burst_start", 0.0), cfg.get("burst_s", 0.0))
    duration = cfg.get("duration", 0.0)
    n = 0
    m = len(devices)
    put = lane.put
    last_report = time.monotonic()
    while True:
        el = time.time() - t0
        if count is None and el >= duration:
            break
        for what, f in fires.due(el):
            i = index[f["device"]]
            seqs[i] += 1
            at = time.time()
            ts_text = format_ts(datetime.fromtimestamp(at, UTC))
            topic, payload = fires.body(what, f, seqs[i], ts_text)
            await (panel_lane.put if what == "panel" else put)(topic, payload, 1, False)
            fires.record(what, f, seqs[i], at, ts_text)
            if what == "burning":
                burning[i] = (f["at"] + f["hold_s"], fires.records[f["fire"]])
        due = count if count is not None else sched.due(el)
        if n < due:
            ts = format_ts(datetime.now(UTC)).encode()
            for _ in range(min(due - n, CHUNK)):
                i = n % m
                seqs[i] += 1
                body = bodies[i]
                if burning and i in burning:  # a scheduled report inside its fire burns too
                    if el < burning[i][0]:
                        body = _BURNING
                        burning[i][1]["readings"].append([seqs[i], time.time(), ts.decode()])
                    else:
                        del burning[i]
                await put(topics[i], b'{"seq":%d,"ts":"%s",%s' % (seqs[i], ts, body), 1, False)
                n += 1
            await asyncio.sleep(0)
        elif count is not None:
            break
        else:
            await asyncio.sleep(max(0.0, min(0.002, fires.next_in(el))))
        if time.monotonic() - last_report >= REPORT_EVERY_S:
            _report([lane, panel_lane])
            last_report = time.monotonic()
    _report([lane, panel_lane], published_until=time.time())
    drained = await lane.drain(300.0) and await panel_lane.drain(30.0)
    await lane.stop()
    await panel_lane.stop()
    _report([lane, panel_lane], final=True, started=started, telemetry=n + fires.readings,
            events=fires.events, fires=list(fires.records.values()),
            error=None if drained else "timed out waiting for PUBACKs")
    return 0 if drained and not lane.stats.errors and not panel_lane.stats.errors else 1


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
