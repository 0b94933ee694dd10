"""Sprinkler pressure and flow (NFPA 13/25, GB 50261, standards §3.3):

- waterflow (fire): flow at or above one head's worth while the pressure has dropped
  `drop_kpa` below the static pressure, held for the retard time;
- low pressure (supervisory): static pressure below the configured minimum, not during flow;
- leak (supervisory): a steady decline of `leak_kpa_per_h` or faster with no flow;
- jockey short-cycling (supervisory): more pump starts (quick rises) per window than allowed.
"""

from __future__ import annotations

from alerting.condition import Level
from alerting.device import DeviceState
from alerting.rules.base import Context, step
from alerting.window import Buckets, Ring, slope
from firetower.alarms import AlarmClass
from firetower.model import Telemetry

WATERFLOW = "sprinkler.waterflow"
LOW = "sprinkler.low_pressure"
LEAK = "sprinkler.leak"
JOCKEY = "sprinkler.jockey_cycling"
LEAK_BUCKETS = 8  # the leak slope is fitted over this many means spanning leak_window_s
STARTS_KEPT = 32


def evaluate(ctx: Context, st: DeviceState, m: Telemetry) -> None:
    pk = m.pressure_kpa
    if pk is None:
        return
    p = st.params.sprinkler
    t = ctx.t
    flow = m.flow_lps or 0.0
    flowing = flow >= p.flow_min_lps
    water = st.conds.get(WATERFLOW)
    water_on = water is not None and (water.active or water.pending)
    if st.static_kpa is None:
        st.static_kpa = pk
    elif not flowing and not water_on:
        st.static_kpa += p.static_alpha * (pk - st.static_kpa)
    drop = st.static_kpa - pk
    if flowing and drop >= p.drop_kpa:
        level = Level.TRUE
    elif flow < p.flow_min_lps / 2:
        level = Level.FALSE
    else:
        level = Level.HOLD
    hit = step(ctx, st, WATERFLOW, AlarmClass.FIRE, level, p.retard_s, p.clear_s)
    if hit is not None:
        hit.evidence = {"rule": WATERFLOW, "flow_lps": flow, "pressure_kpa": pk,
                        "static_kpa": round(st.static_kpa, 1), "drop_kpa": round(drop, 1),
                        "retard_s": p.retard_s}
    if flowing or water_on:
        level = Level.HOLD
    elif pk < p.min_kpa:
        level = Level.TRUE
    elif pk >= p.min_kpa + p.min_hyst_kpa:
        level = Level.FALSE
    else:
        level = Level.HOLD
    hit = step(ctx, st, LOW, AlarmClass.SUPERVISORY, level, p.low_for_s, p.clear_s)
    if hit is not None:
        hit.evidence = {"rule": LOW, "pressure_kpa": pk, "min_kpa": p.min_kpa}
    _leak(ctx, st, pk, flowing, t)
    if not flowing:
        _jockey(ctx, st, pk, t)


def _leak(ctx: Context, st: DeviceState, pk: float, flowing: bool, t: float) -> None:
    p = st.params.sprinkler
    b = st.leak
    if b is None:
        b = st.leak = Buckets(p.leak_window_s / LEAK_BUCKETS, LEAK_BUCKETS)
    if not b.add(t, pk):
        return
    ts, vs = b.ring.since(t - p.leak_window_s - b.bucket_s)
    s = slope(ts, vs) if len(ts) >= LEAK_BUCKETS // 2 else None
    pumped = st.starts is not None and bool(st.starts.since(t - p.leak_window_s)[0])
    if s is None or flowing or pumped:  # a pump start in the window: that is cycling, not leak
        level = Level.HOLD
    else:
        per_h = s * 3600.0
        level = Level.TRUE if per_h <= -p.leak_kpa_per_h else (
            Level.FALSE if per_h > -p.leak_kpa_per_h / 2 else Level.HOLD)
    hit = step(ctx, st, LEAK, AlarmClass.SUPERVISORY, level, 0.0, 0.0)
    if hit is not None and s is not None:
        hit.evidence = {"rule": LEAK, "slope_kpa_per_h": round(s * 3600.0, 2),
                        "window_s": p.leak_window_s, "pressure_kpa": pk}


def _jockey(ctx: Context, st: DeviceState, pk: float, t: float) -> None:
    p = st.params.sprinkler
    trough = st.trough
    if trough is None or pk <= trough[1] or t - trough[0] > p.jockey_rise_s:
        st.trough = (t, pk)
        if st.starts is None or not st.starts.n:
            return
    elif pk - trough[1] >= p.jockey_rise_kpa:
        if st.starts is None:
            st.starts = Ring(STARTS_KEPT)
        st.starts.add(t, pk)
        st.trough = (t, pk)
        st.dirty = True
    else:
        return
    assert st.starts is not None
    n = len(st.starts.since(t - p.jockey_window_s)[0])
    level = Level.TRUE if n > p.jockey_max_starts else (
        Level.FALSE if n <= p.jockey_max_starts // 2 else Level.HOLD)
    hit = step(ctx, st, JOCKEY, AlarmClass.SUPERVISORY, level, 0.0, 0.0)
    if hit is not None:
        hit.evidence = {"rule": JOCKEY, "starts": n, "window_s": p.jockey_window_s,
                        "max_starts": p.jockey_max_starts}
