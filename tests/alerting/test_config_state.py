"""Rule configuration (defaults, overrides, refusal), state persistence, and an engine-level
property: raises and clears of a real rule follow the readings."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.config import DEFAULTS, ConfigError, Override, RuleConfig, apply
from alerting.device import DeviceInfo, DeviceState
from firetower.model import DeviceKind

from .harness import HEAT, SMOKE, Harness

QUIET = [Override("kind", "heat_detector", "supervision", {"heartbeat_s": 1e9})]


def test_defaults_per_kind() -> None:
    assert DEFAULTS[DeviceKind.ALARM_PANEL].supervision.heartbeat_s == 90.0
    assert DEFAULTS[DeviceKind.SMOKE_DETECTOR].supervision.heartbeat_s == 300.0
    assert DEFAULTS[DeviceKind.HEAT_DETECTOR].heat.fixed_c == 57.0


@pytest.mark.parametrize(("rule", "params", "why"), [
    ("smok", {"for_s": 1}, "unknown rule"),
    ("smoke", {"for_seconds": 1}, "no parameter"),
    ("smoke", {"for_s": "10"}, "must be a float"),
    ("sprinkler", {"jockey_max_starts": 6.5}, "must be a int"),
    # params written by hand (or double-encoded) as a JSON string or a list: the rule engine
    # crashed at load on these and the ingester exited in a restart loop, raising nothing
    ("smoke", '{"for_s": 1}', "must be a JSON object"),
    ("smoke", [["for_s", 1]], "must be a JSON object"),
], ids=["rule", "field", "type", "int", "string", "list"])
def test_bad_overrides_are_refused(rule: str, params: object, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        apply(DEFAULTS[DeviceKind.SMOKE_DETECTOR], rule, params)


def test_most_specific_override_wins_and_a_bad_one_is_skipped() -> None:
    cfg = RuleConfig([Override("kind", "smoke_detector", "smoke", {"for_s": 20}),
                      Override("site", "s1", "smoke", {"for_s": 30, "clear_s": 5}),
                      Override("device", "d1", "smoke", {"for_s": 40}),
                      Override("device", "d1", "smoke", {"bogus": 1})])
    assert cfg.resolve("d1", DeviceKind.SMOKE_DETECTOR, "s1").smoke.for_s == 40
    assert cfg.resolve("d1", DeviceKind.SMOKE_DETECTOR, "s1").smoke.clear_s == 5
    assert cfg.resolve("d2", DeviceKind.SMOKE_DETECTOR, "s1").smoke.for_s == 30
    assert cfg.resolve("d3", DeviceKind.SMOKE_DETECTOR, "s2").smoke.for_s == 20
    assert cfg.resolve("d3", DeviceKind.HEAT_DETECTOR, "s2").smoke.for_s == 10


def test_state_round_trip_is_small_and_keeps_pending_conditions() -> None:
    h = Harness([DeviceInfo("s1", SMOKE, "site")])
    for i in range(400):
        h.reading("s1", obscuration_pct_per_m=0.2 + (8.0 if i > 390 else 0.0),
                  temperature_c=21.0, co_ppm=0.0, battery_v=3.0)
        h.advance(60)
    st0 = h.engine.devices["s1"]
    blob = st0.dump()
    assert len(blob) <= 1024
    st1 = DeviceState(st0.info, st0.params)
    st1.load(blob)
    assert st1.dump() == blob
    assert st1.conds["smoke.threshold"].pending_since == st0.conds["smoke.threshold"].pending_since


readings = st.lists(st.tuples(st.floats(20.0, 80.0), st.floats(0.5, 40.0)), max_size=80)


@settings(max_examples=150, deadline=None)
@given(readings)
def test_fixed_heat_raises_only_when_hot_and_clears_only_after_cool_for_clear_s(
        seq: list[tuple[float, float]]) -> None:
    h = Harness([DeviceInfo("h1", HEAT, "site")], QUIET)
    p = h.engine.devices["h1"].params.heat
    history: list[tuple[float, float]] = []

    def check() -> None:
        for d in h.decisions:
            if d.key.type != "heat.fixed":
                continue
            if d.action.value == "raise" and d.reason == "condition true":
                assert history[-1][1] >= p.fixed_c  # no alarm without a true condition
            if d.action.value == "clear":  # the condition was false for clear_s before
                window = [v for t, v in history if t >= d.at - p.clear_s - 1e-6]
                assert all(v < p.fixed_clear_c for v in window)
                assert any(t <= d.at - p.clear_s + 1e-6 for t, _ in history)
        h.decisions.clear()

    for temp, dt in seq:
        h.reading("h1", temperature_c=temp)
        history.append((h.now, temp))
        check()
        h.advance(dt)
        check()
