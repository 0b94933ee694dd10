"""From fleet + physics + per-device plans to one time-ordered stream of protocol v1 messages.

Everything is virtual time: `t` is seconds since `start`, and the stream is a pure function
of (fleet, seed, start, interval, plans), so it can be generated instantly or paced later.

Per device: a retained birth status soon after start, then telemetry every `interval` s (every
`fast_interval` s while a fast effect is active), plus the events its plan schedules. `seq`
counts every message of the device, from `seq_base` + 1. Each birth reserves the next seq for the device's last
will `{"seq": birth_seq + 1, "ts": <birth ts>, "online": false}` (a will is fixed at connect
time); the will is emitted, marked `will=True`, when an offline window starts.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import msgspec

from firetower.model import DeviceKind, RejectReason
from firetower.protocol import encode, format_ts, topic_for
from simulators.effects import Effect
from simulators.fleet import Fleet, SimDevice
from simulators.physics import Model, model_for, rounded

DEFAULT_INTERVAL_S = 60.0
DEFAULT_FAST_INTERVAL_S = 5.0


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One MQTT publish. `ts` is the virtual moment it is handed to the network (for a
    delayed or repeated message later than the `ts` inside its payload)."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    device_id: str
    seq: int | None
    ts: datetime
    reject: RejectReason | None = None   # malformed: the reason the ingester must record
    will: bool = False                   # this is the device's last will (broker-sent)
    will_payload: bytes | None = None    # on a birth: the will to register when connecting


@dataclass
class DevicePlan:
    """What scenarios do to one device."""

    effects: list[Effect] = field(default_factory=list)
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    silent: list[tuple[float, float]] = field(default_factory=list)
    offline: list[tuple[float, float]] = field(default_factory=list)
    duplicate_seqs: set[int] = field(default_factory=set)
    late_seqs: set[int] = field(default_factory=set)   # delivered after the next message

    def quiet(self, t: float) -> bool:
        return any(a <= t < b for a, b in self.silent) or any(a <= t < b for a, b in self.offline)

    def quiet_until(self, t: float) -> float | None:
        """The end of the quiet stretch (silent or offline windows, overlapping or touching
        ones joined) that `t` falls in; None if the device reports at `t`; math.inf if it
        never reports again."""
        end: float | None = None
        moved = True
        while moved:
            moved = False
            probe = t if end is None else end
            for a, b in (*self.silent, *self.offline):
                if a <= probe < b and (end is None or b > end):
                    end, moved = b, True
            if end is not None and math.isinf(end):
                return end
        return end


class Simulation:
    """A fleet in virtual time. Scenarios add to `plans`; `stream()` yields the messages."""

    def __init__(self, fleet: Fleet, seed: int, start: datetime, *,
                 interval: float = DEFAULT_INTERVAL_S,
                 fast_interval: float = DEFAULT_FAST_INTERVAL_S, births: bool = True,
                 seq_base: int = 0) -> None:
        if start.tzinfo is None:
            raise ValueError("start must carry a time zone (ts is RFC 3339 with an offset)")
        if seq_base < 0:
            raise ValueError("seq_base must not be negative")
        self.fleet, self.seed, self.start = fleet, seed, start
        self.interval, self.fast_interval, self.births = interval, fast_interval, births
        self.seq_base = seq_base   # every device's first message is seq_base + 1
        self.plans: dict[str, DevicePlan] = {}
        self.extra: list[tuple[float, Outgoing]] = []   # malformed and other raw messages
        self.dedicated: set[str] = set()   # devices that need their own MQTT connection
        self._models: dict[str, Model] = {}

    def plan(self, device_id: str) -> DevicePlan:
        return self.plans.setdefault(device_id, DevicePlan())

    def model(self, device_id: str) -> Model:
        """A fresh model of the device (for scenarios to read its parameters)."""
        return model_for(self.fleet.get(device_id), self.seed, self.start)

    def phase(self, device: SimDevice) -> float:
        """Offset of the device's first report inside the first interval."""
        return random.Random(f"phase/{self.seed}/{device.id}").uniform(0.0, self.interval)

    def at(self, t: float) -> datetime:
        return self.start + timedelta(seconds=t)

    def stream(self, duration: float | None) -> Iterator[Outgoing]:
        """All messages with virtual time < duration (None: forever), in time order."""
        end = math.inf if duration is None else duration
        sources: list[Iterable[tuple[float, int, int, Outgoing]]] = [
            self._device(i, d, end) for i, d in enumerate(self.fleet.devices)]
        extra = sorted((t, len(self.fleet.devices), n, o)
                       for n, (t, o) in enumerate(self.extra) if t < end)
        sources.append(extra)
        for item in heapq.merge(*sources):
            yield item[3]

    # -- one device -----------------------------------------------------------------------
    def _ticks(self, device: SimDevice, plan: DevicePlan, end: float) -> Iterator[float]:
        """The device's report instants below `end`, none inside its quiet windows.

        A quiet window is passed in one jump back onto the device's report grid (stepped
        through only where a fast effect quickens the reports inside it, a bounded number of
        steps since such a window is finite), and a device silent for good ends its ticks:
        skipping them one by one never returned in an endless run, and the generator, called
        from the publisher's event loop, held it so that SIGTERM and SIGINT went unserved."""
        t = self.phase(device)
        fast = sorted((e.t0, e.t1) for e in plan.effects if e.fast)
        quiet = bool(plan.silent or plan.offline)
        while t < end:
            until = plan.quiet_until(t) if quiet else None
            if until is None:
                yield t
            elif math.isinf(until):
                return
            else:   # back on the regular grid at the first report at or after the window,
                back = t + math.ceil((until - t) / self.interval) * self.interval
                if not any(a < back and t < b for a, b in fast):   # unless reports quicken
                    t = back
                    continue
            t = self._next_tick(t, fast)

    def _next_tick(self, t: float, fast: list[tuple[float, float]]) -> float:
        nxt = t + self.interval
        for a, b in fast:
            if a <= t < b:
                nxt = min(nxt, t + self.fast_interval)
            elif t < a < nxt:
                nxt = a
        return nxt

    def _timeline(self, device: SimDevice, plan: DevicePlan,
                  end: float) -> Iterator[tuple[float, str, Any]]:
        if not (plan.events or plan.offline or plan.silent):   # the common, quick case
            if self.births and self.phase(device) / 2 < end:
                yield self.phase(device) / 2, "birth", None
            for t in self._ticks(device, plan, end):
                yield t, "telemetry", None
            return
        items: list[Iterable[tuple[float, int, str, Any]]] = []
        if self.births:
            items.append([(self.phase(device) / 2, 0, "birth", None)])
        for a, b in plan.offline:
            items.append([(a, 1, "will", None), (b, 0, "birth", None)])
        items.append(sorted((t, 2, "event", body) for t, body in plan.events))
        items.append((t, 3, "telemetry", None) for t in self._ticks(device, plan, end))
        for t, _, what, body in heapq.merge(*items, key=lambda x: (x[0], x[1])):
            if t >= end:
                return
            if what != "will" and what != "birth" and plan.quiet(t):
                continue
            yield t, what, body

    def _device(self, index: int, device: SimDevice,
                end: float) -> Iterator[tuple[float, int, int, Outgoing]]:
        plan = self.plans.get(device.id) or DevicePlan()
        model = model_for(device, self.seed, self.start)
        kind = device.kind
        base = seq = self.seq_base
        will_payload: bytes | None = None
        n = 0
        held: tuple[float, Outgoing] | None = None
        topics = {m: topic_for(device.id, m) for m in ("telemetry", "event", "status")}
        for t, what, body in self._timeline(device, plan, end):
            ts = self.at(t)
            if what == "will":
                if will_payload is None:
                    continue
                out = Outgoing(topics["status"], will_payload, 1, True, device.id,
                               _seq_of(will_payload), ts, will=True)
                will_payload = None
            elif what == "birth":
                seq += 1
                stamp = format_ts(ts)
                will_payload = encode({"seq": seq + 1, "ts": stamp, "online": False})
                out = Outgoing(topics["status"], encode({"seq": seq, "ts": stamp, "online": True}),
                               1, True, device.id, seq, ts, will_payload=will_payload)
                seq += 1   # reserved for the will
            elif what == "event":
                seq += 1
                payload = encode({"seq": seq, "ts": format_ts(ts), **body})
                out = Outgoing(topics["event"], payload, 1, False, device.id, seq, ts)
            else:
                seq += 1
                out = Outgoing(topics["telemetry"], self._telemetry(model, plan, kind, t, seq, ts),
                               1, False, device.id, seq, ts)
            if held is not None:   # a late message goes out right after its successor
                n += 1
                yield t, index, n, out
                n += 1
                yield t + 0.001, index, n, _redated(held[1], self.at(t + 0.001))
                held = None
                continue
            rel = None if out.seq is None else out.seq - base   # plans count from 1
            if rel in plan.late_seqs and not out.will:
                held = (t, out)
                continue
            n += 1
            yield t, index, n, out
            if rel in plan.duplicate_seqs and not out.will:
                n += 1
                yield t + 0.5, index, n, _redated(out, self.at(t + 0.5))
        if held is not None:
            yield held[0], index, n + 1, held[1]

    def _telemetry(self, model: Model, plan: DevicePlan, kind: DeviceKind, t: float, seq: int,
                   ts: datetime) -> bytes:
        for e in plan.effects:
            e.before(t, model)
        values = model.sample(t)
        for e in plan.effects:
            e.after(t, values)
        return encode({"seq": seq, "ts": format_ts(ts), **rounded(values)})


def _redated(out: Outgoing, ts: datetime) -> Outgoing:
    return Outgoing(out.topic, out.payload, out.qos, out.retain, out.device_id, out.seq, ts,
                    out.reject, out.will, out.will_payload)


def _seq_of(payload: bytes) -> int:
    return int(msgspec.json.decode(payload)["seq"])
