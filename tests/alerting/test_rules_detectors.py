"""Smoke, heat and multi-criteria / coincidence rules, through the engine with a fake clock."""

from __future__ import annotations

import pytest

from alerting.config import Override
from alerting.device import DeviceInfo

from .harness import HEAT, PANEL, SMOKE, Harness

CLEAN = {"temperature_c": 21.0, "co_ppm": 0.0}
QUIET = [Override("kind", k, "supervision", {"heartbeat_s": 1e9})  # no offline in these tests
         for k in ("smoke_detector", "heat_detector", "alarm_panel")]
FIRE = {"temperature_c": 21.0, "co_ppm": 40.0}  # CO with the smoke: multi-criteria confirmed


def smoke_harness(**kw) -> Harness:  # type: ignore[no-untyped-def]
    """Three detectors (s1, s2 in zone 3; s3 in zone 4) with 30 s of clean air behind them."""
    kw.setdefault("overrides", QUIET)
    h = Harness([DeviceInfo("s1", SMOKE, "site", "p1", 3), DeviceInfo("s2", SMOKE, "site",
                 "p1", 3), DeviceInfo("s3", SMOKE, "site", "p1", 4),
                 DeviceInfo("p1", PANEL, "site")], **kw)
    for _ in range(30):
        for dev in ("s1", "s2", "s3"):
            h.reading(dev, obscuration_pct_per_m=0.2, **CLEAN)
        h.advance(1)
    return h


@pytest.mark.parametrize(("name", "level", "seconds", "expected"), [
    ("below pre-alarm", 2.0, 60, []),
    ("pre-alarm held", 5.0, 60, [("raise", "s1", "smoke.prealarm", "early_warning")]),
    ("pre-alarm too short", 5.0, 8, []),
    # smoke alone (steam, dust) above the alarm level: a pre-alarm during the 60 s alarm
    # verification, then a fire
    ("unconfirmed alarm level 55 s", 8.0, 55,
     [("raise", "s1", "smoke.prealarm", "early_warning")]),
    ("unconfirmed alarm level 70 s", 8.0, 70,
     [("raise", "s1", "smoke.prealarm", "early_warning"),
      ("raise", "s1", "smoke.threshold", "fire"),
      ("clear", "s1", "smoke.prealarm", "early_warning")]),
    # with CO: confirmed, a step straight past the level is a fire after 10 s, no pre-alarm
    ("confirmed alarm level", 8.0, 60, [("raise", "s1", "smoke.threshold", "fire")]),
    ("confirmed puff shorter than for_s", 8.0, 6, []),
], ids=lambda x: x if isinstance(x, str) else None)
def test_smoke_levels(name: str, level: float, seconds: float, expected: list) -> None:
    h = smoke_harness()
    h.feed("s1", 30, 1, obscuration_pct_per_m=0.2, **CLEAN)
    h.take()
    h.feed("s1", seconds, 1, obscuration_pct_per_m=level,
           **(FIRE if name.startswith("confirmed") else CLEAN))
    assert h.take() == expected


def test_smoke_rising_slowly_gives_prealarm_then_fire_which_supersedes_it() -> None:
    h = smoke_harness()
    h.feed("s1", 30, 1, obscuration_pct_per_m=0.2, **CLEAN)
    h.feed("s1", 60, 1, obscuration_pct_per_m=lambda el: 3.0 + el * 0.1, **FIRE)
    assert h.take() == [("raise", "s1", "smoke.prealarm", "early_warning"),
                        ("raise", "s1", "smoke.threshold", "fire"),
                        ("clear", "s1", "smoke.prealarm", "early_warning")]


def test_smoke_alarm_fires_by_timer_when_no_more_message_comes() -> None:
    h = smoke_harness()
    h.feed("s1", 10, 1, obscuration_pct_per_m=0.2, **CLEAN)
    h.reading("s1", obscuration_pct_per_m=9.0, **FIRE)
    h.advance(9.9)
    assert [d for d in h.take() if d[3] == "fire"] == []
    h.advance(0.2)
    fires = [d for d in h.decisions if d.alarm_class.value == "fire"]
    assert len(fires) == 1 and fires[0].evidence["by"] == "timer"


def test_smoke_clears_with_hysteresis_only_after_clear_time() -> None:
    h = smoke_harness()
    h.feed("s1", 20, 1, obscuration_pct_per_m=8.0, **FIRE)
    h.take()
    h.feed("s1", 20, 1, obscuration_pct_per_m=5.5, **CLEAN)  # between clear level and alarm
    assert h.take() == []
    h.feed("s1", 29, 1, obscuration_pct_per_m=1.0, **CLEAN)
    assert h.take() == []
    h.feed("s1", 2, 1, obscuration_pct_per_m=1.0, **CLEAN)
    assert h.take() == [("clear", "s1", "smoke.threshold", "fire")]


def test_smoke_recurrence_counts_on_same_alarm() -> None:
    h = smoke_harness()
    h.feed("s1", 15, 1, obscuration_pct_per_m=8.0, **FIRE)
    h.take()
    h.feed("s1", 5, 1, obscuration_pct_per_m=1.0, **CLEAN)
    h.feed("s1", 2, 1, obscuration_pct_per_m=8.0, **CLEAN)
    assert h.take() == [("raise", "s1", "smoke.threshold", "fire")]
    assert h.engine.devices["s1"].conds["smoke.threshold"].active


def test_smoke_with_co_rising_is_multi_criteria_confirmed() -> None:
    h = smoke_harness()
    h.feed("s1", 120, 2, obscuration_pct_per_m=0.2, temperature_c=21.0, co_ppm=1.0)
    h.take()
    h.feed("s1", 30, 1, obscuration_pct_per_m=8.0, temperature_c=21.0, co_ppm=40.0)
    fire = next(d for d in h.raised() if d.alarm_class.value == "fire")
    assert fire.confidence == pytest.approx(0.85)
    assert fire.evidence["confirmed"] is True and "co_rise_ppm" in fire.evidence["multi_criteria"]


def test_smoke_alone_is_unconfirmed_single_signal() -> None:
    h = smoke_harness()
    h.feed("s1", 60, 2, obscuration_pct_per_m=0.2, **CLEAN)
    h.feed("s1", 320, 1, obscuration_pct_per_m=8.0, **CLEAN)
    fire = next(d for d in h.raised() if d.alarm_class.value == "fire")
    assert fire.confidence == pytest.approx(0.6) and fire.evidence["confirmed"] is False


def test_two_detectors_of_one_zone_confirm_each_other() -> None:
    h = smoke_harness()
    h.feed("s1", 15, 1, obscuration_pct_per_m=8.0, **FIRE)
    h.feed("s3", 15, 1, obscuration_pct_per_m=8.0, **FIRE)  # other zone: no coincidence
    h.decisions.clear()
    h.feed("s2", 15, 1, obscuration_pct_per_m=8.0, **CLEAN)  # confirmed by s1 alone
    fire = next(d for d in h.raised() if d.key.device_id == "s2" and d.alarm_class.value == "fire")
    assert fire.confidence == pytest.approx(0.95)
    assert [c["device_id"] for c in fire.evidence["coincidence"]] == ["s1"]
    ann = [d for d in h.decisions if d.action.value == "annotate"]
    assert [(d.key.device_id, d.confidence) for d in ann] == [("s1", 0.95)]


def test_a_panel_fire_for_the_same_detector_does_not_confirm_it() -> None:
    h = Harness([DeviceInfo("s1", SMOKE, "site", "p1", 3, "kitchen 4"),
                 DeviceInfo("s2", SMOKE, "site", "p1", 3, "office 5"),
                 DeviceInfo("p1", PANEL, "site")], QUIET)
    h.feed("s1", 20, 1, obscuration_pct_per_m=0.2, **CLEAN)
    h.event("p1", "fire", True, zone=3, point=4, location="kitchen 4")
    h.feed("s1", 55, 1, obscuration_pct_per_m=8.0, **CLEAN)  # steam: same place, no CO
    assert [d.key.type for d in h.raised()] == ["panel.fire", "smoke.prealarm"]
    h.feed("s2", 15, 1, obscuration_pct_per_m=8.0, **CLEAN)  # another place: independent
    assert h.raised()[-1].key.type == "smoke.threshold"
    assert h.raised()[-1].confidence == pytest.approx(0.95)


@pytest.mark.parametrize(("name", "series", "expected"), [
    ("ambient", lambda el: 22.0, []),
    ("fixed 57 °C", lambda el: 22.0 if el < 30 else 60.0, ["heat.fixed"]),
    ("slow warm-up 2 °C/min", lambda el: 22.0 + el / 30, []),
    ("rate of rise 12 °C/min", lambda el: 22.0 + max(0.0, el - 30) * 0.2, ["heat.rate_of_rise"]),
    ("one noisy spike is no rate of rise", lambda el: 40.0 if el == 40 else 22.0, []),
], ids=lambda x: x if isinstance(x, str) else None)
def test_heat(name: str, series, expected: list[str]) -> None:  # type: ignore[no-untyped-def]
    h = Harness([DeviceInfo("h1", HEAT, "site")])
    h.feed("h1", 150, 2, temperature_c=series)
    assert [d[2] for d in h.take() if d[0] == "raise"][:1] == expected


def test_heat_fixed_override_per_site_and_device() -> None:
    overrides = [Override("site", "hot", "heat", {"fixed_c": 88.0}),
                 Override("device", "h2", "heat", {"fixed_c": 70.0})]
    h = Harness([DeviceInfo("h1", HEAT, "hot"), DeviceInfo("h2", HEAT, "hot"),
                 DeviceInfo("h3", HEAT, "other")], overrides)
    for dev in ("h1", "h2", "h3"):
        h.reading(dev, temperature_c=75.0)
    assert [(d[1], d[2]) for d in h.take()] == [("h2", "heat.fixed"), ("h3", "heat.fixed")]
