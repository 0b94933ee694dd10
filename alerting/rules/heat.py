"""Heat: fixed temperature (default 57 °C) and rate of rise (default 8.3 °C/min), the slope a
least-squares fit over `ror_window_s`, never a difference of two readings."""

from __future__ import annotations

from alerting.condition import Level
from alerting.device import DeviceState
from alerting.rules.base import DURATIONS, Context, step
from alerting.window import Ring, slope
from firetower.alarms import AlarmClass
from firetower.model import Telemetry

FIXED = "heat.fixed"
RATE = "heat.rate_of_rise"
RING_SIZE = 24  # samples kept for the fit: a 60 s window at one reading every 2.5 s or slower


def evaluate(ctx: Context, st: DeviceState, m: Telemetry) -> None:
    temp = m.temperature_c
    if temp is None:
        return
    p = st.params.heat
    t = ctx.t
    ring = st.recent
    if ring is None:
        ring = st.recent = Ring(RING_SIZE)
    prev = ring.last()
    ring.add(t, temp)
    level = Level.TRUE if temp >= p.fixed_c else (
        Level.FALSE if temp < p.fixed_clear_c else Level.HOLD)
    hit = step(ctx, st, FIXED, AlarmClass.FIRE, level, 0.0, p.clear_s)
    if hit is not None:
        hit.evidence = {"rule": FIXED, "temperature_c": temp, "fixed_c": p.fixed_c}
    # The fit costs a few microseconds: skip it while nothing rises (no rate condition is
    # tracked and the last step climbed at under a quarter of the trip rate).
    if RATE not in st.conds and (prev is None or t <= prev[0] or
                                 (temp - prev[1]) * 60.0 / (t - prev[0]) < p.ror_c_per_min / 4):
        return
    rate = rate_c_per_min(ring, t, p.ror_window_s, p.ror_min_points)
    if rate is None:
        level = Level.HOLD
    elif rate >= p.ror_c_per_min:
        level = Level.TRUE
    elif rate < p.ror_c_per_min / 2:
        level = Level.FALSE
    else:
        level = Level.HOLD
    hit = step(ctx, st, RATE, AlarmClass.FIRE, level, 0.0, p.clear_s)
    if hit is not None:
        hit.evidence = {"rule": RATE, "rate_c_per_min": rate, "ror_c_per_min": p.ror_c_per_min,
                        "window_s": p.ror_window_s, "temperature_c": temp}


def rate_c_per_min(ring: Ring, t: float, window_s: float, min_points: int) -> float | None:
    """Fitted slope over the window in °C/min; None with too few points or too short a span."""
    ts, vs = ring.since(t - window_s)
    if len(ts) < min_points or ts[-1] - ts[0] < window_s / 2:
        return None
    s = slope(ts, vs)
    return None if s is None else s * 60.0


DURATIONS[FIXED] = DURATIONS[RATE] = lambda ctx, st: (0.0, st.params.heat.clear_s)
