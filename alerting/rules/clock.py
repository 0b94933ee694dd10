"""Device clock supervision: a `clock` fault per device whose clock is wrong (GB 50440 asks the
centre to check device clocks daily; here every message is a check).

The offset of a message is the centre's time when the engine takes it minus the device's own
stamp (for a re-stamped message, the stamp it carried: `device_ts`). Delivery only adds to an
offset (transit, a broker backlog, a redelivery), so:

- an offset below `-limit_s` (the device is ahead) is wrong at once, and so is a stamp the
  decoder did not believe because it is before 2000 or older than 30 days, or could not read
  at all (missing, not a time: `invalid`, which measures no offset): the fault is raised on
  that message;
- a device behind is told from a late delivery by the smallest offset over a window of
  `window_s`: above `limit_s` at the end of a window, the fault is raised;
- the fault clears at the end of a window with no wrong stamp and its smallest offset within
  the limit: the clock has been right for a whole window.

Status messages count only for the first point: a retained birth message carries the time its
connection was made, however long ago.

The fault is its own alarm (`fault`, type `clock`, point ""), raised and cleared with the
centre's time; it never changes what the other rules do with the message (a fire stamped a
year ahead is still a fire, evaluated at its receive time). The window is kept in memory
only: after a restart the first window starts with the first message (an open fault stays
open until a clean window ends).
"""

from __future__ import annotations

import json
import math
from typing import Protocol

from alerting.condition import Level
from alerting.decision import Action, Decision
from alerting.device import DeviceState
from alerting.modes import ModeTable
from alerting.window import ClockWindow
from firetower.alarm_store import AlarmKey
from firetower.alarms import PRIORITY, AlarmClass
from firetower.device_clock import describe_offset
from firetower.model import ClockState, Message, Status

CLOCK = "clock"


class Host(Protocol):
    """What the clock rule needs of the engine: the mode windows, the decision sink, and the
    set of devices whose state must be saved."""

    modes: ModeTable

    def put(self, d: Decision) -> None: ...

    def mark_dirty(self, device_id: str) -> None: ...


def observe(engine: Host, st: DeviceState, m: Message, now: float) -> None:
    """Called by the engine for a message it evaluates (not a last will), after
    `st.skew = now - m.ts`, unless the device's window says nothing can change: the stamp was
    believed, the offset is no new smallest, the window is not over."""
    p = st.params.clock
    w = st.clock
    if w is None:
        w = st.clock = ClockWindow(now, p.window_s)
    dev = m.device_ts
    offset = st.skew if dev is None else now - dev.timestamp()
    state = m.clock
    if state is None or state is ClockState.AHEAD:  # ahead: judged against this device's limit
        state = ClockState.AHEAD if offset < -p.limit_s else None
    if offset < w.low and type(m) is not Status and state is not ClockState.INVALID:
        w.low = offset  # an unreadable stamp has no device time: its "offset" is the transit
    if state is not None:
        w.wrong = state
        if not st.is_active(CLOCK):
            _raise(engine, st, m, state, offset, now, "this message")
    if now >= w.until:
        _close(engine, st, w, m, now)


def _close(engine: Host, st: DeviceState, w: ClockWindow, m: Message, now: float) -> None:
    p = st.params.clock
    if w.wrong is None and w.low != math.inf:
        if w.low > p.limit_s:
            if not st.is_active(CLOCK):
                _raise(engine, st, m, ClockState.BEHIND, w.low, now,
                       f"the smallest offset over {p.window_s:g} s")
        elif st.is_active(CLOCK):
            _clear(engine, st, w.low, now)
    st.clock = ClockWindow(now, p.window_s)


def _raise(engine: Host, st: DeviceState, m: Message, state: ClockState, offset: float,
           now: float, basis: str) -> None:
    info = st.info
    c = st.cond(CLOCK)
    c.active, c.level = True, Level.TRUE
    st.dirty = True
    engine.mark_dirty(info.id)
    p = st.params.clock
    stamp: object = (m.device_ts or m.ts).isoformat()
    offset_s: float | None = round(offset, 3)
    if state is ClockState.INVALID:  # no device time: what was sent, as the decoder kept it
        sent = (m.extra or {}).get("ts", _NOTHING)
        stamp = None if sent is _NOTHING else _shown(sent)
        offset_s = None
        reason = ("device clock unreadable: " + ("no ts" if sent is _NOTHING
                                                  else f"ts {stamp} is not a time"))
    elif state is ClockState.RESET:
        reason = f"device clock reset: it stamps {stamp} ({describe_offset(offset)})"
    else:
        reason = f"device clock {describe_offset(offset)} (limit {p.limit_s:g} s)"
    evidence = {"rule": CLOCK, "state": state.value, "offset_s": offset_s,
                "limit_s": p.limit_s, "window_s": p.window_s, "device_stamp": stamp,
                "seq": m.seq, "basis": basis}
    mode = engine.modes.mode_for(info.id, info.site_id, "", now, info.parent_id, info.zone)[0]
    engine.put(Decision(  # the engine's sink, as its own supervision uses
        Action.RAISE, PRIORITY[AlarmClass.FAULT], AlarmKey(info.id, "", CLOCK), AlarmClass.FAULT,
        now, info.site_id, info.zone, 1.0, evidence, mode,
        group_key=f"{AlarmClass.FAULT.value}:{info.site_id or ''}",
        device_ts=m.ts.timestamp(), received_at=m.received_at.timestamp(), reason=reason,
        seq=m.seq))


_NOTHING = object()
_SHOWN_MAX = 64  # characters of an unreadable stamp shown in the fault


def _shown(sent: object) -> str:
    """An unreadable stamp as the fault shows it: JSON text, cut to `_SHOWN_MAX`."""
    text = json.dumps(sent, ensure_ascii=False)
    return text if len(text) <= _SHOWN_MAX else text[: _SHOWN_MAX - 1] + "…"


def _clear(engine: Host, st: DeviceState, offset: float, now: float) -> None:
    info = st.info
    c = st.conds[CLOCK]
    c.active, c.level = False, Level.FALSE
    st.dirty = True
    engine.mark_dirty(info.id)
    p = st.params.clock
    engine.put(Decision(  # the engine's sink, as its own supervision uses
        Action.CLEAR, PRIORITY[AlarmClass.FAULT], AlarmKey(info.id, "", CLOCK), AlarmClass.FAULT,
        now, info.site_id, evidence={"offset_s": round(offset, 3), "limit_s": p.limit_s},
        reason=f"device clock right for {p.window_s:g} s (smallest offset "
               f"{describe_offset(offset)})"))
