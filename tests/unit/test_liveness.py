"""The supervisor's health policy (firetower.heartbeat.Liveness): a child is restarted when its
heartbeat is older than the limit, never during its start grace, and a file left by a previous
run is judged from the new run's start."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firetower.heartbeat import Liveness


def test_grace_then_stale() -> None:
    live = Liveness(stale_s=10, grace_s=30)
    assert live.verdict(ran_s=5, age_s=None) is None  # starting: no file yet
    assert live.verdict(ran_s=29, age_s=1000) is None  # still in its grace
    assert live.verdict(ran_s=31, age_s=None) == "no heartbeat in the 31 s since its start"
    assert live.verdict(ran_s=100, age_s=9.5) is None
    assert live.verdict(ran_s=100, age_s=10.5) == "no heartbeat for 10 s (limit 10 s)"


def test_a_file_from_the_previous_run_is_judged_from_this_start() -> None:
    live = Liveness(stale_s=10, grace_s=5)
    # the file is an hour old, but the process has run 8 s: 8 s of silence, not an hour
    assert live.verdict(ran_s=8, age_s=3600) is None
    assert live.verdict(ran_s=12, age_s=3600) == "no heartbeat for 12 s (limit 10 s)"


def test_a_limit_below_the_beat_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="beat interval"):
        Liveness(stale_s=0.5)


@given(st.floats(0, 1e5), st.one_of(st.none(), st.floats(0, 1e6)),
       st.floats(1.5, 600), st.floats(0, 600))
def test_verdict_is_exactly_the_rule(ran: float, age: float | None, stale: float,
                                     grace: float) -> None:
    v = Liveness(stale_s=stale, grace_s=grace).verdict(ran, age)
    if ran < grace:
        assert v is None
    elif age is None:
        assert v is not None
    else:
        assert (v is not None) == (min(age, ran) > stale)
