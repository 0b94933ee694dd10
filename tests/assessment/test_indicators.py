"""The indicator definitions and their pure functions, with hand-computed values and
properties (rates within [0, 1], the per-100 normalisation, ranking by direction with ties)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api import latency
from assessment.indicators import (
    INDICATORS,
    LIMITS,
    Counts,
    LimitCount,
    compute_all,
    is_met,
    per_100_per_year,
    percentile,
    rank,
    rate,
)


def test_every_indicator_is_defined_once_with_formula_source_and_direction() -> None:
    assert len(INDICATORS) == 29
    for key, i in INDICATORS.items():
        assert i.key == key and i.name_zh and i.name_en and i.formula and i.source
        assert i.direction in ("higher_better", "lower_better")


def test_the_limits_are_api_latency_s() -> None:
    assert LIMITS == {"gb50440_display_20s": latency.DISPLAY_GB_S,
                      "gb50440_forward_3s": latency.FORWARD_GB_S,
                      "nfpa72_display_90s": latency.NFPA_S,
                      "nfpa72_retransmit_90s": latency.NFPA_S}


def test_hand_computed_values() -> None:
    assert rate(3, 4) == 0.75 and rate(0, 0) is None
    # BS 5839-1: 6 false alarms on 200 detectors in 73.05 days = 6*100/200*5 = 15 per 100 a year
    assert per_100_per_year(6, 200, 73.05) == pytest.approx(15.0)
    assert per_100_per_year(1, 0, 10) is None
    assert percentile([10, 20, 30, 40], 0.5) == 25.0          # between 20 and 30
    assert percentile([10, 20, 30, 40], 0.9) == pytest.approx(37.0)  # 30 + 0.7 * 10
    assert percentile([7], 0.9) == 7 and percentile([], 0.5) is None
    assert rank([3, 1, 3, None, 2], "lower_better") == [3, 1, 3, None, 2]
    assert rank([3, 1, 3, None, 2], "higher_better") == [1, 4, 1, None, 3]
    assert is_met(0.9, 0.95, "higher_better") is False and is_met(2, 3, "lower_better") is True
    assert is_met(None, 1, "lower_better") is None


def test_compute_all_from_counts() -> None:
    c = Counts(fires=1, false_alarms=3, detectors=50, ack_fire_s=[4.0, 8.0],
               limits={"gb50440_display_20s": LimitCount(met=3, missed=1, pending=2)},
               devices_in_service=10, devices_online=9, devices_intact=8,
               hazards_found=4, hazards_found_closed=1, orders_met=1, orders_missed=1,
               checkpoints_planned=5, checkpoints_visited=4, reports_received=2,
               reports_handled=2, gb50440_units=["unit:1"], gb50440_unit_days=2)
    v = compute_all(c, 365.25)
    assert v["fires"] == 1 and v["false_alarms"] == 3
    assert v["false_alarm_share"] == 0.75
    assert v["false_alarms_per_100_detectors_year"] == pytest.approx(6.0)
    assert v["ack_p50_fire"] == 6.0 and v["ack_p50_all"] is None
    assert v["compliance_gb50440_display"] == 0.75 and v["compliance_gb50440_forward"] is None
    assert (v["online_rate"], v["integrity_rate"]) == (0.9, 0.8)
    assert v["hazard_closure_rate"] == 0.25 and v["workorder_sla_rate"] == 0.5
    assert v["patrol_coverage"] == 0.8 and v["public_reports_handled_rate"] == 1.0
    assert (v["gb50440_unit_days"], v["gb50440_units"]) == (2, 1)


counts = st.integers(min_value=0, max_value=10**6)


@given(counts, counts)
def test_rates_lie_within_0_and_1(a: int, b: int) -> None:
    r = rate(min(a, b), max(a, b))
    assert r is None or 0 <= r <= 1


@given(st.integers(0, 10**5), st.integers(1, 10**5), st.floats(1, 3650), st.integers(2, 12))
def test_per_100_normalisation_scales_with_the_period(events: int, detectors: int,
                                                     days: float, k: int) -> None:
    one = per_100_per_year(events, detectors, days)
    # k times the events over k times the days is the same yearly rate
    assert per_100_per_year(events * k, detectors, days * k) == pytest.approx(one)
    # the same events over a k times longer period: k times smaller
    longer = per_100_per_year(events, detectors, days * k)
    assert one is not None and longer is not None and longer * k == pytest.approx(one)


values = st.lists(st.one_of(st.none(), st.integers(0, 20).map(float)), max_size=30)


@given(values, st.sampled_from(["higher_better", "lower_better"]))
def test_ranking_respects_direction_and_ties(xs: list[float | None], direction: str) -> None:
    ranks = rank(xs, direction)  # type: ignore[arg-type]
    for (a, ra), (b, rb) in ((p, q) for p in zip(xs, ranks, strict=True)
                             for q in zip(xs, ranks, strict=True)):
        if a is None or b is None:
            assert (ra is None) == (a is None) and (rb is None) == (b is None)
            continue
        assert ra is not None and rb is not None
        better = a > b if direction == "higher_better" else a < b
        if a == b:
            assert ra == rb
        elif better:
            assert ra < rb
    present = sorted(r for r in ranks if r is not None)
    if present:
        assert present[0] == 1
        # competition ranks: each rank is 1 + how many are strictly better
        for r in present:
            assert r == 1 + sum(1 for q in present if q < r)


@given(st.lists(st.floats(0, 1e6), min_size=1, max_size=50), st.floats(0, 1))
def test_percentile_lies_between_min_and_max(xs: list[float], q: float) -> None:
    p = percentile(xs, q)
    assert p is not None and min(xs) - 1e-6 <= p <= max(xs) + 1e-6


def test_the_docs_list_every_indicator_with_its_formula_and_source() -> None:
    from pathlib import Path
    doc = (Path(__file__).resolve().parents[2] / "docs" / "assessment.md").read_text()
    for i in INDICATORS.values():
        assert f"| `{i.key}` |" in doc and i.formula in doc and i.source in doc, i.key


def test_an_unknown_time_zone_is_refused() -> None:
    from assessment.queries import check_zone
    from assessment.targets import year_period
    from firetower.refusal import Refused
    for bad in ("AAA", "Mars/Olympus", ""):
        with pytest.raises(Refused):
            check_zone(bad)
        with pytest.raises(Refused):
            year_period(2025, bad)
    assert year_period(2025, "Asia/Shanghai")[0].isoformat() == "2024-12-31T16:00:00+00:00"
