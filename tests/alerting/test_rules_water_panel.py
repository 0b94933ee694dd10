"""Sprinkler, panel-event, supervision, early-warning and mode rules."""

from __future__ import annotations

import pytest

from alerting.config import Override
from alerting.decision import Action
from alerting.device import DeviceInfo
from alerting.modes import ModeWindow
from firetower.alarms import Mode

from .harness import HEAT, PANEL, SMOKE, SPRINKLER, Harness


def water(**kw) -> Harness:  # type: ignore[no-untyped-def]
    return Harness([DeviceInfo("w1", SPRINKLER, "site")], **kw)


def test_head_open_is_a_fire_alarm_after_the_retard() -> None:
    h = water()
    h.feed("w1", 60, 2, pressure_kpa=800.0, flow_lps=0.0)
    h.feed("w1", 28, 1, pressure_kpa=600.0, flow_lps=1.5)
    assert h.take() == []
    h.feed("w1", 4, 1, pressure_kpa=600.0, flow_lps=1.5)
    assert h.take() == [("raise", "w1", "sprinkler.waterflow", "fire")]
    assert h.engine.devices["w1"].conds["sprinkler.waterflow"].active


def test_a_short_flow_surge_within_the_retard_is_no_alarm() -> None:
    h = water()
    h.feed("w1", 60, 2, pressure_kpa=800.0, flow_lps=0.0)
    h.feed("w1", 20, 1, pressure_kpa=700.0, flow_lps=1.5)
    h.feed("w1", 60, 2, pressure_kpa=800.0, flow_lps=0.0)
    assert h.take() == []


def test_pressure_drop_without_flow_is_not_waterflow_but_low_pressure() -> None:
    h = water()
    h.feed("w1", 60, 2, pressure_kpa=800.0, flow_lps=0.0)
    h.feed("w1", 30, 1, pressure_kpa=80.0, flow_lps=0.0)
    assert [d[2] for d in h.take() if d[0] == "raise"] == ["sprinkler.low_pressure"]


def test_slow_leak_is_early_warning_then_leak_then_low_pressure() -> None:
    ov = [Override("device", "w1", "sprinkler", {"cut_in_kpa": 550.0, "min_kpa": 480.0})]
    h = water(overrides=ov)
    h.feed("w1", 1800, 60, pressure_kpa=600.0, flow_lps=0.0)
    assert h.take() == []
    # the jockey is out of service: 30 kPa/h down from 600 kPa, no pump start
    h.feed("w1", 6 * 3600, 60, pressure_kpa=lambda el: 600.0 - el / 120, flow_lps=0.0)
    raised = [(d.key.type, d.alarm_class.value, round(d.at - h.now)) for d in h.raised()]
    assert [r[:2] for r in raised] == [("sprinkler.pressure_trend", "early_warning"),
                                       ("sprinkler.leak", "supervisory"),
                                       ("sprinkler.low_pressure", "supervisory")]
    ew = h.raised()[0]
    assert 0 < ew.evidence["predicted_s"] <= 6 * 3600
    assert -33 < ew.evidence["slope_kpa_per_h"] < -20  # the fit still sees the flat start


def test_normal_jockey_sawtooth_raises_nothing() -> None:
    ov = [Override("device", "w1", "sprinkler", {"cut_in_kpa": 550.0, "min_kpa": 480.0})]
    h = water(overrides=ov)
    for _ in range(6):  # seepage 25 kPa/h from 600 to 550, then the pump restores it
        h.feed("w1", 7200, 60, pressure_kpa=lambda el: 600.0 - el / 144)
        h.feed("w1", 120, 60, pressure_kpa=lambda el: 550.0 + el * 0.5)
    assert h.take() == []


def test_jockey_short_cycling_is_supervisory() -> None:
    h = water()
    h.feed("w1", 60, 5, pressure_kpa=800.0)
    for _ in range(8):  # a start every 5 minutes: pressure sags 40 kPa, pump restores it
        h.feed("w1", 280, 10, pressure_kpa=lambda el: 800.0 - el / 7)
        h.feed("w1", 20, 10, pressure_kpa=800.0)
    raised = [d[2] for d in h.take() if d[0] == "raise"]
    assert raised == ["sprinkler.jockey_cycling"]


@pytest.mark.parametrize(("category", "expected_class"), [
    ("fire", "fire"), ("supervisory", "supervisory"), ("fault", "fault"),
    ("mains_fault", "fault"), ("battery_fault", "fault"), ("pre_alarm", "early_warning"),
], ids=str)
def test_panel_categories_map_to_classes(category: str, expected_class: str) -> None:
    h = Harness([DeviceInfo("p1", PANEL, "site")])
    h.event("p1", category, True, zone=3, point=12)
    assert h.take() == [("raise", "p1", f"panel.{category}", expected_class)]
    h.event("p1", category, True, zone=3, point=12)  # again while open: a re-occurrence
    h.event("p1", category, False, zone=3, point=12)
    assert h.take() == [("raise", "p1", f"panel.{category}", expected_class),
                        ("clear", "p1", f"panel.{category}", expected_class)]


@pytest.mark.parametrize("category", ["start", "feedback", "delay", "silence"])
def test_status_categories_raise_nothing(category: str) -> None:
    h = Harness([DeviceInfo("p1", PANEL, "site")])
    h.event("p1", category, True)
    assert h.take() == []


def test_manual_call_point_has_high_confidence_and_redelivery_is_ignored() -> None:
    h = Harness([DeviceInfo("p1", PANEL, "site")])
    h.event("p1", "fire", True, zone=1, point=2, component="manual_call_point")
    h.seq -= 1
    h.event("p1", "fire", True, zone=1, point=2, component="manual_call_point")  # same seq
    assert len(h.decisions) == 1 and h.decisions[0].confidence == pytest.approx(0.9)


def test_two_points_of_one_panel_zone_coincide_and_reset_clears() -> None:
    h = Harness([DeviceInfo("p1", PANEL, "site")])
    h.event("p1", "fire", True, zone=1, point=2)
    h.event("p1", "fire", True, zone=1, point=3)
    d = h.raised()[-1]
    assert d.confidence == pytest.approx(0.95) and d.evidence["coincidence"][0]["point"] == "1/2"
    h.decisions.clear()
    h.event("p1", "reset", True)
    assert sorted(h.take()) == [("clear", "p1", "panel.fire", "fire")] * 2


def test_disabled_and_test_are_mode_changes_and_mark_later_signals() -> None:
    h = Harness([DeviceInfo("p1", PANEL, "site")])
    h.event("p1", "test", True, zone=2, point=5)
    assert h.take() == [("mode", "p1", "mode.test", "fault")]
    h.event("p1", "fire", True, zone=2, point=5)
    h.event("p1", "fire", True, zone=2, point=6)
    modes = [(d.key.point, d.mode) for d in h.raised()]
    assert modes == [("2/5", Mode.TEST), ("2/6", Mode.NORMAL)]


def test_operator_mode_window_with_expiry() -> None:
    h = Harness([DeviceInfo("h1", HEAT, "site")])
    h.engine.modes.add(ModeWindow("site", "site", None, Mode.MAINTENANCE, "op:li",
                                  "detector swap", h.now - 1, h.now + 60))
    h.reading("h1", temperature_c=80.0)
    h.reading("h1", temperature_c=20.0)
    h.advance(120)
    h.reading("h1", temperature_c=80.0)
    fires = [d for d in h.raised() if d.key.type == "heat.fixed"]
    assert [d.mode for d in fires] == [Mode.MAINTENANCE, Mode.NORMAL]
    assert fires[0].evidence["mode_window"]["owner"] == "op:li"


def supervised() -> Harness:
    ov = [Override("kind", "smoke_detector", "supervision", {"heartbeat_s": 60.0}),
          Override("kind", "alarm_panel", "supervision", {"heartbeat_s": 30.0})]
    return Harness([DeviceInfo("p1", PANEL, "site"), DeviceInfo("s1", SMOKE, "site", "p1", 1),
                    DeviceInfo("s2", SMOKE, "site", "p1", 1)], ov)


def test_offline_at_the_deadline_to_the_second_and_back_online() -> None:
    h = supervised()
    h.reading("s1", obscuration_pct_per_m=0.1, temperature_c=20.0)
    t0 = h.now
    h.advance(59.5)
    assert h.take() == []
    h.advance(1.0)
    d = h.decisions[0]
    assert (d.action.value, d.key.type) == ("raise", "offline") and d.at == pytest.approx(t0 + 60)
    h.decisions.clear()
    h.reading("s1", obscuration_pct_per_m=0.1, temperature_c=20.0)
    assert h.take() == [("clear", "s1", "offline", "offline")]


def test_last_will_is_offline_at_once() -> None:
    h = supervised()
    h.status("p1", True)
    h.status("p1", False)
    assert h.take() == [("raise", "p1", "offline", "offline")]


def test_panel_offline_inhibits_children_in_either_order() -> None:
    h = supervised()
    for dev in ("p1", "s1"):
        h.status(dev, True)
    h.advance(31)  # panel first (30 s), then the child (60 s)
    h.advance(30)
    child = next(d for d in h.decisions if d.key.device_id == "s1")
    assert child.inhibited_by == "offline:p1"
    h.decisions.clear()
    h.status("s2", True)
    h.advance(61)
    assert h.decisions[0].inhibited_by == "offline:p1"
    h.decisions.clear()
    h.status("p1", True)  # panel back: children keep their alarm, lose the mark
    acts = [(d.action.value, d.key.device_id, d.uninhibit) for d in h.decisions]
    assert ("clear", "p1", False) in acts and ("annotate", "s1", True) in acts


def test_child_offline_first_then_panel_annotates_it() -> None:
    ov = [Override("kind", "smoke_detector", "supervision", {"heartbeat_s": 20.0}),
          Override("kind", "alarm_panel", "supervision", {"heartbeat_s": 30.0})]
    h = Harness([DeviceInfo("p1", PANEL, "site"), DeviceInfo("s1", SMOKE, "site", "p1")], ov)
    h.status("p1", True)
    h.status("s1", True)
    h.advance(31)
    acts = [(d.action.value, d.key.device_id, d.inhibited_by) for d in h.decisions]
    assert acts == [("raise", "s1", None), ("raise", "p1", None),
                    ("annotate", "s1", "offline:p1")]


def test_battery_depleting_predicts_time_to_flat() -> None:
    ov = [Override("device", "s1", "early_warning", {"bucket_s": 3600.0, "buckets": 24,
                                                     "battery_horizon_s": 86400.0})]
    h = Harness([DeviceInfo("s1", SMOKE, "site")], ov)
    # 3.0 V falling 0.01 V/h: flat (2.6 V) in 40 h, warn once within 24 h, i.e. after ~16 h
    h.feed("s1", 30 * 3600, 300, obscuration_pct_per_m=0.1, temperature_c=20.0,
           battery_v=lambda el: 3.0 - el / 360000)
    d = next(d for d in h.raised() if d.key.type == "battery.depleting")
    assert 0 < d.evidence["predicted_s"] <= 86400
    assert d.evidence["slope_per_h"] == pytest.approx(-0.01, rel=0.05)


def test_dirty_chamber_baseline_drift() -> None:
    ov = [Override("device", "s1", "early_warning", {"chamber_bucket_s": 3600.0,
                                                     "chamber_buckets": 24,
                                                     "chamber_horizon_s": 86400.0 * 3})]
    h = Harness([DeviceInfo("s1", SMOKE, "site")], ov)
    h.feed("s1", 40 * 3600, 600, obscuration_pct_per_m=lambda el: 0.5 + el / 3600 * 0.03,
           temperature_c=20.0)
    d = next(d for d in h.raised() if d.key.type == "smoke.chamber_drift")
    assert d.alarm_class.value == "early_warning" and d.evidence["predicted_s"] <= 3 * 86400
    assert not [x for x in h.raised() if x.alarm_class.value == "fire"]


def test_a_zone_with_many_fires_annotates_each_alarm_once() -> None:
    """Each raised fire of a zone is annotated once, when the zone's second signal confirms it:
    N fires in one zone cost N raises and one annotation, not N^2 / 2 alarm writes (a panel
    reporting a whole floor in alarm would otherwise hold the writer, and with it the acks)."""
    h = Harness([DeviceInfo("p1", PANEL, "site")])
    for point in range(1, 201):
        h.event("p1", "fire", True, zone=1, point=point)
    raises = [d for d in h.decisions if d.action is Action.RAISE]
    notes = [d for d in h.decisions if d.action is Action.ANNOTATE]
    assert len(raises) == 200
    assert all(d.evidence.get("confirmed") for d in raises[1:])  # each confirmed when raised
    assert [(d.key.device_id, d.key.point) for d in notes] == [("p1", "1/1")]  # the first one
