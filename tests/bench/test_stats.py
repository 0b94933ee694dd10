"""The one percentile of the benchmarks (bench/stats.py): linear interpolation between the
closest ranks, as `statistics.quantiles(method="inclusive")` and numpy's default."""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.stats import percentile, summary

finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False)
samples = st.lists(finite, min_size=1, max_size=60)
qs = st.floats(min_value=0, max_value=100)


@pytest.mark.parametrize(("values", "q", "want"), [
    ([5.0], 99, 5.0), ([1, 2, 3, 4], 50, 2.5), ([1, 2, 3, 4], 0, 1), ([1, 2, 3, 4], 100, 4),
    ([10, 20], 99, 19.9), ([3, 1, 2], 50, 2), (list(range(101)), 99, 99),
    (list(range(1, 11)), 90, 9.1),
], ids=["one", "median-even", "p0", "p100", "two", "unsorted", "0..100", "p90-of-10"])
def test_known_values(values: list[float], q: float, want: float) -> None:
    assert percentile(values, q) == pytest.approx(want)


@given(samples, qs, qs)
def test_monotone_in_q(values: list[float], a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    assert percentile(values, lo) <= percentile(values, hi)


@given(samples, qs)
def test_bounded_by_min_and_max(values: list[float], q: float) -> None:
    assert min(values) <= percentile(values, q) <= max(values)


@given(samples)
def test_ends_are_min_and_max_and_the_middle_is_the_median(values: list[float]) -> None:
    assert percentile(values, 0) == min(values)
    assert percentile(values, 100) == max(values)
    assert percentile(values, 50) == pytest.approx(statistics.median(values), rel=1e-9,
                                                   abs=1e-6)


@given(st.lists(finite, min_size=2, max_size=60))
def test_same_as_statistics_inclusive(values: list[float]) -> None:
    q = statistics.quantiles(values, n=100, method="inclusive")
    for k in (1, 25, 50, 95, 99):
        assert percentile(values, k) == pytest.approx(q[k - 1], rel=1e-9, abs=1e-3)


def test_no_values_or_q_out_of_range_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0], 101)


def test_summary() -> None:
    s = summary([0.001, 0.002, 0.003, 0.004], scale=1000)
    assert s == {"n": 4, "min": 1.0, "p50": 2.5, "p95": 3.85, "p99": 3.97, "max": 4.0,
                 "mean": 2.5}
    assert summary([]) == {"n": 0}
    assert math.isclose(summary([7.0])["p99"], 7.0)
