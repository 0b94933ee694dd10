"""What rules produce and the one helper they share.

A rule is a function `evaluate(ctx, st, reading)`: it classifies the reading for each of its
conditions (TRUE / HOLD / FALSE), steps the condition with `step()`, and leaves any edge (raise,
re-occurrence, clear) as a `Hit` in `ctx.hits`. The engine turns hits into alarm decisions
(modes, inhibition, coincidence, confidence). Rules do no I/O and read no clock: the device
time `ctx.t` is passed in.

The durations of a condition (`for_s`, `clear_s`) come from the device's parameters when a reading
steps it. A rule whose durations a timer must re-read (the parameters were overridden, or a
zone confirmed a smoke detector while its verification ran) registers a function for the
condition type in `DURATIONS`; `durations()` asks it, and falls back to the durations the
condition was armed with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from alerting.condition import Condition, Edge, Level
from alerting.device import DeviceState
from firetower.alarms import AlarmClass


@dataclass(slots=True)
class Hit:
    type: str
    point: str
    edge: Edge
    alarm_class: AlarmClass
    at: float  # device time of the edge
    evidence: dict[str, Any] = field(default_factory=dict)
    confidence: float | None = None
    zone: int | None = None
    seen: tuple[float, float] | None = None  # clocks of the last reading at the raise level


@dataclass(slots=True)
class Timer:
    """Ask the engine to re-check a condition when its duration or clear time runs out."""

    device_id: str
    key: str
    due: float  # device time
    for_s: float
    clear_s: float
    alarm_class: AlarmClass


class Context:
    """Scratch space reused for every message: the device time and what rules produced."""

    __slots__ = ("hits", "rx", "t", "timers", "zone_confirms", "zone_verifying")

    def __init__(self) -> None:
        self.t = 0.0
        self.rx: datetime | None = None  # received_at of the message evaluated (None: a timer)
        # Set by the engine: does an independent fire signal in the device's zone confirm it?
        self.zone_confirms: Callable[[DeviceState], bool] = lambda st: False
        # Set by the engine: a smoke detector's fire condition is pending or went back
        # (not raised): keep its place among the zone's detectors in verification.
        self.zone_verifying: Callable[[DeviceState, Condition], None] = lambda st, c: None
        self.hits: list[Hit] = []
        self.timers: list[Timer] = []

    def reset(self, t: float) -> None:
        self.t = t
        self.rx = None
        if self.hits:
            self.hits.clear()
        if self.timers:
            self.timers.clear()


def step(ctx: Context, st: DeviceState, type_: str, cls: AlarmClass, level: Level,
         for_s: float, clear_s: float, point: str = "") -> Hit | None:
    """Step one condition; record a Hit on an edge and a Timer when a deadline appears."""
    key = f"{type_}@{point}" if point else type_  # = cond_key(), inlined: the hot path
    c = st.conds.get(key)
    if c is None:
        if level is not Level.TRUE:
            return None  # nothing to track: the usual case, kept cheap
        c = st.cond(key)
    was_pending, was_clearing = c.pending_since is not None, c.clear_since is not None
    edge = c.update(level, ctx.t, for_s, clear_s)
    if level is Level.TRUE and ctx.rx is not None:
        c.seen = (ctx.t, ctx.rx.timestamp())
    changed = (c.pending_since is not None) != was_pending or (
        c.clear_since is not None) != was_clearing
    if changed:
        st.dirty = True
    due = c.deadline(for_s, clear_s)
    if due is not None:
        # Armed when the duration starts, and again when it shortens (a zone confirmed the
        # detector, an override): the timer must not wait for the old, longer deadline.
        spec = c.spec
        if changed or spec is None or spec[0] != for_s or spec[1] != clear_s:
            c.spec = (for_s, clear_s, cls.value)
            if c.timer_at is None or due + st.skew < c.timer_at:
                ctx.timers.append(Timer(st.info.id, key, due, for_s, clear_s, cls))
    if edge is None:
        return None
    st.dirty = True
    hit = Hit(type_, point, edge, cls, ctx.t, seen=c.seen)
    ctx.hits.append(hit)
    return hit


Durations = Callable[[Context, DeviceState], tuple[float, float]]
# Condition type -> (for_s, clear_s) in force now, from the device's current parameters.
DURATIONS: dict[str, Durations] = {}


def durations(ctx: Context, st: DeviceState, type_: str,
              armed: tuple[float, float, str]) -> tuple[float, float]:
    """The durations of a condition now (`ctx.t` is the device's time): what its rule says
    with the current parameters, else what the condition was armed with."""
    f = DURATIONS.get(type_)
    return f(ctx, st) if f is not None else (armed[0], armed[1])
