"""Smoke: obscuration above the alarm level is a fire alarm once it has held `for_s` if
confirmed (heat or CO at the detector, or another fire signal in its zone: a raised fire alarm
or a second detector in alarm), or `unconfirmed_for_s` if not: the alarm verification of a lone
detector (at most 60 s, NFPA 72), long enough to let a cooking or steam puff pass. Until then it
is a pre-alarm (an early warning, after `prealarm_for_s`). The fire alarm supersedes the
pre-alarm, which clears at once."""

from __future__ import annotations

from alerting.condition import Condition, Level
from alerting.device import DeviceState
from alerting.rules.base import DURATIONS, Context, step
from alerting.rules.coincidence import multi_evidence, track
from firetower.alarms import AlarmClass
from firetower.model import Telemetry

ALARM = "smoke.threshold"
PREALARM = "smoke.prealarm"


def evaluate_in_zone(ctx: Context, st: DeviceState, m: Telemetry) -> None:
    """A smoke detector's reading: its clean-air baselines (while no smoke condition is
    pending or raised), the smoke rules, then its place among its zone's detectors in
    verification (the rule table's smoke entry)."""
    conds = st.conds
    track(st, m, ctx.t, not conds or _quiet(conds.get(ALARM), conds.get(PREALARM)))
    evaluate(ctx, st, m)
    alarm = st.conds.get(ALARM)
    if alarm is not None and not alarm.active and st.info.zone is not None:
        ctx.zone_verifying(st, alarm)


def _quiet(*conds: Condition | None) -> bool:
    """No smoke condition pending or raised: readings are clean air for the baselines."""
    for c in conds:
        if c is not None and (c.active or c.pending_since is not None):
            return False
    return True


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


def durations(ctx: Context, st: DeviceState) -> tuple[float, float]:
    """The fire condition's hold now: `for_s` once confirmed (by the last reading's heat or CO,
    or by the zone), else the verification `unconfirmed_for_s`."""
    p = st.params.smoke
    c = st.conds.get(ALARM)
    if c is not None and c.active:
        return p.for_s, p.clear_s
    last = st.last
    ok = (last is not None and multi_evidence(st, last, ctx.t) is not None  # type: ignore[arg-type]
          ) or ctx.zone_confirms(st)
    return (p.for_s if ok else p.unconfirmed_for_s), p.clear_s


DURATIONS[ALARM] = durations
DURATIONS[PREALARM] = lambda ctx, st: (st.params.smoke.prealarm_for_s, st.params.smoke.clear_s)
