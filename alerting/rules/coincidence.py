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
    only while `quiet`, that is no smoke condition is pending or raised)."""
    temp = m.temperature_c
    if temp is not None:
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
    if st.recent is not None:
        rate = rate_c_per_min(st.recent, t, st.params.heat.ror_window_s, 3)
        if rate is not None and rate >= p.temp_slope_c_per_min:
            found["temperature_rate_c_per_min"] = round(rate, 2)
    co = m.co_ppm
    if co is not None and st.co_base is not None and co - st.co_base >= p.co_rise_ppm:
        found["co_rise_ppm"] = round(co - st.co_base, 1)
    return found or None


class ZoneIndex:
    """The open fire conditions of each zone, to find a second signal."""

    def __init__(self) -> None:
        self.zones: dict[ZoneKey, dict[Member, tuple[str, float]]] = {}

    def add(self, zone: ZoneKey, member: Member, type_: str, t: float,
            window_s: float) -> list[tuple[Member, str]]:
        """Record a fire signal; return the other members of the zone within the window."""
        members = self.zones.setdefault(zone, {})
        others = [(mem, ty) for mem, (ty, at) in members.items()
                  if mem != member and abs(t - at) <= window_s]
        members[member] = (type_, t)
        return others

    def remove(self, zone: ZoneKey, member: Member) -> None:
        members = self.zones.get(zone)
        if members is not None:
            members.pop(member, None)
            if not members:
                del self.zones[zone]
