"""Patrol plans (hazards/patrols.py): periods tile time in the plan's zone, the missed rule,
check-in flags and the GPS radius."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hazards import patrols as pt
from hazards.patrols import Flag, Frequency, Gps, Plan, Unit, Visit

ZONES = ["UTC", "Asia/Shanghai", "Europe/London", "America/New_York", "Australia/Lord_Howe",
         "America/Santiago", "Asia/Kathmandu"]
plans = st.builds(Plan, st.builds(Frequency, st.integers(1, 30), st.sampled_from(list(Unit))),
                  st.dates(date(2020, 1, 1), date(2030, 1, 1)), st.none(),
                  st.sampled_from(ZONES))
instants = st.datetimes(datetime(2019, 6, 1), datetime(2031, 1, 1)).map(
    lambda d: d.replace(tzinfo=UTC))


@settings(max_examples=300, deadline=None)
@given(plans, instants)
def test_the_period_at_a_time_holds_it_and_its_neighbours_touch(plan: Plan,
                                                                t: datetime) -> None:
    p = pt.period_at(plan, t)
    assert t in p and p.start < p.end
    after = pt.period_at(plan, p.end)
    before = pt.period_at(plan, p.start - timedelta(microseconds=1))
    assert after.start == p.end and before.end == p.start


@settings(max_examples=200, deadline=None)
@given(plans, instants, st.integers(1, 400))
def test_periods_tile_the_window(plan: Plan, since: datetime, hours: int) -> None:
    until = since + timedelta(hours=hours)
    ps = list(pt.periods(plan, since, until))
    for a, b in itertools.pairwise(ps):
        assert a.end == b.start
    for p in ps:
        assert p.start < until and p.end > since and pt.active(plan, p)
    if ps:
        first = pt.period_at(plan, max(since, ps[0].start))
        assert first == ps[0]


@settings(max_examples=200, deadline=None)
@given(plans, instants)
def test_day_and_week_periods_start_at_local_midnight(plan: Plan, t: datetime) -> None:
    p = pt.period_at(plan, t)
    zone = ZoneInfo(plan.time_zone)
    if plan.frequency.unit is Unit.HOURS:
        assert p.end - p.start == timedelta(hours=plan.frequency.every)
    else:
        local = p.start.astimezone(zone)
        days = plan.frequency.every * (7 if plan.frequency.unit is Unit.WEEKS else 1)
        assert (local.date() - plan.starts_on).days % days == 0
        assert local.time().hour in (0, 1) and local.minute in (0, 30)  # 1 / :30 only if no midnight


def test_a_daily_period_in_shanghai_runs_from_local_midnight() -> None:
    plan = Plan(Frequency(1, Unit.DAYS), date(2026, 3, 1), time_zone="Asia/Shanghai")
    p = pt.period_at(plan, datetime(2026, 3, 5, 17, 0, tzinfo=UTC))  # 01:00 on the 6th there
    assert p.start == datetime(2026, 3, 5, 16, 0, tzinfo=UTC)
    assert p.end == datetime(2026, 3, 6, 16, 0, tzinfo=UTC)


def test_a_daily_period_across_a_dst_change_is_23_hours() -> None:
    plan = Plan(Frequency(1, Unit.DAYS), date(2026, 1, 1), time_zone="Europe/London")
    p = pt.period_at(plan, datetime(2026, 3, 29, 12, 0, tzinfo=UTC))
    assert p.end - p.start == timedelta(hours=23)


@settings(max_examples=200, deadline=None)
@given(plans, st.lists(st.integers(1, 6), min_size=1, max_size=4, unique=True),
       st.data())
def test_missed_is_exactly_the_unvisited_ended_periods(plan: Plan, checkpoints: list[int],
                                                       data: st.DataObject) -> None:
    since = pt._first(plan) - timedelta(days=1)
    now = since + timedelta(hours=data.draw(st.integers(1, 24 * 40)))
    ended = [p for p in pt.periods(plan, since, now) if p.end <= now]
    pairs = [(p, c) for p in ended for c in checkpoints]
    visited = data.draw(st.sets(st.sampled_from(pairs))) if pairs else set()
    visits = []
    for p, c in visited:  # a visit anywhere inside its period
        frac = data.draw(st.floats(0, 0.999))
        visits.append(Visit(c, p.start + (p.end - p.start) * frac))
    got = pt.missed(plan, checkpoints, visits, since, now)
    assert {(m.period, m.checkpoint_id) for m in got} == set(pairs) - visited
    assert got == sorted(got)
    # a visit outside every ended period changes nothing
    late = [*visits, Visit(checkpoints[0], now + timedelta(days=400))]
    assert pt.missed(plan, checkpoints, late, since, now) == got


def test_due_lists_the_unvisited_checkpoints_of_the_running_period() -> None:
    plan = Plan(Frequency(1, Unit.DAYS), date(2026, 3, 1), date(2026, 3, 31), "Asia/Shanghai")
    now = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)
    period, todo = pt.due(plan, [1, 2, 3], [Visit(2, now - timedelta(hours=1)),
                                            Visit(3, now - timedelta(days=1))], now)
    assert period is not None and todo == [1, 3]
    assert pt.due(plan, [1], [], datetime(2026, 4, 2, tzinfo=UTC)) == (None, [])
    assert pt.due(plan, [1], [], datetime(2026, 2, 2, tzinfo=UTC)) == (None, [])


@pytest.mark.parametrize(("metres_north", "accuracy", "far"), [
    (0, None, False), (150, None, False), (199, 5, False), (260, None, True),
    (260, 80, False), (390, 1000, False), (420, 1000, True)], ids=str)
def test_gps_radius(metres_north: float, accuracy: float | None, far: bool) -> None:
    site = (22.5431, 114.0579)
    lat = site[0] + metres_north / 111_195  # one degree of latitude on the mean radius
    got, d = pt.gps_far(Gps(lat, site[1], accuracy), site)
    assert got is far and d == pytest.approx(metres_north, abs=1)


@given(st.floats(-89, 89), st.floats(-179, 179), st.floats(-89, 89), st.floats(-179, 179))
def test_distance_is_symmetric_and_zero_on_the_spot(a: float, b: float, c: float,
                                                    d: float) -> None:
    assert pt.distance_m(a, b, a, b) == 0
    assert pt.distance_m(a, b, c, d) == pytest.approx(pt.distance_m(c, d, a, b), abs=1e-6)
    assert 0 <= pt.distance_m(a, b, c, d) <= 3.1416 * pt.EARTH_RADIUS_M + 1


def test_assess_flags_without_refusing() -> None:
    plan = Plan(Frequency(1, Unit.DAYS), date(2026, 3, 1), date(2026, 3, 31))
    site = (22.5, 114.0)
    at = datetime(2026, 3, 10, 9, tzinfo=UTC)
    period, flags, d = pt.assess(plan, at=at, gps=Gps(22.5, 114.0), site=site)
    assert at in period and flags == [] and d == 0
    _, flags, _ = pt.assess(plan, at=at, gps=Gps(22.6, 114.0), site=site,
                            earlier=[at - timedelta(hours=2)])
    assert flags == [Flag.REPEAT, Flag.GPS_FAR]
    _, flags, d = pt.assess(plan, at=datetime(2026, 2, 1, tzinfo=UTC), gps=None, site=site,
                            enabled=False)
    assert flags == [Flag.PLAN_INACTIVE, Flag.BEFORE_START] and d is None
    _, flags, _ = pt.assess(plan, at=datetime(2026, 4, 1, tzinfo=UTC), gps=Gps(0, 0), site=None)
    assert flags == [Flag.AFTER_END]


def test_failed_and_unknown_items() -> None:
    items = [pt.ChecklistItem("exits", "Exits clear"), pt.ChecklistItem("ext", "Extinguishers")]
    results = [pt.ItemResult("ext", False, "two empty"), pt.ItemResult("exits", True),
               pt.ItemResult("ghost", False)]
    assert [(i.id, r.note) for i, r in pt.failed_items(items, results)] == [("ext", "two empty")]
    assert pt.unknown_items(items, results) == ["ghost"]


def test_frequency_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="every"):
        Frequency(0, Unit.DAYS)


@pytest.mark.parametrize("unit", list(Unit))
@pytest.mark.parametrize("day", [date(1, 1, 1), date(9999, 12, 31)])
def test_plans_at_the_ends_of_the_calendar_do_not_fail(unit: Unit, day: date) -> None:
    """A plan dated at the calendar's ends: its periods saturate at the ends of time."""
    for zone in ("America/New_York", "Asia/Shanghai"):
        plan = Plan(Frequency(pt.MAX_EVERY, unit), day, day, zone)
        now = datetime(2026, 5, 1, tzinfo=UTC)
        assert now in pt.period_at(plan, now)
        assert pt.missed(plan, [1], [], now - timedelta(days=92), now) == []
        assert pt.due(plan, [1], [], now) == (None, [])
        pt.assess(plan, at=now, gps=None, site=None)
