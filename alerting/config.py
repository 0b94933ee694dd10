"""Typed rule parameters, their defaults per device kind, and overrides per kind, site, device.

Each rule reads one frozen dataclass. The defaults (and the standard behind each) are listed in
docs/alarms.md. Overrides live in the `rule_overrides` table as JSON objects of field -> value;
they apply in the order kind, site, device, so the most specific wins. An override naming an
unknown field or a value of the wrong type is refused (logged) and the rest still applies.

Heightened watch windows (alerting/watch.py) apply after the overrides and only tighten
(`tighten`): a device of a covered site resolves the tighter of its own parameters and the
window's. `RuleConfig.with_watch` lays the windows active now over the same overrides.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from alerting.watch import WatchWindow, by_site
from firetower.model import DeviceKind
from firetower.watch import WatchSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SmokeParams:
    # UL 268 listed window 0.5-4.0 %/ft = 1.6-12.5 %/m; 2.0 %/ft = 6.4 %/m sits inside it.
    alarm_pct_per_m: float = 6.4
    # Pre-alarm at 60 % of the alarm level (50-70 % is common panel practice).
    prealarm_pct_per_m: float = 3.8
    for_s: float = 10.0  # a confirmed level must hold this long
    # Unconfirmed (no heat, no CO, no second signal in the zone) it must hold this long: the
    # alarm verification of a lone detector. NFPA 72 lets verification delay an alarm by at
    # most 60 s (refused above, see LIMITS); a puff of cooking steam shorter than that stays a
    # pre-alarm (an early warning, after `prealarm_for_s`).
    unconfirmed_for_s: float = 60.0
    prealarm_for_s: float = 10.0
    clear_ratio: float = 0.8  # clears below 80 % of the level (hysteresis) ...
    clear_s: float = 30.0  # ... held this long


@dataclass(frozen=True, slots=True)
class HeatParams:
    fixed_c: float = 57.0  # 135 °F, the common US rating; EN 54-5 A1 responds at 54-65 °C
    fixed_clear_c: float = 52.0
    ror_c_per_min: float = 8.3  # 15 °F/min (UL 521 rate-of-rise)
    ror_window_s: float = 60.0  # the slope is a least-squares fit over this window
    ror_min_points: int = 4
    clear_s: float = 30.0


@dataclass(frozen=True, slots=True)
class MultiParams:
    """Multi-criteria and coincidence (GB 50116 two-signal AND logic)."""

    window_s: float = 1800.0  # two open fire signals of one zone, raised within this time
    temp_rise_c: float = 3.0  # smoke plus temperature this far above its baseline (steam: < 2)
    temp_slope_c_per_min: float = 0.0  # ... or rising this fast (0 = off: steam pulses are fast)
    co_rise_ppm: float = 15.0  # smoke plus CO this far above its baseline
    baseline_alpha: float = 0.02  # EMA weight of a clean-air reading in a baseline
    single: float = 0.6  # confidence of one detector's threshold alarm
    multi: float = 0.85  # smoke confirmed by heat or CO at the same detector
    coincidence: float = 0.95  # two detectors (or points) of one zone


@dataclass(frozen=True, slots=True)
class SprinklerParams:
    flow_min_lps: float = 0.6  # about 10 gpm: one open head (vane flow switch threshold)
    drop_kpa: float = 50.0  # step below the static pressure that marks a head opening
    retard_s: float = 30.0  # waterflow retard: 30-45 s typical, at most 90 s (NFPA 72)
    static_alpha: float = 0.05  # EMA weight tracking the static pressure while no flow
    min_kpa: float = 100.0  # GB 50974 §5.2.2: at least 0.10 MPa for sprinkler systems
    min_hyst_kpa: float = 10.0
    low_for_s: float = 10.0
    # The jockey pump's cut-in (0 = not configured). Below it the pump should have started:
    # a decline continuing below it is a leak or a pump out of service.
    cut_in_kpa: float = 0.0
    cut_in_margin_kpa: float = 5.0  # the early warning looks at trends below cut-in minus this
    leak_margin_kpa: float = 35.0  # leak (supervisory): this far below cut-in and still falling
    leak_kpa_per_h: float = 10.0  # ... at least this fast
    jockey_rise_kpa: float = 20.0  # a rise this big within `jockey_rise_s` = one pump start
    jockey_rise_s: float = 180.0
    jockey_window_s: float = 3600.0
    jockey_max_starts: int = 6  # more starts than this per window: short-cycling
    clear_s: float = 30.0


@dataclass(frozen=True, slots=True)
class SupervisionParams:
    heartbeat_s: float = 300.0  # offline after this long silent (≤ 5 min, standards §5)


@dataclass(frozen=True, slots=True)
class ClockParams:
    """Device clock supervision (alerting/rules/clock.py, docs/alarms.md "Device clock")."""

    # A quartz clock drifts <= 2 s a day (20 ppm): checked daily (GB 50440) it never gets near
    # a minute, while a clock set by hand, never synchronised or reset is minutes to years out.
    # 60 s is 12 times the centre's own allowed error (5 s), far above transit, and below the
    # panel heartbeat (90 s), so records and supervision stay in the right minute.
    limit_s: float = 60.0
    # The smallest offset over this window is the clock's (a backlog only delays); the fault
    # clears after one whole window within the limit.
    window_s: float = 3600.0


@dataclass(frozen=True, slots=True)
class EarlyWarningParams:
    bucket_s: float = 3600.0  # battery trend: one mean per hour (averages the daily cycle) ...
    buckets: int = 24  # ... over the last day
    min_points: int = 6
    battery_min_v: float = 2.6  # a 3 V lithium cell is flat below this
    battery_horizon_s: float = 7 * 86400.0  # warn when flat within a week
    pressure_bucket_s: float = 300.0  # pressure trend: 5-minute means since the last pump start
    pressure_buckets: int = 36
    pressure_min_points: int = 4
    pressure_horizon_s: float = 6 * 3600.0  # warn when the minimum is reached within 6 h ...
    pressure_clear_s: float = 6 * 3600.0  # ... and clear only after 6 h without the trend
    chamber_bucket_s: float = 3600.0
    chamber_buckets: int = 48
    chamber_min_baseline: float = 1.0  # %/m: below this a drifting baseline is not worth a word
    chamber_horizon_s: float = 30 * 86400.0  # warn when the pre-alarm is reached within a month
    clear_s: float = 86400.0  # battery and chamber warnings clear after a day without the trend


@dataclass(frozen=True, slots=True)
class DeviceParams:
    smoke: SmokeParams = field(default_factory=SmokeParams)
    heat: HeatParams = field(default_factory=HeatParams)
    multi: MultiParams = field(default_factory=MultiParams)
    sprinkler: SprinklerParams = field(default_factory=SprinklerParams)
    supervision: SupervisionParams = field(default_factory=SupervisionParams)
    early_warning: EarlyWarningParams = field(default_factory=EarlyWarningParams)
    clock: ClockParams = field(default_factory=ClockParams)


RULES = tuple(f.name for f in dataclasses.fields(DeviceParams))

DEFAULTS: dict[DeviceKind, DeviceParams] = {
    DeviceKind.SMOKE_DETECTOR: DeviceParams(),
    DeviceKind.HEAT_DETECTOR: DeviceParams(),
    DeviceKind.SPRINKLER_PRESSURE: DeviceParams(
        early_warning=EarlyWarningParams(battery_min_v=3.3)),
    # The panel is the transmitting device: supervise it tighter (3 missed 30 s keep-alives).
    DeviceKind.ALARM_PANEL: DeviceParams(
        supervision=SupervisionParams(heartbeat_s=90.0),
        early_warning=EarlyWarningParams(battery_min_v=21.6)),  # 24 V lead-acid, 1.8 V/cell
}


class ConfigError(ValueError):
    pass


# Upper limits of delays that hold back a fire alarm (an override past them is refused):
# alarm verification and a confirmed smoke hold at most 60 s (NFPA 72 alarm verification),
# the waterflow retard at most 90 s (NFPA 72 waterflow retard).
LIMITS: dict[tuple[str, str], float] = {
    ("smoke", "for_s"): 60.0,
    ("smoke", "unconfirmed_for_s"): 60.0,
    ("sprinkler", "retard_s"): 90.0,
}


def apply(params: DeviceParams, rule: str, values: dict[str, Any]) -> DeviceParams:
    """`params` with `values` overriding rule `rule`; raises ConfigError on a bad key or type."""
    if rule not in RULES:
        raise ConfigError(f"unknown rule {rule!r} (rules: {', '.join(RULES)})")
    if not isinstance(values, dict):  # a JSON string, list or number stored in params
        raise ConfigError(f"the parameters of rule {rule!r} must be a JSON object, "
                          f"got {type(values).__name__} {str(values)[:80]!r}")
    current = getattr(params, rule)
    types = {f.name: f.type for f in dataclasses.fields(current)}
    clean: dict[str, Any] = {}
    for key, value in values.items():
        if key not in types:
            raise ConfigError(f"rule {rule!r} has no parameter {key!r}")
        want = types[key]
        if want in ("float", float) and type(value) in (int, float):
            clean[key] = float(value)
        elif want in ("int", int) and type(value) is int:
            clean[key] = value
        else:
            raise ConfigError(f"{rule}.{key} must be a {want}, got {value!r}")
        limit = LIMITS.get((rule, key))
        if limit is not None and not 0.0 <= clean[key] <= limit:
            raise ConfigError(f"{rule}.{key} must be between 0 and at most {limit:g} s, "
                              f"got {value!r}")
    return dataclasses.replace(params, **{rule: dataclasses.replace(current, **clean)})


def tighten(params: DeviceParams, watch: WatchSettings) -> DeviceParams:
    """`params` under a heightened watch: each watched parameter is the lower of its own and the
    window's (never higher: a watch never loosens). Unchanged, the same object."""
    sup, sm = params.supervision, params.smoke
    if watch.heartbeat_s is not None and watch.heartbeat_s < sup.heartbeat_s:
        sup = dataclasses.replace(sup, heartbeat_s=watch.heartbeat_s)
    smoke: dict[str, float] = {}
    v = watch.verification_s
    if v is not None:
        if v < sm.unconfirmed_for_s:
            smoke["unconfirmed_for_s"] = v
        if v < sm.for_s:
            smoke["for_s"] = v
    if watch.prealarm_ratio is not None:
        level = sm.alarm_pct_per_m * watch.prealarm_ratio
        if level < sm.prealarm_pct_per_m:
            smoke["prealarm_pct_per_m"] = level
    if sup is params.supervision and not smoke:
        return params
    return dataclasses.replace(params, supervision=sup,
                               smoke=dataclasses.replace(sm, **smoke) if smoke else sm)


@dataclass(frozen=True, slots=True)
class Override:
    scope: str  # 'kind' | 'site' | 'device'
    target: str
    rule: str
    params: dict[str, Any]


class RuleConfig:
    """Resolves the parameters of one device from the defaults, the overrides and the watch
    windows active now (`watch`, see `with_watch`)."""

    def __init__(self, overrides: list[Override] | None = None,
                 watch: Iterable[WatchWindow] = ()) -> None:
        self.by_scope: dict[tuple[str, str], list[Override]] = {}
        for o in overrides or []:
            self.by_scope.setdefault((o.scope, o.target), []).append(o)
        # The parameters without any watch, per (kind, site, device with its own overrides):
        # shared by every `with_watch` of this configuration.
        self._plain: dict[tuple[DeviceKind, str | None, str | None], DeviceParams] = {}
        # Equal parameters are one object, however many devices, sites or kinds resolve to
        # them (a device override equal to its site's costs no memory per device); shared by
        # `with_watch` too, so a site's parameters after a window are the very ones before it.
        self._interned: dict[DeviceParams, DeviceParams] = {d: d for d in DEFAULTS.values()}
        self._set_watch(watch)

    def _set_watch(self, windows: Iterable[WatchWindow]) -> None:
        self.windows: tuple[WatchWindow, ...] = tuple(windows)
        self.watch: dict[str, WatchSettings] = by_site(self.windows)
        self._cache: dict[tuple[DeviceKind, str | None, str | None], DeviceParams] = (
            self._plain if not self.watch else {})

    def with_watch(self, windows: Iterable[WatchWindow]) -> RuleConfig:
        """The same overrides under these (active) windows; cheap: the overrides, the parameters
        resolved without watch and the interned objects are shared."""
        new = copy.copy(self)
        new._set_watch(windows)
        return new

    def resolve(self, device_id: str, kind: DeviceKind, site_id: str | None) -> DeviceParams:
        has_own = ("device", device_id) in self.by_scope
        key = (kind, site_id, device_id if has_own else None)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        params = self._plain.get(key)
        if params is None:
            params = DEFAULTS[kind]
            scopes = [("kind", kind.value), ("site", site_id or ""), ("device", device_id)]
            for scope in scopes:
                for o in self.by_scope.get(scope, ()):
                    try:
                        params = apply(params, o.rule, o.params)
                    except ConfigError as exc:
                        log.error("rule override %s %s refused: %s", o.scope, o.target, exc)
            params = self._interned.setdefault(params, params)
            self._plain[key] = params
        watch = self.watch.get(site_id) if site_id is not None else None
        if watch is not None:  # after the overrides: a watch never loosens
            params = tighten(params, watch)
            params = self._interned.setdefault(params, params)
            self._cache[key] = params
        return params
