"""Detection timing (issue 11): zone coincidence, alarm verification, deadlines re-armed when the
parameters change, offline alarms dated when decided, and the clocks of timer-raised alarms.
The engine with a FakeClock: time is driven, never slept."""

from __future__ import annotations

import pytest

from alerting.config import ConfigError, Override, RuleConfig, apply
from alerting.decision import Action, Decision
from alerting.device import DeviceInfo
from firetower.alarms import AlarmClass
from firetower.model import DeviceKind

from .harness import PANEL, SMOKE, SPRINKLER, Harness, dt

CLEAN = {"temperature_c": 21.0, "co_ppm": 0.0}  # smoke alone: no heat, no CO
QUIET = [Override("kind", k, "supervision", {"heartbeat_s": 1e9})
         for k in ("smoke_detector", "heat_detector", "alarm_panel", "sprinkler_pressure")]


def zone_harness() -> Harness:
    """s1, s2 in zone 3 of panel p1 (different places), s3 in zone 4; 30 s of clean air."""
    h = Harness([DeviceInfo("s1", SMOKE, "site", "p1", 3, "room 301"),
                 DeviceInfo("s2", SMOKE, "site", "p1", 3, "room 302"),
                 DeviceInfo("s3", SMOKE, "site", "p1", 4, "room 401"),
                 DeviceInfo("p1", PANEL, "site")], QUIET)
    for _ in range(30):
        for dev in ("s1", "s2", "s3"):
            h.reading(dev, obscuration_pct_per_m=0.2, **CLEAN)
        h.advance(1)
    h.decisions.clear()
    return h


def fires(h: Harness, device: str | None = None) -> list[Decision]:
    return [d for d in h.decisions if d.action is Action.RAISE
            and d.alarm_class is AlarmClass.FIRE and device in (None, d.key.device_id)]


# -- finding 6: a second detector in alarm confirms the zone at once -----------------------------
def test_second_detector_in_alarm_confirms_the_zone_at_once() -> None:
    h = zone_harness()
    for _ in range(20):  # s1 alone in alarm: verification runs, a pre-alarm, no fire
        h.reading("s1", obscuration_pct_per_m=8.0, **CLEAN)
        h.reading("s2", obscuration_pct_per_m=0.2, **CLEAN)
        h.advance(1)
    assert fires(h) == []
    t2 = h.now
    h.reading("s2", obscuration_pct_per_m=8.0, **CLEAN)  # the second detector reaches alarm
    first = fires(h)
    assert [d.key.device_id for d in first] == ["s1"]
    assert first[0].evidence["coincidence"] == [
        {"device_id": "s2", "point": "", "type": "smoke.threshold", "verifying": True}]
    assert first[0].confidence == pytest.approx(0.95)
    assert first[0].evidence["confirmed"] is True
    for _ in range(11):
        h.reading("s1", obscuration_pct_per_m=8.0, **CLEAN)
        h.reading("s2", obscuration_pct_per_m=8.0, **CLEAN)
        h.advance(1)
    second = fires(h, "s2")
    assert len(second) == 1 and second[0].at <= t2 + 10.0 + 1e-6
    assert [c["device_id"] for c in second[0].evidence["coincidence"]] == ["s1"]
    assert second[0].confidence == pytest.approx(0.95)
    assert len(fires(h, "s1")) == 1  # confirmed once, not raised again


def test_a_panel_fire_of_the_zone_confirms_a_detector_in_verification_at_once() -> None:
    h = zone_harness()
    for _ in range(15):
        h.reading("s1", obscuration_pct_per_m=8.0, **CLEAN)
        h.advance(1)
    assert fires(h) == []
    h.event("p1", "fire", True, zone=3, point=9, location="room 309")
    assert sorted(d.key.device_id for d in fires(h)) == ["p1", "s1"]
    s1 = fires(h, "s1")[0]
    assert s1.confidence == pytest.approx(0.95) and s1.evidence["confirmed"] is True


def test_detectors_of_other_zones_do_not_confirm_each_other() -> None:
    h = zone_harness()
    for _ in range(40):
        h.reading("s1", obscuration_pct_per_m=8.0, **CLEAN)
        h.reading("s3", obscuration_pct_per_m=8.0, **CLEAN)
        h.advance(1)
    assert fires(h) == []  # two zones, two lone detectors: verification still runs


# -- finding 7: alarm verification of a lone detector is at most 60 s ----------------------------
def test_lone_detector_prealarm_then_fire_after_60_s_of_verification() -> None:
    h = zone_harness()
    t0 = h.now
    for _ in range(70):
        h.reading("s1", obscuration_pct_per_m=8.0, **CLEAN)
        h.advance(1)
    raised = [(d.key.type, d.at - t0) for d in h.raised()]
    assert raised[0][0] == "smoke.prealarm" and raised[0][1] == pytest.approx(10.0)
    fire = fires(h)
    assert len(fire) == 1 and fire[0].at - t0 == pytest.approx(60.0)
    assert fire[0].evidence["confirmed"] is False and fire[0].confidence == pytest.approx(0.6)


def test_steam_shorter_than_the_verification_is_only_a_prealarm() -> None:
    h = zone_harness()
    for _ in range(50):  # cooking steam at one head: above the alarm level for 50 s
        h.reading("s1", obscuration_pct_per_m=8.0, **CLEAN)
        h.advance(1)
    for _ in range(60):
        h.reading("s1", obscuration_pct_per_m=0.2, **CLEAN)
        h.advance(1)
    assert [(d.action.value, d.key.type) for d in h.decisions] == [
        ("raise", "smoke.prealarm"), ("clear", "smoke.prealarm")]


@pytest.mark.parametrize(("rule", "params"), [
    ("smoke", {"unconfirmed_for_s": 120.0}), ("smoke", {"for_s": 61.0}),
    ("sprinkler", {"retard_s": 91.0})])
def test_delays_past_the_standards_limits_are_refused(rule: str, params: dict) -> None:
    with pytest.raises(ConfigError, match="at most"):
        apply(RuleConfig().resolve("d", DeviceKind.SMOKE_DETECTOR, None), rule, params)


# -- finding 8: overrides take effect at once; offline dated when decided -------------------------
def supervised() -> Harness:
    h = Harness([DeviceInfo("s1", SMOKE, "site")], supervise=True)
    h.reading("s1", obscuration_pct_per_m=0.2, **CLEAN)
    return h


def heartbeat(s: float) -> RuleConfig:
    return RuleConfig([Override("device", "s1", "supervision", {"heartbeat_s": s})])


def offline(h: Harness) -> list[Decision]:
    return [d for d in h.decisions if d.action is Action.RAISE and d.key.type == "offline"]


def test_a_shortened_heartbeat_bites_at_the_new_deadline() -> None:
    h = supervised()
    t0 = h.now
    h.advance(30)
    h.engine.set_config(heartbeat(60))
    h.advance(29.5)
    assert offline(h) == []
    h.advance(1)
    [d] = offline(h)
    assert d.at == pytest.approx(t0 + 60)


def test_a_heartbeat_shortened_past_its_deadline_raises_at_once_dated_when_decided() -> None:
    h = supervised()
    t0 = h.now
    h.advance(120)
    h.engine.set_config(heartbeat(60))
    h.advance(0)
    [d] = offline(h)
    assert d.at == pytest.approx(t0 + 120)  # raised_at: when it was decided
    assert d.evidence["deadline"] == pytest.approx(t0 + 60)  # the deadline it missed


def test_a_lengthened_heartbeat_does_not_bite_at_the_old_deadline() -> None:
    h = supervised()
    t0 = h.now
    h.engine.set_config(heartbeat(600))
    h.advance(599)
    assert offline(h) == []
    h.advance(2)
    assert [d.at - t0 for d in offline(h)] == [pytest.approx(600)]


def test_a_shortened_verification_of_a_silent_detector_takes_effect_at_once() -> None:
    h = zone_harness()
    t0 = h.now
    h.reading("s1", obscuration_pct_per_m=8.0, **CLEAN)  # then nothing more from it
    h.advance(20)
    h.engine.set_config(RuleConfig([*QUIET, Override("device", "s1", "smoke",
                                                     {"unconfirmed_for_s": 30.0})]))
    h.advance(9.5)
    assert fires(h) == []
    h.advance(1)
    assert [d.at - t0 for d in fires(h)] == [pytest.approx(30.0)]


def test_a_lengthened_retard_is_not_cut_short_by_the_old_timer() -> None:
    h = Harness([DeviceInfo("w1", SPRINKLER, "site")], QUIET)
    h.feed("w1", 60, 2, pressure_kpa=800.0, flow_lps=0.0)
    t0 = h.now
    h.reading("w1", pressure_kpa=600.0, flow_lps=1.5)  # then silence (the timer decides)
    h.engine.set_config(RuleConfig([*QUIET, Override("device", "w1", "sprinkler",
                                                     {"retard_s": 60.0})]))
    h.advance(45)
    assert fires(h) == []
    h.advance(16)
    assert [d.at - t0 for d in fires(h)] == [pytest.approx(60.0)]


# -- finding 9: timer-raised fires carry the clocks of the reading that completed them ------------
def test_a_timer_raised_smoke_fire_carries_its_readings_clocks() -> None:
    h = zone_harness()
    h.skew = 5.0  # the detector's clock is 5 s behind the centre's
    h.reading("s1", obscuration_pct_per_m=9.0, temperature_c=21.0, co_ppm=40.0)
    ts, rx = h.now - 5.0, h.now
    h.advance(10.5)
    [fire] = fires(h)
    assert fire.evidence["by"] == "timer"
    assert fire.device_ts == pytest.approx(ts) and fire.received_at == pytest.approx(rx)


def test_a_waterflow_fire_after_the_retard_carries_its_last_readings_clocks() -> None:
    h = Harness([DeviceInfo("w1", SPRINKLER, "site")], QUIET)
    h.feed("w1", 60, 2, pressure_kpa=800.0, flow_lps=0.0)
    h.skew = -2.0  # and this one's is 2 s ahead
    h.feed("w1", 5, 1, pressure_kpa=600.0, flow_lps=1.5)  # then the gateway goes quiet
    last_ts, last_rx = h.now - 1 + 2.0, h.now - 1
    h.advance(30)
    [fire] = fires(h)
    assert fire.evidence["by"] == "timer"
    assert fire.device_ts == pytest.approx(last_ts) and fire.received_at == pytest.approx(last_rx)
    assert dt(fire.device_ts) > dt(fire.received_at)  # stored as sent: the clocks tell


def test_devices_put_in_service_after_the_start_are_supervised_from_then() -> None:
    from firetower.model import Lifecycle

    h = Harness([DeviceInfo("s1", SMOKE, "site")])  # registered: not supervised yet
    t0 = h.now
    h.advance(100)
    h.engine.set_devices([DeviceInfo("s1", SMOKE, "site"), DeviceInfo("s2", SMOKE, "site")],
                         {"s1": Lifecycle.IN_SERVICE, "s2": Lifecycle.IN_SERVICE})
    h.advance(299)
    assert offline(h) == []  # neither has said a word: 300 s from being put in service
    h.advance(2)
    assert sorted((d.key.device_id, d.at - t0) for d in offline(h)) == [
        ("s1", pytest.approx(400)), ("s2", pytest.approx(400))]


def test_a_mode_window_opened_or_ended_applies_to_the_next_decision_even_a_timers() -> None:
    from alerting.modes import ModeWindow
    from firetower.alarms import Mode

    h = zone_harness()
    h.reading("s1", obscuration_pct_per_m=9.0, temperature_c=21.0, co_ppm=40.0)  # then silence
    h.advance(5)
    h.engine.modes.add(ModeWindow("site", "site", None, Mode.TEST, "op:li", "aerosol test",
                                  h.now, h.now + 3600))
    h.advance(6)  # the 10 s hold runs out by timer, inside the window
    assert [d.mode for d in fires(h)] == [Mode.TEST]
    h.reading("s3", obscuration_pct_per_m=9.0, temperature_c=21.0, co_ppm=40.0)
    h.advance(5)
    h.engine.modes.end("site", "site", None, Mode.TEST)  # ended before s3's hold runs out
    h.advance(6)
    assert [(d.key.device_id, d.mode) for d in fires(h)] == [("s1", Mode.TEST),
                                                             ("s3", Mode.NORMAL)]
