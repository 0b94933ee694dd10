"""hazards/reports.py, pure: the duplicate rule (Hypothesis properties: it merges exactly what
lies within the radius and the window, of the same category, into an open report, and its
choice does not depend on the order of the candidates), tracking codes (typos are caught),
the report's and the reward's steps, and the intake throttle (its memory is bounded and no
address, nor everyone together, gets more than its rate)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hazards.reports import (
    ALPHABET,
    CATEGORIES,
    MERGE_RADIUS_M,
    MERGE_WINDOW,
    Buckets,
    Candidate,
    IntakeLimits,
    IntakeThrottle,
    MergeRule,
    ReportStatus,
    ReportStep,
    Reward,
    StepRefused,
    bounding_box,
    haversine_m,
    nearest_site,
    new_tracking_code,
    normalize_tracking_code,
    reward_step,
    step,
)

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
lats = st.floats(min_value=-80, max_value=80, allow_nan=False)
lons = st.floats(min_value=-179, max_value=179, allow_nan=False)
offsets_m = st.floats(min_value=-600, max_value=600, allow_nan=False)
hours = st.floats(min_value=-48, max_value=48, allow_nan=False)
statuses = st.sampled_from(list(ReportStatus))
categories = st.sampled_from(CATEGORIES)


def moved(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    """A point about north_m / east_m metres away (small distances)."""
    import math
    dlat = math.degrees(north_m / 6_371_008.8)
    dlon = math.degrees(east_m / (6_371_008.8 * math.cos(math.radians(lat))))
    return lat + dlat, lon + dlon


def test_known_distances() -> None:
    # Shenzhen Civic Centre to Futian station: about 1.3 km; one degree of latitude: 111.2 km
    assert haversine_m(22.5431, 114.0579, 22.5431, 114.0579) == 0
    assert haversine_m(0, 0, 1, 0) == pytest.approx(111_195, rel=1e-3)
    assert haversine_m(22.5431, 114.0579, 22.5376, 114.0502) == pytest.approx(1000, rel=0.1)


@given(lats, lons, lats, lons)
def test_distance_is_symmetric_and_bounded(a: float, b: float, c: float, d: float) -> None:
    assert haversine_m(a, b, c, d) == pytest.approx(haversine_m(c, d, a, b), abs=1e-6)
    assert 0 <= haversine_m(a, b, c, d) <= 20_038_000


@given(lats, lons, offsets_m, offsets_m, st.floats(min_value=1, max_value=5000))
def test_the_bounding_box_holds_every_point_within_the_radius(lat: float, lon: float,
                                                             n: float, e: float,
                                                             radius: float) -> None:
    lat2, lon2 = moved(lat, lon, n, e)
    lat0, lat1, lon0, lon1 = bounding_box(lat, lon, radius)
    if haversine_m(lat, lon, lat2, lon2) <= radius:
        assert lat0 <= lat2 <= lat1 and lon0 <= lon2 <= lon1


@given(categories, categories, statuses, lats, lons, offsets_m, offsets_m, hours)
def test_a_report_merges_exactly_within_radius_window_category_and_open(
        cat: str, other_cat: str, status: ReportStatus, lat: float, lon: float, n: float,
        e: float, dh: float) -> None:
    lat2, lon2 = moved(lat, lon, n, e)
    other = Candidate(7, other_cat, status, T0, lat2, lon2)
    at = T0 + timedelta(hours=dh)
    rule = MergeRule()
    expected = (cat == other_cat and status in (ReportStatus.RECEIVED, ReportStatus.CONVERTED)
                and abs(at - T0) <= MERGE_WINDOW
                and haversine_m(lat, lon, lat2, lon2) <= MERGE_RADIUS_M)
    assert rule.matches(cat, lat, lon, at, other) is expected
    # a report without a place never merges, nor into one without a place
    assert not rule.matches(cat, None, None, at, other)
    assert not rule.matches(cat, lat, lon, at, Candidate(7, other_cat, status, T0, None, None))


candidates = st.lists(st.tuples(categories, statuses, offsets_m, offsets_m, hours),
                      max_size=12)


@settings(max_examples=200)
@given(categories, lats, lons, candidates, st.randoms(use_true_random=False))
def test_the_target_is_the_nearest_match_whatever_the_order(cat: str, lat: float, lon: float,
                                                          raw: list[tuple[str, ReportStatus,
                                                                          float, float, float]],
                                                          rnd: random.Random) -> None:
    cands = [Candidate(i + 1, c, s, T0 + timedelta(hours=h), *moved(lat, lon, n, e))
             for i, (c, s, n, e, h) in enumerate(raw)]
    rule = MergeRule()
    target = rule.target(cat, lat, lon, T0, cands)
    shuffled = list(cands)
    rnd.shuffle(shuffled)
    assert rule.target(cat, lat, lon, T0, shuffled) == target
    matching = [c for c in cands if rule.matches(cat, lat, lon, T0, c)]
    if not matching:
        assert target is None
        return
    assert target in matching
    assert target.latitude is not None and target.longitude is not None
    best = haversine_m(lat, lon, target.latitude, target.longitude)
    assert all(haversine_m(lat, lon, c.latitude, c.longitude) >= best  # type: ignore[arg-type]
               for c in matching)


def test_merge_rule_defaults_and_settings() -> None:
    near = Candidate(1, "blocked_exit", ReportStatus.RECEIVED, T0, *moved(22.5, 114.0, 150, 0))
    rule = MergeRule()
    assert rule.matches("blocked_exit", 22.5, 114.0, T0 + timedelta(hours=23), near)
    assert not rule.matches("blocked_exit", 22.5, 114.0, T0 + timedelta(hours=25), near)
    assert not MergeRule(radius_m=100).matches("blocked_exit", 22.5, 114.0, T0, near)
    assert not rule.matches("fire_lane", 22.5, 114.0, T0, near)


def test_nearest_site() -> None:
    sites = [("far", *moved(22.5, 114.0, 900, 0)), ("b", *moved(22.5, 114.0, 100, 0)),
             ("a", *moved(22.5, 114.0, 0, 100)), ("c", *moved(22.5, 114.0, 250, 0))]
    assert nearest_site(22.5, 114.0, sites) in ("a", "b")  # both ~100 m; ties: lowest id
    assert nearest_site(22.5, 114.0, sites[:2] + sites[3:]) == "b"
    assert nearest_site(22.5, 114.0, sites, within_m=50) is None
    assert nearest_site(22.5, 114.0, []) is None


# -- tracking codes ------------------------------------------------------------------------

@settings(max_examples=300)
@given(st.randoms(use_true_random=False))
def test_every_typo_of_one_character_or_one_swap_is_caught(rnd: random.Random) -> None:
    code = new_tracking_code(rnd.randrange)
    assert len(code) == 12 and normalize_tracking_code(code) == code
    i = rnd.randrange(12)
    other = rnd.choice([c for c in ALPHABET if c != code[i]])
    assert normalize_tracking_code(code[:i] + other + code[i + 1:]) is None
    j = rnd.randrange(11)
    if code[j] != code[j + 1]:
        swapped = code[:j] + code[j + 1] + code[j] + code[j + 2:]
        assert normalize_tracking_code(swapped) is None


def test_codes_are_read_as_people_write_them() -> None:
    code = new_tracking_code()
    spaced = "-".join([code[:4], code[4:8], code[8:]]).lower()
    assert normalize_tracking_code(spaced) == code
    assert normalize_tracking_code(" " + code + " ") == code
    for bad in ("", "x" * 41, code[:-1], code + "0", "!" * 12, "Z" * 12):
        assert normalize_tracking_code(bad) is None
    zeros = "0" * 11
    assert normalize_tracking_code("o" * 11 + "0") == normalize_tracking_code(zeros + "0")
    assert len({new_tracking_code() for _ in range(2000)}) == 2000


# -- steps ---------------------------------------------------------------------------------

@given(statuses, st.sampled_from(list(ReportStep)))
def test_only_a_received_report_takes_a_step(status: ReportStatus, what: ReportStep) -> None:
    if status is ReportStatus.RECEIVED:
        assert step(status, what).value == {"merge": "merged", "dismiss": "dismissed",
                                            "convert": "converted"}[what.value]
    else:
        with pytest.raises(StepRefused, match="allowed: nothing"):
            step(status, what)


@given(st.lists(st.tuples(statuses, st.sampled_from(list(Reward)),
                          st.one_of(st.none(), st.floats(min_value=-10, max_value=2e6))),
                max_size=30))
def test_reward_steps(changes: list[tuple[ReportStatus, Reward, float | None]]) -> None:
    current = Reward.NONE
    for report, new, amount in changes:
        try:
            reward_step(report, current, new, amount)
        except (StepRefused, ValueError):
            continue
        # what was allowed keeps the rules
        assert current is not Reward.GRANTED  # granted is final
        assert new is not Reward.GRANTED or (amount is not None and 0 < amount <= 1_000_000)
        assert new not in (Reward.ELIGIBLE, Reward.GRANTED) or report is ReportStatus.CONVERTED
        assert (new, current) != (Reward.GRANTED, Reward.NONE)  # eligible first
        current = new


def test_reward_refusals_name_the_allowed_steps() -> None:
    with pytest.raises(StepRefused, match="allowed: eligible, refused"):
        reward_step(ReportStatus.CONVERTED, Reward.NONE, Reward.GRANTED, 100.0)
    with pytest.raises(StepRefused, match="became a hazard"):
        reward_step(ReportStatus.DISMISSED, Reward.NONE, Reward.ELIGIBLE, None)
    with pytest.raises(ValueError, match="amount"):
        reward_step(ReportStatus.CONVERTED, Reward.ELIGIBLE, Reward.GRANTED, None)
    reward_step(ReportStatus.CONVERTED, Reward.ELIGIBLE, Reward.GRANTED, 500.0)


# -- flood control -------------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@settings(max_examples=100)
@given(st.lists(st.tuples(st.integers(0, 50), st.floats(min_value=0, max_value=30)),
                max_size=300),
       st.integers(1, 20))
def test_buckets_never_exceed_rate_or_memory(calls: list[tuple[int, float]],
                                             max_keys: int) -> None:
    clock = Clock()
    rate, burst = 0.5, 3.0
    buckets = Buckets(rate, burst, max_keys, clock)
    start = clock.now
    granted: dict[int, int] = {}
    for who, dt in calls:
        clock.now += dt
        if buckets.take(str(who)) == 0.0:
            granted[who] = granted.get(who, 0) + 1
        assert len(buckets) <= max_keys
    if max_keys > 50:  # no key was ever dropped: each within its rate
        for n in granted.values():
            assert n <= burst + rate * (clock.now - start) + 1e-9


def test_an_address_waits_for_its_next_token() -> None:
    clock = Clock()
    buckets = Buckets(rate=1 / 60, burst=2, max_keys=10, clock=clock)
    assert buckets.take("a") == 0 and buckets.take("a") == 0
    assert buckets.take("a") == pytest.approx(60)
    clock.now += 30
    assert buckets.take("a") == pytest.approx(30)  # the refused try cost nothing
    clock.now += 30
    assert buckets.take("a") == 0
    assert buckets.take("b") == 0  # another address has its own bucket


def test_the_global_cap_holds_against_many_addresses() -> None:
    clock = Clock()
    throttle = IntakeThrottle(IntakeLimits(per_address_per_hour=10, address_burst=3,
                                           per_minute=20, max_addresses=100), clock)
    accepted = sum(throttle.report(f"10.0.{i // 256}.{i % 256}") is None for i in range(5000))
    assert accepted == 20
    assert len(throttle.reports) == 100  # the table stays at its bound
    refused = throttle.report("192.0.2.1")
    assert refused is not None and refused[1] == "everyone" and refused[0] == pytest.approx(3)
    clock.now += 60
    assert sum(throttle.report(f"203.0.113.{i}") is None for i in range(100)) == 20


def test_one_address_is_held_to_its_burst_and_rate() -> None:
    clock = Clock()
    throttle = IntakeThrottle(IntakeLimits(per_address_per_hour=6, address_burst=2,
                                           per_minute=1000), clock)
    assert [throttle.report("a") is None for _ in range(4)] == [True, True, False, False]
    wait = throttle.report("a")
    assert wait is not None and wait == (pytest.approx(600), "address")
    clock.now += 600
    assert throttle.report("a") is None
    assert throttle.lookup("a") == 0


def test_every_report_category_lands_on_a_hazard_category() -> None:
    from hazards.model import CATEGORIES as HAZARD_CATEGORIES
    from hazards.reports import CATEGORIES, HAZARD_CATEGORY

    assert set(HAZARD_CATEGORY) == set(CATEGORIES)
    assert set(HAZARD_CATEGORY.values()) <= set(HAZARD_CATEGORIES)
