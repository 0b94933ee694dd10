"""`firetower run` restarts any service that exits (the dispatcher and the API included), with
a delay that doubles while it keeps dying soon after its start and resets once it has run."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cli.run import Restarts


def test_backoff_while_dying_at_start_then_back_to_the_minimum() -> None:
    r = Restarts(min_s=1.0, max_s=30.0, healthy_s=60.0)
    # the database in crash recovery: the dispatcher dies within seconds, again and again
    assert [r.after_exit("dispatch", 2.0) for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert r.after_exit("api", 1.0) == 1  # each service has its own delay
    assert r.after_exit("dispatch", 3600.0) == 1  # it ran for an hour: start over


@given(st.lists(st.floats(0, 200), min_size=1, max_size=50))
def test_delay_stays_within_bounds(runs: list[float]) -> None:
    r = Restarts(min_s=1.0, max_s=30.0, healthy_s=60.0)
    prev = None
    for ran in runs:
        d = r.after_exit("ingest", ran)
        assert 1.0 <= d <= 30.0
        if ran >= 60.0 or prev is None:
            assert d == 1.0
        else:
            assert d == min(prev * 2, 30.0)
        prev = d
