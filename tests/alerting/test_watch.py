"""Heightened watch windows in the rule engine (pure): the overlay on the resolved parameters
(alerting/config.py `tighten`, `RuleConfig.with_watch`), the window bounds (alerting/watch.py),
and the engine's supervision when a window applies and reverts (FakeClock)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.config import DEFAULTS, LIMITS, RULES, DeviceParams, Override, RuleConfig, tighten
from alerting.decision import Action, Decision
from alerting.device import DeviceInfo
from alerting.watch import WatchWindow, active, by_site, next_bound
from firetower.model import DeviceKind
from firetower.watch import BOUNDS, WatchSettings

from .harness import PANEL, SMOKE, Harness

T0 = 1_800_000_000.0


def window(wid: int = 1, sites: tuple[str, ...] = ("a",), starts: float = T0,
           ends: float = T0 + 3600, **settings: float) -> WatchWindow:
    return WatchWindow(wid, f"w{wid}", starts, ends, frozenset(sites), WatchSettings(**settings))


def smoke_of(cfg: RuleConfig, site: str | None = "a", device: str = "d1") -> DeviceParams:
    return cfg.resolve(device, SMOKE, site)


# -- the overlay -----------------------------------------------------------------------------
def test_a_window_tightens_every_watched_parameter() -> None:
    w = window(heartbeat_s=30, verification_s=20, prealarm_ratio=0.5)
    p = smoke_of(RuleConfig().with_watch([w]))
    assert p.supervision.heartbeat_s == 30.0
    assert (p.smoke.unconfirmed_for_s, p.smoke.for_s) == (20.0, 10.0)  # for_s was shorter
    assert p.smoke.prealarm_pct_per_m == pytest.approx(6.4 * 0.5)
    plain = DEFAULTS[SMOKE]  # the rest untouched
    assert (p.heat, p.multi, p.sprinkler, p.clock) == (plain.heat, plain.multi, plain.sprinkler,
                                                        plain.clock)
    assert p.smoke.alarm_pct_per_m == plain.smoke.alarm_pct_per_m


def test_verification_caps_the_confirmed_hold_too() -> None:
    p = smoke_of(RuleConfig().with_watch([window(verification_s=5)]))
    assert (p.smoke.unconfirmed_for_s, p.smoke.for_s) == (5.0, 5.0)


def test_a_window_never_loosens() -> None:
    cfg = RuleConfig([Override("site", "a", "smoke", {"unconfirmed_for_s": 15.0,
                                                      "prealarm_pct_per_m": 2.0}),
                      Override("site", "a", "supervision", {"heartbeat_s": 60.0})])
    w = window(heartbeat_s=600, verification_s=60, prealarm_ratio=0.9)
    assert smoke_of(cfg.with_watch([w])) is smoke_of(cfg)  # nothing tighter: the same object
    assert tighten(DEFAULTS[SMOKE], WatchSettings(heartbeat_s=3600)) is DEFAULTS[SMOKE]


def test_overrides_apply_first_then_the_watch() -> None:
    # the pre-alarm follows the overridden alarm level; a device override looser than the
    # window is still cut to it
    cfg = RuleConfig([Override("kind", "smoke_detector", "smoke", {"alarm_pct_per_m": 4.0}),
                      Override("device", "d1", "supervision", {"heartbeat_s": 1200.0})])
    p = smoke_of(cfg.with_watch([window(heartbeat_s=120, prealarm_ratio=0.5)]))
    assert p.smoke.prealarm_pct_per_m == pytest.approx(2.0)
    assert p.supervision.heartbeat_s == 120.0


def test_two_windows_over_one_site_combine_by_the_tighter_of_each() -> None:
    w1 = window(1, ("a", "b"), heartbeat_s=60, verification_s=30)
    w2 = window(2, ("a",), heartbeat_s=120, prealarm_ratio=0.5)
    cfg = RuleConfig().with_watch([w1, w2])
    a = smoke_of(cfg, "a")
    assert (a.supervision.heartbeat_s, a.smoke.unconfirmed_for_s) == (60.0, 30.0)
    assert a.smoke.prealarm_pct_per_m == pytest.approx(3.2)
    b = smoke_of(cfg, "b")
    assert (b.supervision.heartbeat_s, b.smoke.unconfirmed_for_s) == (60.0, 30.0)
    assert b.smoke.prealarm_pct_per_m == DEFAULTS[SMOKE].smoke.prealarm_pct_per_m
    assert by_site([w1, w2])["a"] == WatchSettings(60.0, 30.0, 0.5, None)


def test_other_sites_and_devices_without_a_site_are_untouched() -> None:
    cfg = RuleConfig([Override("site", "z", "heat", {"fixed_c": 70.0})])
    watched = cfg.with_watch([window(heartbeat_s=30)])
    assert smoke_of(watched, "z") is smoke_of(cfg, "z")
    assert smoke_of(watched, None) is smoke_of(cfg, None) == DEFAULTS[SMOKE]


def test_after_the_window_the_same_params_object_as_without() -> None:
    cfg = RuleConfig([Override("site", "a", "heat", {"fixed_c": 70.0}),
                      Override("device", "d2", "smoke", {"for_s": 20.0})])
    before = {d: smoke_of(cfg, "a", d) for d in ("d1", "d2")}
    during = cfg.with_watch([window(heartbeat_s=30)])
    for d in before:
        assert smoke_of(during, "a", d) != before[d]
    after = cfg.with_watch([])
    for d in before:
        assert smoke_of(after, "a", d) is before[d]
    assert cfg.resolve("p", PANEL, "a") is after.resolve("p", PANEL, "a")


def test_resolve_is_cached_and_interned_per_site() -> None:
    cfg = RuleConfig().with_watch([window(heartbeat_s=30)])
    one, two = smoke_of(cfg, "a", "d1"), smoke_of(cfg, "a", "d2")
    assert one is two is smoke_of(cfg, "a", "d1")
    other = RuleConfig().with_watch([window(7, ("b",), heartbeat_s=30)])  # its own interning
    assert smoke_of(other, "b") == one


# -- bounds ----------------------------------------------------------------------------------
def test_a_window_is_active_from_its_start_until_before_its_end() -> None:
    w = window(starts=T0, ends=T0 + 10)
    assert [w.active(t) for t in (T0 - 0.001, T0, T0 + 9.999, T0 + 10)] == [
        False, True, True, False]
    later = window(2, starts=T0 + 5, ends=T0 + 20)
    assert active([w, later], T0 + 7) == [w, later]
    assert [next_bound([w, later], t) for t in (T0 - 1, T0, T0 + 5, T0 + 10, T0 + 20)] == [
        T0, T0 + 5, T0 + 10, T0 + 20, None]


# -- the engine: a window applies and reverts while devices are supervised --------------------
def offline(h: Harness) -> list[Decision]:
    return [d for d in h.decisions if d.action is Action.RAISE and d.key.type == "offline"]


def watched(h: Harness, base: RuleConfig, *windows: WatchWindow) -> None:
    """What the service does at a bound: the overrides under the windows active now."""
    h.engine.set_config(base.with_watch(active(windows, h.now)))


def supervised() -> tuple[Harness, RuleConfig]:
    h = Harness([DeviceInfo("s1", SMOKE, "a"), DeviceInfo("s2", SMOKE, "a"),
                 DeviceInfo("o1", SMOKE, "b")], supervise=True)
    for dev in ("s1", "s2", "o1"):
        h.reading(dev, obscuration_pct_per_m=0.2)
    return h, h.engine.config


def test_a_silent_device_goes_offline_at_last_seen_plus_the_watch_heartbeat() -> None:
    h, base = supervised()
    seen = h.now
    h.advance(20)
    w = window(starts=h.now, ends=h.now + 600, heartbeat_s=60)
    watched(h, base, w)
    h.advance(39.5)
    assert offline(h) == []
    h.advance(1)
    assert sorted(d.key.device_id for d in offline(h)) == ["s1", "s2"]  # not o1 (site b)
    assert [d.at for d in offline(h)] == [pytest.approx(seen + 60)] * 2  # not seen + 300


def test_a_device_silent_past_the_watch_heartbeat_goes_offline_at_once() -> None:
    h, base = supervised()
    seen = h.now
    h.advance(100)
    watched(h, base, window(starts=h.now, ends=h.now + 600, heartbeat_s=60))
    h.advance(0)
    [one, two] = offline(h)
    assert one.at == two.at == pytest.approx(seen + 100)  # dated when decided ...
    assert one.evidence["deadline"] == pytest.approx(seen + 60)  # ... the missed deadline


def test_when_the_window_ends_the_old_heartbeat_returns() -> None:
    h, base = supervised()
    before = h.engine.devices["s1"].params
    w = window(starts=h.now, ends=h.now + 300, heartbeat_s=30)
    watched(h, base, w)
    for _ in range(14):  # every 20 s: within the watch heartbeat
        h.advance(20)
        h.reading("s1", obscuration_pct_per_m=0.2)
        h.reading("s2", obscuration_pct_per_m=0.2)
        h.reading("o1", obscuration_pct_per_m=0.2)
    h.advance(15)  # 295 s: the last reports 15 s ago, the window ends in 5 s
    assert offline(h) == []
    watched(h, base, w)  # still active
    h.advance(5)
    watched(h, base, w)  # ended: reverted
    st = h.engine.devices["s1"]
    assert st.params is before and st.params.supervision.heartbeat_s == 300.0
    seen = st.last_seen
    assert seen is not None
    h.advance(60)  # s1 reports every 60 s now: fine under 300 s, not under the watch's 30 s
    h.reading("s1", obscuration_pct_per_m=0.2)
    h.advance(60)
    h.reading("s1", obscuration_pct_per_m=0.2)
    assert offline(h) == []
    h.advance(280)  # s2 was silent since `seen`: offline at seen + 300, not seen + 30
    assert sorted(d.key.device_id for d in offline(h)) == ["o1", "s2"]
    assert [d.at for d in offline(h)] == [pytest.approx(seen + 300)] * 2


# -- property: a watch never loosens a duration -----------------------------------------------
def _values(rule: str) -> st.SearchStrategy[dict[str, Any]]:
    fields = {f.name: f.type for f in dataclasses.fields(getattr(DeviceParams(), rule))}

    def value(rule: str, name: str, tp: object) -> st.SearchStrategy[Any]:
        if tp in ("int", int):
            return st.integers(0, 10_000)
        hi = LIMITS.get((rule, name), 1e6)
        return st.floats(0.0, hi, allow_nan=False)

    return st.fixed_dictionaries({}, optional={n: value(rule, n, t) for n, t in fields.items()})


OVERRIDE = st.sampled_from(RULES).flatmap(lambda rule: st.builds(
    Override, st.sampled_from(["kind", "site", "device"]), st.just(""), st.just(rule),
    _values(rule)))
SETTINGS = st.builds(WatchSettings, *(
    st.none() | st.floats(lo, hi, allow_nan=False) for lo, hi in BOUNDS.values()))
TARGET = {"kind": "smoke_detector", "site": "a", "device": "d1"}


@settings(max_examples=200, deadline=None)
@given(st.lists(OVERRIDE, max_size=6), st.lists(SETTINGS, min_size=1, max_size=3),
       st.sampled_from(list(DeviceKind)))
def test_property_a_watch_never_loosens_a_duration(overrides: list[Override],
                                                   watches: list[WatchSettings],
                                                   kind: DeviceKind) -> None:
    overrides = [dataclasses.replace(o, target=TARGET[o.scope] if o.scope != "kind"
                                     else kind.value) for o in overrides]
    cfg = RuleConfig(overrides)
    windows = [window(i, ("a",), **w.to_json()) for i, w in enumerate(watches)]
    plain, tight = cfg.resolve("d1", kind, "a"), cfg.with_watch(windows).resolve("d1", kind, "a")
    combined = watches[0]
    for w in watches[1:]:
        combined = combined.tighter(w)
    for rule in RULES:
        p, t = getattr(plain, rule), getattr(tight, rule)
        for f in dataclasses.fields(p):
            before, after = getattr(p, f.name), getattr(t, f.name)
            if f.name.endswith("_s") or (rule, f.name) == ("smoke", "prealarm_pct_per_m"):
                assert after <= before, (rule, f.name)
            else:
                assert after == before, (rule, f.name)
    if combined.heartbeat_s is not None:
        assert tight.supervision.heartbeat_s <= combined.heartbeat_s
    if combined.verification_s is not None:
        assert tight.smoke.unconfirmed_for_s <= combined.verification_s
        assert tight.smoke.for_s <= combined.verification_s
    if combined.prealarm_ratio is not None:
        assert tight.smoke.prealarm_pct_per_m <= (
            tight.smoke.alarm_pct_per_m * combined.prealarm_ratio)
    assert cfg.with_watch([]).resolve("d1", kind, "a") is plain
