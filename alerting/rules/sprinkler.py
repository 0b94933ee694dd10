"""Sprinkler pressure and flow (NFPA 13/25, GB 50261, standards §3.3):

- waterflow (fire): flow at or above one head's worth while the pressure has dropped
  `drop_kpa` below the static pressure, held for the retard time;
- low pressure (supervisory): static pressure below the configured minimum, not during flow;
- leak (supervisory): with the jockey cut-in configured, pressure `leak_margin_kpa` below it and
  still falling with no pump start (the pump is out of service or cannot keep up);
- pressure trend (early warning): the fitted decline since the last pump start reaches the
  minimum within `pressure_horizon_s` (below the cut-in, when that is configured);
- jockey short-cycling (supervisory): more pump starts (quick rises) per window than allowed.
"""

from __future__ import annotations

from alerting.condition import Level
from alerting.device import DeviceState
from alerting.rules.base import DURATIONS, Context, step
from alerting.window import Buckets, Ring, slope
from firetower.alarms import AlarmClass
from firetower.model import Telemetry

WATERFLOW = "sprinkler.waterflow"
LOW = "sprinkler.low_pressure"
LEAK = "sprinkler.leak"
JOCKEY = "sprinkler.jockey_cycling"
PRESSURE_TREND = "sprinkler.pressure_trend"  # an early warning
# Two physical criteria at once (a pressure step and sustained flow past the retard).
WATERFLOW_CONFIDENCE = 0.8
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
        hit.confidence = WATERFLOW_CONFIDENCE
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
    if not flowing and not water_on:
        _jockey(ctx, st, pk, t)
        _trend(ctx, st, pk, t)


def _trend(ctx: Context, st: DeviceState, pk: float, t: float) -> None:
    """Pressure trend (early warning) and leak (supervisory), fitted over the 5-minute means
    since the jockey pump last started: the decline the pump has not (yet) made up."""
    p = st.params.sprinkler
    ew = st.params.early_warning
    b = st.pressure
    if b is None:
        b = st.pressure = Buckets(ew.pressure_bucket_s, ew.pressure_buckets)
    if not b.add(t, pk):
        return
    st.dirty = True  # a closed bucket is worth keeping across a restart
    last_start = st.starts.last() if st.starts is not None else None
    ts, vs = b.since(last_start[0] if last_start else float("-inf"))
    if len(ts) < ew.pressure_min_points:
        return
    s = slope(ts, vs)
    if s is None:
        return
    now_v = vs[-1]
    cut_in = p.cut_in_kpa
    below_cut_in = cut_in <= 0 or now_v < cut_in - p.cut_in_margin_kpa
    eta: float | None = None
    if now_v <= p.min_kpa:
        eta = 0.0
    elif s < 0:
        eta = (now_v - p.min_kpa) / -s
    if below_cut_in and eta is not None and eta <= ew.pressure_horizon_s:
        level = Level.TRUE
    elif eta is None or eta > 2 * ew.pressure_horizon_s or (cut_in > 0 and now_v >= cut_in):
        level = Level.FALSE
    else:
        level = Level.HOLD
    hit = step(ctx, st, PRESSURE_TREND, AlarmClass.EARLY_WARNING, level, 0.0,
               ew.pressure_clear_s)
    if hit is not None:
        hit.evidence = {"rule": PRESSURE_TREND, "pressure_kpa": round(now_v, 1),
                        "min_kpa": p.min_kpa, "cut_in_kpa": cut_in or None,
                        "slope_kpa_per_h": round(s * 3600, 2),
                        "predicted_s": None if eta is None else round(eta), "points": len(ts)}
    if cut_in <= 0:
        return  # without the cut-in, seepage between pump starts looks like a leak
    per_h = s * 3600.0
    if now_v < cut_in - p.leak_margin_kpa and per_h <= -p.leak_kpa_per_h:
        level = Level.TRUE
    elif now_v >= cut_in:
        level = Level.FALSE
    else:
        level = Level.HOLD
    hit = step(ctx, st, LEAK, AlarmClass.SUPERVISORY, level, 0.0, p.clear_s)
    if hit is not None:
        hit.evidence = {"rule": LEAK, "pressure_kpa": round(now_v, 1), "cut_in_kpa": cut_in,
                        "slope_kpa_per_h": round(per_h, 2), "since_pump_start_s":
                        None if last_start is None else round(t - last_start[0])}


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
    n = st.starts.count_since(t - p.jockey_window_s)
    level = Level.TRUE if n > p.jockey_max_starts else (
        Level.FALSE if n <= p.jockey_max_starts // 2 else Level.HOLD)
    hit = step(ctx, st, JOCKEY, AlarmClass.SUPERVISORY, level, 0.0, 0.0)
    if hit is not None:
        hit.evidence = {"rule": JOCKEY, "starts": n, "window_s": p.jockey_window_s,
                        "max_starts": p.jockey_max_starts}


# What a timer re-reads (an override takes effect on a running retard or clear time at once).
DURATIONS[WATERFLOW] = lambda ctx, st: (st.params.sprinkler.retard_s, st.params.sprinkler.clear_s)
DURATIONS[LOW] = lambda ctx, st: (st.params.sprinkler.low_for_s, st.params.sprinkler.clear_s)
DURATIONS[LEAK] = lambda ctx, st: (0.0, st.params.sprinkler.clear_s)
DURATIONS[JOCKEY] = lambda ctx, st: (0.0, 0.0)
DURATIONS[PRESSURE_TREND] = lambda ctx, st: (0.0, st.params.early_warning.pressure_clear_s)
