"""Panel and device events: the GB/T 26875.3 categories mapped to alarm classes.

fire -> fire; supervisory -> supervisory; fault, mains and battery faults -> fault;
pre-alarm -> early warning; disabled (屏蔽) and test -> mode changes (recorded, not alarms);
reset -> clears the panel's event alarms. Start, feedback, delay and silence are status only
(they are stored by the ingester). An active event re-sent while its alarm is open counts as a
re-occurrence; the inactive event clears it.
"""

from __future__ import annotations

from alerting.condition import Edge, Level
from alerting.device import DeviceState, split_key
from alerting.rules.base import Context, Hit, step
from firetower.alarms import AlarmClass, Mode
from firetower.model import Event, EventCategory, Telemetry

C = EventCategory
CLASS_OF: dict[EventCategory, AlarmClass] = {
    C.FIRE: AlarmClass.FIRE,
    C.SUPERVISORY: AlarmClass.SUPERVISORY,
    C.FAULT: AlarmClass.FAULT,
    C.MAINS_FAULT: AlarmClass.FAULT,
    C.BATTERY_FAULT: AlarmClass.FAULT,
    C.PRE_ALARM: AlarmClass.EARLY_WARNING,
}
MODE_OF: dict[EventCategory, Mode] = {C.DISABLED: Mode.DISABLED, C.TEST: Mode.TEST}
MAINS = "panel.mains_fault"
BATTERY = "panel.battery_fault"
# Confidence of a panel fire by component: a manual call point is a person who saw the fire.
COMPONENT_CONFIDENCE = {"manual_call_point": 0.9}
PANEL_FIRE_CONFIDENCE = 0.7


def point_of(e: Event) -> str:
    return f"{e.zone}/{e.point}" if (e.zone or e.point) else ""


def evaluate(ctx: Context, st: DeviceState, e: Event) -> tuple[str, Mode, bool] | None:
    """Step the event's condition. Returns (point, mode, active) for a mode change."""
    cat = e.category
    point = point_of(e)
    cls = CLASS_OF.get(cat)
    if cls is not None:
        type_ = f"panel.{cat.value}"
        key = f"{type_}@{point}" if point else type_
        c = st.conds.get(key)
        if e.active and c is not None and c.active:
            c.went_false = True  # every active event while open is one more occurrence
        hit = step(ctx, st, type_, cls, Level.TRUE if e.active else Level.FALSE, 0.0, 0.0,
                   point)
        if hit is not None:
            hit.zone = e.zone
            hit.evidence = {"rule": type_, "category": cat.value, "zone": e.zone,
                            "point": e.point, "component": e.component,
                            "location": e.location}
            if cls is AlarmClass.FIRE:
                hit.confidence = COMPONENT_CONFIDENCE.get(e.component or "",
                                                          PANEL_FIRE_CONFIDENCE)
        return None
    mode = MODE_OF.get(cat)
    if mode is not None:
        return point, mode, e.active
    if cat is C.RESET and e.active:
        for key, c in st.conds.items():
            type_, pt = split_key(key)
            if type_.startswith("panel.") and c.force_clear():
                st.dirty = True
                ctx.hits.append(Hit(type_, pt, Edge.CLEAR, CLASS_OF.get(
                    C(type_[6:]), AlarmClass.FAULT), ctx.t, {"reason": "panel reset"}))
    return None


def evaluate_telemetry(ctx: Context, st: DeviceState, m: Telemetry) -> None:
    """A panel's own power supervision from telemetry: the same alarms as the events."""
    for type_, ok in ((MAINS, m.mains_ok), (BATTERY, m.battery_ok)):
        if ok is None:
            continue
        hit = step(ctx, st, type_, AlarmClass.FAULT, Level.FALSE if ok else Level.TRUE,
                   0.0, 0.0)
        if hit is not None:
            hit.evidence = {"rule": type_, "source": "telemetry"}
