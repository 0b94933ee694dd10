"""What the engine keeps per device: registry facts, resolved parameters, conditions, windows.

State stays small and bounded: a handful of conditions and fixed-size windows, created only for
the metrics the device's kind reports. `dump()`/`load()` turn the restart-relevant part into
plain lists (stored msgpack-encoded in `rule_state`).

Memory per device is a target (≤ 1 KB at steady state, docs/performance.md): the conditions
dict is created with the first condition (until then every device shares one empty read-only
mapping), the last reading is kept as the six values evidence needs (`Last`), not the message
with its datetimes, and windows are arrays (alerting/window.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import NamedTuple

import msgspec

from alerting.condition import Condition
from alerting.config import DeviceParams
from alerting.window import Buckets, ClockWindow, Ring
from firetower.model import DeviceKind, Telemetry

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode
# 2: Buckets dump their means as float32 bytes (alerting/window.py); version 1 blobs still load.
STATE_VERSION = 2
_READABLE = (1, 2)
# Shared by every device without a condition; `DeviceState.cond()` replaces it by a dict.
NO_CONDS: MappingProxyType[str, Condition] = MappingProxyType({})


class Last(NamedTuple):
    """The last reading's values, for the evidence of a timer-raised alarm and multi-criteria
    (what `Telemetry` has under the same names)."""

    obscuration_pct_per_m: float | None
    temperature_c: float | None
    co_ppm: float | None
    pressure_kpa: float | None
    flow_lps: float | None
    battery_v: float | None


_new_tuple = tuple.__new__


def last_of(m: Telemetry) -> Last:
    return _new_tuple(Last, (m.obscuration_pct_per_m, m.temperature_c, m.co_ppm,  # type: ignore[arg-type]
                             m.pressure_kpa, m.flow_lps, m.battery_v))


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    id: str
    kind: DeviceKind
    site_id: str | None = None
    parent_id: str | None = None  # the panel the device hangs off
    zone: int | None = None
    location: str = ""


def cond_key(type_: str, point: str = "") -> str:
    return f"{type_}@{point}" if point else type_


def split_key(key: str) -> tuple[str, str]:
    type_, _, point = key.partition("@")
    return type_, point


class DeviceState:
    __slots__ = ("battery", "chamber", "clock", "co_base", "conds", "dirty", "event_seqs", "hb_at",
                 "info", "last", "last_seen", "leak", "params", "pressure", "recent", "skew",
                 "starts", "static_kpa", "temp_base", "trough")

    def __init__(self, info: DeviceInfo, params: DeviceParams) -> None:
        self.info = info
        self.params = params
        self.conds: dict[str, Condition] = NO_CONDS  # type: ignore[assignment]
        self.last_seen: float | None = None  # centre time of the last message
        self.skew = 0.0  # centre time minus device time, at the last message
        self.clock: ClockWindow | None = None  # clock supervision (alerting/rules/clock.py)
        self.dirty = False
        self.hb_at: float | None = None  # centre time of the scheduled heartbeat check
        self.last: Last | None = None  # the last reading's values (evidence for timer raises)
        self.event_seqs: tuple[int, ...] = ()  # recent event seqs: a redelivery is no new event
        # windows (None until the kind's first reading needs them)
        self.recent: Ring | None = None  # temperature, for rate of rise / rising heat
        self.temp_base: float | None = None
        self.co_base: float | None = None
        self.battery: Buckets | None = None
        self.chamber: Buckets | None = None  # clean-air obscuration baseline
        self.pressure: Buckets | None = None  # pressure trend (early warning)
        self.leak: Buckets | None = None  # pressure decline (leak)
        self.static_kpa: float | None = None
        self.trough: tuple[float, float] | None = None  # (t, kPa) lowest since the last rise
        self.starts: Ring | None = None  # jockey pump starts

    @property
    def kind(self) -> DeviceKind:
        return self.info.kind

    def cond(self, key: str) -> Condition:
        c = self.conds.get(key)
        if c is None:
            if self.conds is NO_CONDS:
                self.conds = {}
            c = self.conds[key] = Condition()
        return c

    def is_active(self, key: str) -> bool:
        c = self.conds.get(key)
        return c is not None and c.active

    # -- persistence ---------------------------------------------------------------------
    def dump(self) -> bytes:
        def opt(x: Ring | Buckets | None) -> list[object] | None:
            return None if x is None else x.dump()

        conds = {k: c.dump() for k, c in self.conds.items()
                 if c.active or c.pending_since is not None or c.clear_since is not None}
        return _encode([STATE_VERSION, self.last_seen, self.skew, conds, opt(self.recent),
                        self.temp_base, self.co_base, opt(self.battery), opt(self.chamber),
                        opt(self.pressure), opt(self.leak), self.static_kpa,
                        list(self.trough) if self.trough else None, opt(self.starts),
                        list(self.event_seqs)])

    def load(self, blob: bytes) -> None:
        data = _decode(blob)
        if data[0] not in _READABLE:  # version 1 differs only in the Buckets (Buckets.load)
            return
        (_, self.last_seen, self.skew, conds, recent, self.temp_base, self.co_base, battery,
         chamber, pressure, leak, self.static_kpa, trough, starts, seqs) = data
        self.event_seqs = tuple(seqs)
        self.conds = {k: Condition.load(v) for k, v in conds.items()} or NO_CONDS  # type: ignore[assignment]
        self.recent = Ring.load(recent) if recent else None
        self.battery = Buckets.load(battery) if battery else None
        self.chamber = Buckets.load(chamber) if chamber else None
        self.pressure = Buckets.load(pressure) if pressure else None
        self.leak = Buckets.load(leak) if leak else None
        self.trough = (trough[0], trough[1]) if trough else None
        self.starts = Ring.load(starts) if starts else None
