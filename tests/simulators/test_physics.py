"""Physics sanity: the scenarios look like what they claim to be."""

from __future__ import annotations

import itertools
import statistics
from datetime import timedelta

from firetower.model import DeviceKind
from simulators.fleet import build_fleet
from simulators.physics import pct_per_ft_to_per_m
from simulators.scenarios import generate
from tests.simulators.helpers import START, at, body, series, small_fleet


def first_above(points: list[tuple[float, float]], level: float) -> float:
    return next(t for t, v in points if v > level)


def max_rate_per_min(points: list[tuple[float, float]]) -> float:
    return max((v2 - v1) / (t2 - t1) * 60 for (t1, v1), (t2, v2) in itertools.pairwise(points))


def test_unit_conversion_matches_the_ul_window() -> None:
    assert 1.5 < pct_per_ft_to_per_m(0.5) < 1.7
    assert 12.0 < pct_per_ft_to_per_m(4.0) < 12.7


def test_quiet_readings_are_believable() -> None:
    run = generate(build_fleet(2, 3, 8), 2, START, ["normal"], duration=6 * 3600)
    msgs = run.messages()
    for d in run.fleet:
        if d.kind is DeviceKind.SMOKE_DETECTOR:
            obs = [v for _, v in series(msgs, d.id, "obscuration_pct_per_m")]
            assert 0.0 <= min(obs) and max(obs) < 1.0
            assert 0.02 < statistics.stdev(obs) < 0.1
            batt = [v for _, v in series(msgs, d.id, "battery_v")]
            assert 2.9 < min(batt) and max(batt) < 3.15
        if d.kind is DeviceKind.SPRINKLER_PRESSURE:
            p = [v for _, v in series(msgs, d.id, "pressure_kpa")]
            assert 450 < min(p) and max(p) < 710
            assert {v for _, v in series(msgs, d.id, "flow_lps")} == {0.0}
        if d.kind is DeviceKind.ALARM_PANEL:
            v = [x for _, x in series(msgs, d.id, "battery_v")]
            assert 26.5 < min(v) and max(v) < 28.0


def test_daily_temperature_cycle_peaks_in_the_afternoon() -> None:
    start = START.replace(hour=0)
    run = generate(build_fleet(4, 1, 3), 4, start, ["normal"], duration=2 * 86_400,
                   interval=600)
    msgs = run.messages()
    heat = run.fleet.of_kind(DeviceKind.HEAT_DETECTOR)[0]
    pts = [(START + timedelta(seconds=t), v) for t, v in series(msgs, heat.id, "temperature_c")]
    hottest = max(pts, key=lambda p: p[1])[0]
    coldest = min(pts, key=lambda p: p[1])[0]
    assert 12 <= hottest.hour <= 18
    assert coldest.hour <= 6
    assert max(v for _, v in pts) - min(v for _, v in pts) > 1.4


def test_jockey_pump_cycles_in_a_quiet_day() -> None:
    run = generate(build_fleet(5, 2, 4), 5, START, ["normal"], duration=12 * 3600)
    msgs = run.messages()
    for d in run.fleet.of_kind(DeviceKind.SPRINKLER_PRESSURE):
        pts = series(msgs, d.id, "pressure_kpa")
        jumps = sum(1 for (_, a), (_, b) in itertools.pairwise(pts) if b - a > 10)
        assert jumps >= 2, d.id   # pump starts every 1-4 h


def test_smouldering_fire_smoke_before_heat() -> None:
    run = generate(small_fleet(), 11, START, ["smouldering_fire"])
    msgs = run.messages()
    inj = run.injections[0]
    d = inj.details["primary"]
    obs = series(msgs, d, "obscuration_pct_per_m")
    temp = series(msgs, d, "temperature_c")
    t0 = at(inj.details["smoke_rise_at"])
    base_t = statistics.mean(v for t, v in temp if t < t0)
    smoke_at = first_above(obs, 1.5)
    heat_at = first_above(temp, base_t + 2.0)
    assert t0 < smoke_at < heat_at
    assert max_rate_per_min([p for p in temp if p[0] > t0]) < 8.3
    alarm_at = at(inj.details["panel_fire_at"])
    assert abs(first_above(obs, inj.details["alarm_threshold_pct_per_m"]) - alarm_at) < 30
    fire = [body(m) for m in msgs if m.topic.endswith("/event")]
    assert [(e["category"], e["active"]) for e in fire] == [("fire", True)]
    assert abs(at(fire[0]["ts"]) - alarm_at) < 0.01
    # reports come every 5 s during the fire
    assert min(b[0] - a[0] for a, b in itertools.pairwise(obs) if a[0] > t0) < 6


def test_flaming_fire_rate_of_rise() -> None:
    run = generate(small_fleet(), 12, START, ["flaming_fire"])
    msgs = run.messages()
    inj = run.injections[0]
    temp = series(msgs, inj.details["primary"], "temperature_c")
    assert max_rate_per_min(temp) > 8.3
    assert max(v for _, v in temp) > 57.0
    assert abs(first_above(temp, 57.0) - at(inj.details["fixed_temperature_at"])) < 10
    for smoke in inj.device_ids[1:]:
        assert max(v for _, v in series(msgs, smoke, "obscuration_pct_per_m")) > 12.5


def test_cooking_steam_is_short_and_cool() -> None:
    run = generate(small_fleet(), 13, START, ["cooking_steam"])
    msgs = run.messages()
    inj = run.injections[0]
    obs = series(msgs, inj.details["primary"], "obscuration_pct_per_m")
    temp = series(msgs, inj.details["primary"], "temperature_c")
    high = [t for t, v in obs if v > 5.0]
    assert high and high[-1] - high[0] < 90
    assert max(v for _, v in temp) - min(v for _, v in temp) < 6
    events = [(body(m)["category"], body(m)["active"]) for m in msgs
              if m.topic.endswith("/event")]
    assert events == [("delay", True), ("delay", False)]  # verification ran out, no fire


def test_sprinkler_head_open_drops_pressure_with_flow() -> None:
    run = generate(small_fleet(), 14, START, ["sprinkler_head_open"])
    msgs = run.messages()
    inj = run.injections[0]
    p = series(msgs, inj.details["primary"], "pressure_kpa")
    q = series(msgs, inj.details["primary"], "flow_lps")
    t0 = at(inj.details["drop_at"])
    before = [v for t, v in p if t < t0][-1]
    within = [v for t, v in p if t0 + 15 <= t <= t0 + 30]
    assert within and before - max(within) > 150
    assert min(v for t, v in q if t > t0 + 30) > 1.0


def test_slow_leak_declines_steadily() -> None:
    run = generate(small_fleet(), 15, START, ["slow_leak"])
    msgs = run.messages()
    inj = run.injections[0]
    t0 = at(inj.start.isoformat())
    p = [(t, v) for t, v in series(msgs, inj.details["primary"], "pressure_kpa") if t > t0]
    means = [statistics.mean(v for _, v in p[i:i + 10]) for i in range(0, len(p) - 10, 10)]
    assert all(b < a for a, b in itertools.pairwise(means))
    hours = (p[-1][0] - p[0][0]) / 3600
    assert (p[0][1] - p[-1][1]) / hours > 20


def test_jockey_short_cycling() -> None:
    run = generate(small_fleet(), 16, START, ["jockey_short_cycling"])
    msgs = run.messages()
    inj = run.injections[0]
    t0 = at(inj.start.isoformat())
    p = series(msgs, inj.details["primary"], "pressure_kpa")
    starts = [t for (_, a), (t, b) in itertools.pairwise(p) if b - a > 5 and t > t0]
    hours = (p[-1][0] - t0) / 3600
    assert len(starts) / hours > 6


def test_battery_depletes_then_faults() -> None:
    run = generate(small_fleet(), 17, START, ["battery_depleting"])
    msgs = run.messages()
    inj = run.injections[0]
    v = series(msgs, inj.details["primary"], "battery_v")
    assert v[0][1] > 2.9 and v[-1][1] < 2.55
    assert max(b - a for (_, a), (_, b) in itertools.pairwise(v)) < 0.02   # no steps up or down
    assert min(b - a for (_, a), (_, b) in itertools.pairwise(v)) > -0.03
    fault = [m for m in msgs if m.topic.endswith("/event")]
    assert [body(m)["category"] for m in fault] == ["battery_fault"]
    crossing = first_above([(t, -x) for t, x in v], -2.6)
    assert abs(crossing - at(inj.details["battery_fault_at"])) < 3 * run.sim.interval


def test_dirty_chamber_baseline_climbs() -> None:
    run = generate(small_fleet(), 18, START, ["dirty_chamber"])
    msgs = run.messages()
    obs = series(msgs, run.injections[0].details["primary"], "obscuration_pct_per_m")
    first_day = statistics.mean(v for t, v in obs if t < 86_400)
    last_day = statistics.mean(v for t, v in obs if t > obs[-1][0] - 86_400)
    assert last_day - first_day > 2.0


def test_pressure_trends_toward_its_minimum() -> None:
    run = generate(small_fleet(), 19, START, ["pressure_low_trend"])
    msgs = run.messages()
    inj = run.injections[0]
    p = series(msgs, inj.details["primary"], "pressure_kpa")
    day = 86_400
    first = statistics.mean(v for t, v in p if t < day)
    last = statistics.mean(v for t, v in p if t > p[-1][0] - day / 4)
    assert first - last > 30
    assert min(v for _, v in p) > inj.details["low_supervisory_kpa"]


def test_detector_silent_and_panel_offline() -> None:
    run = generate(small_fleet(), 20, START, ["detector_silent", "panel_offline"])
    msgs = run.messages()
    silent = run.expectations("silent")[0]
    assert not [m for m in msgs if m.device_id == silent.device_ids[0] and m.ts >= silent.start]
    off = run.expectations("offline")[0]
    inhibited = run.expectations("inhibited")[0]
    window = [m for m in msgs if off.start <= m.ts < off.end]
    assert not [m for m in window if m.device_id in inhibited.device_ids]
    panel_msgs = [m for m in msgs if m.device_id == off.device_ids[0] and m.ts >= off.start]
    assert panel_msgs[0].will and body(panel_msgs[0])["online"] is False
    back = [m for m in panel_msgs if m.ts >= off.end]
    assert back[0].will_payload is not None and body(back[0])["online"] is True
    site = run.fleet.get(off.device_ids[0]).site_id
    assert [m for m in window if m.device_id.startswith(site + "-spr")]


def test_panel_faults_and_test_mode_events() -> None:
    run = generate(small_fleet(), 21, START, ["panel_fault", "panel_mains_fault", "test_mode"])
    msgs = run.messages()
    events = [(m.device_id, body(m)["category"], body(m)["active"]) for m in msgs
              if m.topic.endswith("/event")]
    fault_panel = run.injections[0].details["panel"]
    assert [(c, a) for d, c, a in events if d == fault_panel and c == "fault"] == [
        ("fault", True), ("fault", False)]
    mains = run.injections[1].details["panel"]
    assert ("mains_fault", True) in [(c, a) for d, c, a in events if d == mains]
    assert False in {v for _, v in series(msgs, mains, "mains_ok")}
    test_panel = run.injections[2].details["panel"]
    assert [(c, a) for d, c, a in events if d == test_panel and c in ("test", "fire")] == [
        ("test", True), ("fire", True), ("fire", False), ("test", False)]


def test_duplicates_and_late_messages() -> None:
    run = generate(small_fleet(), 22, START, ["duplicates_out_of_order"])
    msgs = run.messages()
    for inj in run.injections:
        d = inj.device_ids[0]
        seqs = [m.seq for m in msgs if m.device_id == d and not m.will]
        for s in inj.details["seqs"]:
            if inj.condition == "duplicate":
                assert seqs.count(s) == 2
            else:
                assert seqs.index(s) == seqs.index(s + 1) + 1
