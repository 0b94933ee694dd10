"""notify/rosters.py: who is on duty, the running shifts, coverage gaps, the overlap rule;
examples and Hypothesis properties (minutes on a small grid, so that shifts meet and overlap
often)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from notify.rosters import POSITIONS, Gap, Shift, clash, current, gaps, on_duty

T0 = datetime(2026, 12, 7, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def shift(id_: int, user: int, position: str, start: int, end: int) -> Shift:
    return Shift(id_, user, position, at(start), at(end))


@st.composite
def shift_lists(draw: st.DrawFn) -> list[Shift]:
    out = []
    for i in range(draw(st.integers(0, 8))):
        start = draw(st.integers(0, 60))
        out.append(shift(i + 1, draw(st.integers(1, 4)), draw(st.sampled_from(POSITIONS)),
                         start, start + draw(st.integers(1, 30))))
    return out


minute = st.integers(-10, 100)


def test_on_duty_per_position_and_the_hand_over_instant() -> None:
    shifts = [shift(1, 10, "operator", 0, 480), shift(2, 11, "operator", 480, 960),
              shift(3, 20, "leader", 0, 720), shift(4, 12, "operator", 240, 600)]
    assert on_duty(shifts, at(300)) == {"operator": [10, 12], "leader": [20], "officer": []}
    # at 08:00 the night operator is gone and the day one is on
    assert on_duty(shifts, at(480)) == {"operator": [12, 11], "leader": [20], "officer": []}
    assert [s.id for s in current(shifts, at(480))] == [4, 2, 3]
    assert on_duty(shifts, at(960)) == {p: [] for p in POSITIONS}


def test_gaps_of_a_period() -> None:
    shifts = [shift(1, 1, "operator", 0, 60), shift(2, 2, "leader", 30, 90),
              shift(3, 3, "operator", 120, 180)]
    assert gaps(shifts, at(0), at(200)) == [Gap(at(90), at(120)), Gap(at(180), at(200))]
    assert gaps(shifts, at(0), at(200), "operator") == [Gap(at(60), at(120)),
                                                         Gap(at(180), at(200))]
    assert gaps(shifts, at(0), at(200), "officer") == [Gap(at(0), at(200))]
    assert gaps(shifts, at(10), at(10)) == [] and gaps(shifts, at(20), at(10)) == []


def test_clash_of_one_users_shifts() -> None:
    shifts = [shift(1, 7, "operator", 0, 60), shift(2, 8, "operator", 30, 90)]
    assert clash(shifts, 7, at(59), at(70)) == shifts[0]
    assert clash(shifts, 7, at(60), at(70)) is None          # they meet, not overlap
    assert clash(shifts, 9, at(0), at(100)) is None          # another user
    assert clash(shifts, 7, at(10), at(20), ignore=1) is None  # the shift being changed


@given(shift_lists(), minute)
def test_on_duty_is_exactly_the_covering_shifts(shifts: list[Shift], m: int) -> None:
    duty = on_duty(shifts, at(m))
    assert set(duty) == set(POSITIONS)
    for p in POSITIONS:
        expected = {s.user_id for s in shifts if s.position == p and s.starts_at <= at(m) < s.ends_at}
        assert set(duty[p]) == expected and len(duty[p]) == len(expected)
    assert all(s.covers(at(m)) for s in current(shifts, at(m)))


@given(shift_lists(), minute, st.integers(0, 120), st.sampled_from([None, *POSITIONS]))
def test_gaps_and_shifts_partition_the_period(shifts: list[Shift], a: int, length: int,
                                              position: str | None) -> None:
    start, end = at(a), at(a + length)
    found = gaps(shifts, start, end, position)
    mine = [s for s in shifts if position is None or s.position == position]
    # ordered, disjoint, not touching, inside the period, never empty
    for g in found:
        assert start <= g.starts_at < g.ends_at <= end
    for g, h in pairwise(found):
        assert g.ends_at < h.starts_at
    # every minute of the period is in a gap exactly when no shift covers it
    for k in range(a, a + length):
        in_gap = any(g.starts_at <= at(k) < g.ends_at for g in found)
        assert in_gap == (not any(s.covers(at(k)) for s in mine)), k


@given(shift_lists(), st.integers(1, 4), minute, st.integers(1, 40))
def test_clash_finds_an_overlap_exactly_when_there_is_one(shifts: list[Shift], user: int,
                                                          a: int, length: int) -> None:
    start, end = at(a), at(a + length)
    hit = clash(shifts, user, start, end)
    overlapping = [s for s in shifts if s.user_id == user and s.starts_at < end
                   and start < s.ends_at]
    assert (hit is None) == (not overlapping)
    if hit is not None:
        assert hit in overlapping and hit.starts_at == min(s.starts_at for s in overlapping)
        # and the overlap is symmetric: the found shift, as a request, clashes with a
        # shift of the same user at the asked time
        probe = Shift(0, user, "operator", start, end)
        assert clash([probe], user, hit.starts_at, hit.ends_at) == probe
