"""Smoke: obscuration above the alarm level is a fire alarm once it has held `for_s` if
confirmed (heat or CO at the detector, or an independent fire signal in its zone), or
`unconfirmed_for_s` if not (longer than a cooking or steam transient). Above the pre-alarm level
(and not yet in alarm) is a pre-alarm (an early warning). The fire alarm supersedes the
pre-alarm, which clears at once."""

from __future__ import annotations

from alerting.condition import Level
from alerting.device import DeviceState
from alerting.rules.base import Context, step
from alerting.rules.coincidence import multi_evidence
from firetower.alarms import AlarmClass
from firetower.model import Telemetry

ALARM = "smoke.threshold"
PREALARM = "smoke.prealarm"


def evaluate(ctx: Context, st: DeviceState, m: Telemetry) -> None:
    v = m.obscuration_pct_per_m
    if v is None:
        return
    p = st.params.smoke
    alarm = p.alarm_pct_per_m
    level = Level.TRUE if v >= alarm else (
        Level.FALSE if v < alarm * p.clear_ratio else Level.HOLD)
    for_s = p.for_s
    if level is Level.TRUE and not st.is_active(ALARM) and not confirmed(ctx, st, m):
        for_s = p.unconfirmed_for_s
    hit = step(ctx, st, ALARM, AlarmClass.FIRE, level, for_s, p.clear_s)
    if hit is not None:
        hit.evidence = {"rule": ALARM, "obscuration_pct_per_m": v, "alarm_pct_per_m": alarm,
                        "for_s": for_s}
    pre = p.prealarm_pct_per_m
    if st.is_active(ALARM):
        step(ctx, st, PREALARM, AlarmClass.EARLY_WARNING, Level.FALSE, 0.0, 0.0)
        if ctx.hits and ctx.hits[-1].type == PREALARM:
            ctx.hits[-1].evidence = {"rule": PREALARM, "superseded_by": ALARM}
        return
    level = Level.TRUE if v >= pre else (Level.FALSE if v < pre * p.clear_ratio else Level.HOLD)
    hit = step(ctx, st, PREALARM, AlarmClass.EARLY_WARNING, level, p.prealarm_for_s, p.clear_s)
    if hit is not None:
        hit.evidence = {"rule": PREALARM, "obscuration_pct_per_m": v,
                        "prealarm_pct_per_m": pre}


def confirmed(ctx: Context, st: DeviceState, m: Telemetry) -> bool:
    return multi_evidence(st, m, ctx.t) is not None or ctx.zone_confirms(st)
