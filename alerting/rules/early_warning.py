"""Early warning (预警): a trend fitted over bucketed means predicts when a limit is reached.

- battery.depleting: battery voltage reaching `battery_min_v` within `battery_horizon_s`;
- sprinkler.pressure_trend: lives with the other pressure rules in sprinkler.py;
- smoke.chamber_drift: the clean-air obscuration baseline (dirty chamber) reaching the
  pre-alarm level within `chamber_horizon_s`.

Evaluated only when a bucket closes, so the per-reading cost is one addition. The alarm carries
the predicted time to the limit and the fitted slope.
"""

from __future__ import annotations

from alerting.condition import Level
from alerting.device import DeviceState
from alerting.rules.base import Context, step
from alerting.window import Buckets, time_to_reach
from firetower.alarms import AlarmClass
from firetower.model import DeviceKind, Telemetry

BATTERY = "battery.depleting"
CHAMBER = "smoke.chamber_drift"


def evaluate(ctx: Context, st: DeviceState, m: Telemetry) -> None:
    p = st.params.early_warning
    t = ctx.t
    v = m.battery_v
    if v is not None:
        b = st.battery
        if b is None:
            b = st.battery = Buckets(p.bucket_s, p.buckets)
        if b.add(t, v):
            st.dirty = True  # a closed bucket is worth keeping across a restart
            _trend(ctx, st, b, BATTERY, p.battery_min_v, p.battery_horizon_s, falling=True)
    if st.info.kind is DeviceKind.SMOKE_DETECTOR and m.obscuration_pct_per_m is not None:
        pre = st.params.smoke.prealarm_pct_per_m
        if m.obscuration_pct_per_m >= pre / 2:
            return  # smoke, not clean air
        b = st.chamber
        if b is None:
            b = st.chamber = Buckets(p.chamber_bucket_s, p.chamber_buckets)
        if b.add(t, m.obscuration_pct_per_m):
            st.dirty = True
            last = b.last()
            if last is not None and last[1] < p.chamber_min_baseline:
                step(ctx, st, CHAMBER, AlarmClass.EARLY_WARNING, Level.FALSE, 0.0, p.clear_s)
                return
            _trend(ctx, st, b, CHAMBER, pre, p.chamber_horizon_s, falling=False)


def _trend(ctx: Context, st: DeviceState, b: Buckets, type_: str, limit: float,
           horizon_s: float, *, falling: bool) -> None:
    p = st.params.early_warning
    ts, vs = b.since(float("-inf"))
    if len(ts) < p.min_points:
        return
    now_v = vs[-1]
    reached = now_v <= limit if falling else now_v >= limit
    fit = time_to_reach(ts, vs, limit)
    eta: float | None
    if reached:
        eta = 0.0
    elif fit is not None and ((fit[1] < 0) == falling):
        eta = fit[0]
    else:
        eta = None
    if eta is not None and eta <= horizon_s:
        level = Level.TRUE
    elif eta is None or eta > 2 * horizon_s:
        level = Level.FALSE
    else:
        level = Level.HOLD
    hit = step(ctx, st, type_, AlarmClass.EARLY_WARNING, level, 0.0, p.clear_s)
    if hit is not None:
        hit.evidence = {"rule": type_, "value": round(now_v, 3), "limit": limit,
                        "predicted_s": None if eta is None else round(eta),
                        "slope_per_h": None if fit is None else round(fit[1] * 3600, 4),
                        "points": len(ts)}
