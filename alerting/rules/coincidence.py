"""Multi-criteria and coincidence: what makes a fire alarm *confirmed*.

- Multi-criteria at one detector: smoke together with temperature rising (above its clean-air
  baseline by `temp_rise_c`, or at `temp_slope_c_per_min`) or CO above its baseline by
  `co_rise_ppm`. Steam and dust scatter light but make no heat and no CO.
- Coincidence in one zone (GB 50116 §4.1.6 two-signal AND logic): two fire signals from
  different detectors or panel points of the same zone within `window_s`. A smoke detector in
  alarm whose verification still runs counts as a signal (`ZoneIndex.pend`): the second
  detector in alarm confirms the first at once, whichever reading is processed first.

Every fire alarm carries a confidence (single < multi-criteria < coincidence) and the evidence.
"""

from __future__ import annotations

from typing import Any

from alerting.condition import Condition
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
    """The fire signals of each zone, to find a second, independent signal.

    A member is one signal (device, point); its `source` is the place the signal comes from
    (the registered location of a detector, the location a panel event names). A panel's fire
    event for a detector and that detector's own analog alarm share the source: they are one
    signal seen twice, not two signals, and do not confirm each other.

    Members are raised fire alarms, or smoke detectors *in alarm* whose verification still
    runs (above the alarm level, not yet raised: `pend`). Both count as a signal of the zone
    (GB 50116 §4.1.6 two-signal AND logic; NFPA 72 alarm verification: another detector in
    alarm during the verification confirms at once), so two detectors in alarm confirm each
    other however their readings interleave.

    `confirmed` holds the raised members already known confirmed by coincidence: each is
    annotated once, when the zone's second independent signal arrives, not again by every
    later one (N fires in one zone would otherwise cost N^2 / 2 alarm writes).
    """

    def __init__(self) -> None:
        self.zones: dict[ZoneKey, dict[Member, tuple[str, float, str]]] = {}  # raised
        self.pending: dict[ZoneKey, dict[Member, tuple[str, float, str]]] = {}  # verifying
        self.confirmed: dict[ZoneKey, set[Member]] = {}

    def confirm(self, zone: ZoneKey, members: list[Member]) -> list[Member]:
        """Mark raised members confirmed; return those that were not yet (to annotate)."""
        known = self.confirmed.setdefault(zone, set())
        new = [m for m in members if m not in known]
        known.update(new)
        return new

    @staticmethod
    def _find(members: dict[Member, tuple[str, float, str]] | None, member: Member,
              source: str, t: float, window_s: float) -> list[tuple[Member, str]]:
        if not members:
            return []
        return [(mem, ty) for mem, (ty, at, src) in members.items()
                if mem != member and src != source and abs(t - at) <= window_s]

    def others(self, zone: ZoneKey, member: Member, source: str, t: float,
               window_s: float) -> list[tuple[Member, str]]:
        """The independent signals of the zone in the window, raised or in verification."""
        return (self._find(self.zones.get(zone), member, source, t, window_s)
                + self._find(self.pending.get(zone), member, source, t, window_s))

    def verifying(self, zone: ZoneKey, member: Member, source: str, t: float,
                  window_s: float) -> list[tuple[Member, str]]:
        """The independent members of the zone in alarm whose verification still runs."""
        return self._find(self.pending.get(zone), member, source, t, window_s)

    def add(self, zone: ZoneKey, member: Member, type_: str, t: float, window_s: float,
            source: str = "") -> list[tuple[Member, str]]:
        """Record a raised fire signal; return the independent *raised* members of the zone in
        the window (those in verification: `verifying()`)."""
        src = source or f"{member[0]}/{member[1]}"
        others = self._find(self.zones.get(zone), member, src, t, window_s)
        self.zones.setdefault(zone, {})[member] = (type_, t, src)
        self.unpend(zone, member)
        return others

    def pend(self, zone: ZoneKey, member: Member, type_: str, t: float, source: str) -> bool:
        """Record a detector in alarm (verification running); True if it was not yet."""
        members = self.pending.setdefault(zone, {})
        if member in members:
            return False
        members[member] = (type_, t, source)
        return True

    def unpend(self, zone: ZoneKey, member: Member) -> None:
        members = self.pending.get(zone)
        if members is not None and members.pop(member, None) is not None and not members:
            del self.pending[zone]

    def is_pending(self, zone: ZoneKey, member: Member) -> bool:
        members = self.pending.get(zone)
        return members is not None and member in members

    def remove(self, zone: ZoneKey, member: Member) -> None:
        members = self.zones.get(zone)
        if members is not None:
            members.pop(member, None)
            if not members:
                del self.zones[zone]
        known = self.confirmed.get(zone)
        if known is not None:
            known.discard(member)
            if not known:
                del self.confirmed[zone]
        self.unpend(zone, member)


def in_alarm(zones: ZoneIndex, zone: ZoneKey, st: DeviceState, type_: str,
             alarm: Condition | None, t: float) -> list[Member]:
    """Keep a smoke detector's place among the zone's detectors in verification (its fire
    condition pending, not raised). Returns the zone's other detectors in verification when it
    has just joined them: each is now confirmed, and its deadline must be re-read at once."""
    if alarm is None or alarm.active:
        return []
    me = (st.info.id, "")
    if alarm.pending_since is None:
        if zones.is_pending(zone, me):
            zones.unpend(zone, me)
        return []
    source = st.info.location or f"{st.info.id}/"
    if not zones.pend(zone, me, type_, t, source):
        return []
    return [mem for mem, _ in zones.verifying(zone, me, source, t, st.params.multi.window_s)]
