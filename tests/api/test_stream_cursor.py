"""The stream cursor: tokens round-trip, and under any commit order and any reconnect points
every committed event is delivered exactly once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.stream import GAP_TIMEOUT_S, BadToken, Cursor


@pytest.mark.parametrize("token", ["0", "17", "3:5,9", "10:11"])
def test_token_round_trip(token: str) -> None:
    assert Cursor.parse(token).token() == token


@pytest.mark.parametrize("token", ["", "x", "-1", "5:a", "1:2,9999999999999999999",
                                   "99999999999999999999"])
def test_bad_tokens(token: str) -> None:
    with pytest.raises(BadToken):
        Cursor.parse(token)


def test_ids_at_or_below_the_cursor_are_done_already() -> None:
    assert Cursor.parse("5:3,5,7").token() == "5:7"


def test_mark_advances_over_contiguous_ids() -> None:
    c = Cursor(0)
    for i in (2, 3, 1, 5):
        c.mark(i)
    assert (c.low, c.seen) == (3, {5})


def test_gap_is_skipped_only_after_timeout() -> None:
    now = datetime.now(UTC)
    c = Cursor(0)
    c.mark(2)
    fresh = [{"id": 2, "at": now}]
    assert not c.skip_gaps(fresh, now) and c.low == 0
    old = [{"id": 2, "at": now - timedelta(seconds=GAP_TIMEOUT_S + 1)}]
    assert c.skip_gaps(old, now) and (c.low, c.seen) == (2, set())


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_out_of_order_commits_with_reconnects(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 30))
    commit_order = data.draw(st.permutations(list(range(1, n + 1))))
    reconnect_after = data.draw(st.sets(st.integers(0, n)))
    committed: set[int] = set()
    delivered: list[int] = []
    token = "0"
    for step, event_id in enumerate(commit_order):
        committed.add(event_id)
        if step in reconnect_after:
            token = Cursor.parse(token).token()  # a new connection resumes from the token
        cur = Cursor.parse(token)
        for i in cur.fresh(sorted(i for i in committed if i > cur.low)):  # the poll's rows
            delivered.append(i)
            cur.mark(i)
        token = cur.token()
    assert sorted(delivered) == list(range(1, n + 1))
    assert Cursor.parse(token).low == n and not Cursor.parse(token).seen
