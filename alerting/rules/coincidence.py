"""Multi-criteria and coincidence: what makes a fire alarm *confirmed*.

- Multi-criteria at one detector: smoke together with temperature rising (above its clean-air
  baseline by `temp_rise_c`, or at `temp_slope_c_per_min`) or CO above its baseline by
  `co_rise_ppm`. Steam and dust scatter light but make no heat and no CO.
- Coincidence in one zone (GB 50116 §4.1.6 two-signal AND logic): two fire signals from
  different detectors or panel points of the same zone within `window_s`.

Every fire alarm carries a confidence (single < multi-criteria < coincidence) and the evidence.
"""

from __future__ import annotations

from typing import Any

from alerting.device import DeviceState
from alerting.rules.heat import rate_c_per_min
from alerting.window import Ring
from firetower.model import Telemetry

RING_SIZE = 16
ZoneKey = tuple[str | None, str | None, int]  # (site, panel, zone)
Member = tuple[str, str]  # (device id, point)


def track(st: DeviceState, m: Telemetry, t: float, quiet: bool) -> None:
    """Keep a smoke detector's recent temperature and its clean-air baselines (EMA, updated
    only while `quiet`, that is no smoke condition is pending or raised). The temperature ring
    is kept only while the rising-temperature criterion is on (`temp_slope_c_per_min` > 0,
    the only reader; off by default): 400 B a detector otherwise spent on nothing."""
    temp = m.temperature_c
    if temp is not None and st.params.multi.temp_slope_c_per_min > 0:
        ring = st.recent
        if ring is None:
            ring = st.recent = Ring(RING_SIZE)
        ring.add(t, temp)
    if not quiet:
        return
    a = st.params.multi.baseline_alpha
    if temp is not None:
        b = st.temp_base
        st.temp_base = temp if b is None else b + a * (temp - b)
    co = m.co_ppm
    if co is not None:
        b = st.co_base
        st.co_base = co if b is None else b + a * (co - b)


def multi_evidence(st: DeviceState, m: Telemetry, t: float) -> dict[str, Any] | None:
    """Heat or CO evidence at the same detector, or None."""
    p = st.params.multi
    found: dict[str, Any] = {}
    temp = m.temperature_c
    if temp is not None and st.temp_base is not None and temp - st.temp_base >= p.temp_rise_c:
        found["temperature_rise_c"] = round(temp - st.temp_base, 2)
    if st.recent is not None and p.temp_slope_c_per_min > 0:
        rate = rate_c_per_min(st.recent, t, st.params.heat.ror_window_s, 3)
        if rate is not None and rate >= p.temp_slope_c_per_min:
            found["temperature_rate_c_per_min"] = round(rate, 2)
    co = m.co_ppm
    if co is not None and st.co_base is not None and co - st.co_base >= p.co_rise_ppm:
        found["co_rise_ppm"] = round(co - st.co_base, 1)
    return found or None


class ZoneIndex:
    """The open fire alarms of each zone, to find a second, independent signal.

    A member is one alarm (device, point); its `source` is the place the signal comes from
    (the registered location of a detector, the location a panel event names). A panel's fire
    event for a detector and that detector's own analog alarm share the source: they are one
    signal seen twice, not two signals, and do not confirm each other.
    """

    def __init__(self) -> None:
        self.zones: dict[ZoneKey, dict[Member, tuple[str, float, str]]] = {}

    def others(self, zone: ZoneKey, member: Member, source: str, t: float,
               window_s: float) -> list[tuple[Member, str]]:
        members = self.zones.get(zone)
        if not members:
            return []
        return [(mem, ty) for mem, (ty, at, src) in members.items()
                if mem != member and src != source and abs(t - at) <= window_s]

    def add(self, zone: ZoneKey, member: Member, type_: str, t: float, window_s: float,
            source: str = "") -> list[tuple[Member, str]]:
        """Record a fire signal; return the independent members of the zone in the window."""
        others = self.others(zone, member, source or f"{member[0]}/{member[1]}", t, window_s)
        self.zones.setdefault(zone, {})[member] = (type_, t, source or f"{member[0]}/{member[1]}")
        return others

    def remove(self, zone: ZoneKey, member: Member) -> None:
        members = self.zones.get(zone)
        if members is not None:
            members.pop(member, None)
            if not members:
                del self.zones[zone]
