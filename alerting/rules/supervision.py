"""Supervision: the `offline` rule. A per-device heartbeat deadline (per kind, configurable),
kept by the engine's timer heap to the second, plus the last will (status offline) which raises
at once; any message from the device clears it.

A panel that is offline inhibits its children's offline alarms: they are raised and shown as
inhibited (`inhibited_by = 'offline:<panel>'`), never dropped, and lose the mark when the panel
comes back.

Unlike the reading rules it decides from the absence of messages, so the engine calls it (from
its heartbeat deadline or on a last will, and on the next message) rather than per reading;
like them it does no I/O and reads no clock: it steps the device's `offline` condition and
returns the decisions for the engine to queue.
"""

from __future__ import annotations

from alerting.condition import Level
from alerting.decision import Action, Decision
from alerting.device import DeviceState
from firetower.alarm_store import AlarmKey
from firetower.alarms import PRIORITY, AlarmClass, Mode

OFFLINE = "offline"
_PRIORITY = PRIORITY[AlarmClass.OFFLINE]


def inhibitor(parent: DeviceState | None) -> str | None:
    """What inhibits a child's offline alarm: its panel being offline."""
    if parent is not None and parent.is_active(OFFLINE):
        return f"{OFFLINE}:{parent.info.id}"
    return None


def went_offline(st: DeviceState, at: float, why: str, *, mode: Mode,
                 parent: DeviceState | None, children: list[DeviceState],
                 deadline: float | None = None) -> list[Decision]:
    """The device missed its heartbeat deadline (`deadline`) or sent its last will, at centre
    time `at`: raise `offline` (in `mode`, inhibited while `parent` is offline) and mark the
    children already offline as inhibited by it. Nothing when it is offline already."""
    c = st.cond(OFFLINE)
    if c.active:
        return []
    c.active, c.level = True, Level.TRUE
    st.dirty = True
    info = st.info
    evidence = {"rule": OFFLINE, "last_seen": st.last_seen,
                "heartbeat_s": st.params.supervision.heartbeat_s, "why": why}
    if deadline is not None:
        evidence["deadline"] = deadline
    out = [Decision(
        Action.RAISE, _PRIORITY, AlarmKey(info.id, "", OFFLINE), AlarmClass.OFFLINE, at,
        info.site_id, info.zone, 1.0, evidence, mode, inhibited_by=inhibitor(parent),
        group_key=f"offline:{info.site_id or ''}", reason=why)]
    for child in children:
        if child.is_active(OFFLINE):
            out.append(Decision(Action.ANNOTATE, _PRIORITY,
                                AlarmKey(child.info.id, "", OFFLINE), AlarmClass.OFFLINE, at,
                                child.info.site_id, inhibited_by=f"{OFFLINE}:{info.id}",
                                reason=f"inhibited: panel {info.id} is offline"))
    return out


def came_online(st: DeviceState, now: float, children: list[DeviceState]) -> list[Decision]:
    """A message from a device that is offline: clear `offline` and lift the inhibition of its
    children's offline alarms."""
    c = st.conds.get(OFFLINE)
    if c is None or not c.active:
        return []
    c.active, c.level = False, Level.FALSE
    st.dirty = True
    info = st.info
    out = [Decision(Action.CLEAR, _PRIORITY, AlarmKey(info.id, "", OFFLINE), AlarmClass.OFFLINE,
                    now, info.site_id, reason="the device is reporting again")]
    for child in children:
        if child.is_active(OFFLINE):
            out.append(Decision(Action.ANNOTATE, _PRIORITY,
                                AlarmKey(child.info.id, "", OFFLINE), AlarmClass.OFFLINE, now,
                                child.info.site_id, uninhibit=True,
                                reason=f"panel {info.id} is back online"))
    return out
