"""Restart safety: put the engine back where it was before the process died.

1. Load each device's persisted state (pending durations, clear timers, windows, baselines,
   recent event seqs).
2. Make the open alarms in the database the truth for which conditions are raised: the writer
   stores state only when its queue is empty, so the state is never ahead of the alarms; a
   condition raised in the state without an open alarm was cleared after the state was saved,
   and an open alarm without a raised condition was raised after it.
3. Rebuild the zone index from the open fire alarms (coincidence keeps working).
4. Re-arm the timers of pending and clearing conditions.

It works on what it is given (`Restorable`, which the engine is), so this module does not
import the engine and the engine imports it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol

from alerting.clock import Clock
from alerting.condition import Level
from alerting.device import DeviceState, cond_key, split_key
from alerting.rules.coincidence import ZoneIndex, ZoneKey

log = logging.getLogger(__name__)


class Restorable(Protocol):
    """What a restore needs of the engine."""

    clock: Clock
    devices: dict[str, DeviceState]
    zones: ZoneIndex

    def zone_key(self, st: DeviceState, event_zone: int | None) -> ZoneKey | None: ...

    def push_timer(self, due: float, device_id: str, key: str) -> None: ...


def restore(engine: Restorable, states: dict[str, bytes], open_keys: Iterable[tuple[str, str, str]],
            open_fires: dict[tuple[str, str, str], tuple[float, str]]) -> None:
    devices = engine.devices
    for device_id, blob in states.items():
        st = devices.get(device_id)
        if st is not None:
            try:
                st.load(blob)
            except Exception:  # a corrupt or old blob costs only the pending durations
                log.exception("rule state of %s unreadable; starting it fresh", device_id)
    open_set = set(open_keys)
    for st in devices.values():
        for key, c in st.conds.items():
            type_, point = split_key(key)
            if c.active and (st.info.id, point, type_) not in open_set:
                c.active, c.went_false, c.clear_since = False, False, None
    now = engine.clock.now()
    for device_id, point, type_ in open_set:
        st = devices.get(device_id)
        if st is None:
            continue
        c = st.cond(cond_key(type_, point))
        if not c.active:
            c.active, c.level, c.pending_since = True, Level.HOLD, None
        fire = open_fires.get((device_id, point, type_))
        if fire is not None:
            zk = engine.zone_key(st, int(point.split("/")[0]) if "/" in point else None)
            if zk is not None:
                at, source = fire
                engine.zones.add(zk, (device_id, point), type_, at or now, 0.0,
                                 source or st.info.location)
    for st in devices.values():
        for key, c in st.conds.items():
            if c.spec is not None and (c.pending_since is not None or c.clear_since is not None):
                due = c.deadline(c.spec[0], c.spec[1])
                if due is not None:
                    c.timer_at = due + st.skew
                    engine.push_timer(c.timer_at, st.info.id, key)
