"""Patrol plans (巡查计划) as pure functions: the periods a plan expects, which checkpoint visits
were missed, and whether a check-in holds up (docs/patrols-and-inspections.md).

A plan belongs to one grid and lists checkpoints (each at a site, with a QR/NFC token), a
frequency and a checklist. Every checkpoint is to be visited once in every period:

    every N hours  periods of N hours counted from local midnight of `starts_on`, in absolute
                   time (a DST change does not stretch or shrink them)
    every N days   from local midnight to local midnight, N calendar days long (23 or 25 hours
                   across a DST change)
    every N weeks  7·N calendar days, starting on the weekday of `starts_on`

"Local" is the plan's own IANA time zone (`time_zone`, default "UTC"): the centre's settings
carry no time zone, and a city's grids may lie in one zone while the centre runs in UTC.

A checkpoint is missed in a period when the period has ended and no check-in at it fell inside
the period. A check-in whose GPS lies far from the checkpoint's site still counts as a visit
but carries the flag `gps_far` (GPS indoors is poor; the flag is for a supervisor to look at).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

# A check-in within R metres of the checkpoint's site is where it should be. The phone's own
# accuracy estimate widens that, by at most R more: `gps_far` when distance > R + min(acc, R).
GPS_RADIUS_M = 200.0
EARTH_RADIUS_M = 6_371_008.8  # mean radius (IUGG)

MAX_CHECKLIST_ITEMS = 50
MAX_EVERY = 1000
# A period list is bounded: asking for missed visits over years of hourly periods is refused
# by the caller before it gets here (api/routes/patrols.py caps the window).
MAX_PERIODS = 10_000


class Unit(StrEnum):
    HOURS = "hours"
    DAYS = "days"
    WEEKS = "weeks"


class Flag(StrEnum):
    GPS_FAR = "gps_far"                # farther from the site than the radius allows
    BEFORE_START = "before_start"      # before the plan's first period
    AFTER_END = "after_end"            # after the plan's last day
    PLAN_INACTIVE = "plan_inactive"    # the plan or the checkpoint is switched off
    REPEAT = "repeat"                  # a second visit to the checkpoint in the same period


@dataclass(frozen=True, slots=True)
class ChecklistItem:
    id: str
    text: str
    category: str = ""
    legal_basis: str = ""


@dataclass(frozen=True, slots=True)
class Frequency:
    every: int
    unit: Unit

    def __post_init__(self) -> None:
        if not 1 <= self.every <= MAX_EVERY:
            raise ValueError(f"every must be 1..{MAX_EVERY}, not {self.every}")


@dataclass(frozen=True, slots=True)
class Plan:
    frequency: Frequency
    starts_on: date
    ends_on: date | None = None    # the last day with periods (inclusive), or open-ended
    time_zone: str = "UTC"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


@dataclass(frozen=True, slots=True, order=True)
class Period:
    start: datetime  # aware, UTC
    end: datetime    # exclusive

    def __contains__(self, t: datetime) -> bool:
        return self.start <= t < self.end


# Instants before and after every period a calendar can hold: periods that would run past
# year 9999 end at END_OF_TIME instead of failing.
END_OF_TIME = datetime.max.replace(tzinfo=UTC)
START_OF_TIME = datetime.min.replace(tzinfo=UTC)


def _midnight(day: date, zone: ZoneInfo, days: int = 0) -> datetime:
    """Local midnight `days` after `day`, as a UTC instant (where midnight does not exist,
    zoneinfo's offset before the change applies: still one instant per day, in order)."""
    try:
        return datetime.combine(day + timedelta(days=days), time(0),
                                tzinfo=zone).astimezone(UTC)
    except OverflowError:
        return END_OF_TIME if day.year > 5000 else START_OF_TIME


def _first(plan: Plan) -> datetime:
    return _midnight(plan.starts_on, plan.zone)


def _last(plan: Plan) -> datetime | None:
    """The end of the plan's active time: local midnight after `ends_on`."""
    return None if plan.ends_on is None else _midnight(plan.ends_on, plan.zone, 1)


def _nth(plan: Plan, n: int) -> Period:
    f = plan.frequency
    if f.unit is Unit.HOURS:
        step = timedelta(hours=f.every)
        return Period(_shift(_first(plan), n * step), _shift(_first(plan), (n + 1) * step))
    days = f.every * (7 if f.unit is Unit.WEEKS else 1)
    return Period(_midnight(plan.starts_on, plan.zone, n * days),
                  _midnight(plan.starts_on, plan.zone, (n + 1) * days))


def _shift(t: datetime, by: timedelta) -> datetime:
    try:
        return t + by
    except OverflowError:
        return END_OF_TIME if by > timedelta(0) else START_OF_TIME


def _index(plan: Plan, t: datetime) -> int:
    """The number of the period holding `t` (negative before the plan starts)."""
    f = plan.frequency
    if f.unit is Unit.HOURS:
        return (t - _first(plan)) // timedelta(hours=f.every)
    days = f.every * (7 if f.unit is Unit.WEEKS else 1)
    local = t.astimezone(plan.zone).date()
    n = (local - plan.starts_on).days // days
    # local dates of non-existent or repeated midnights can sit one off: settle on the period
    # that really holds t
    while t < _nth(plan, n).start:
        n -= 1
    while t >= _nth(plan, n).end:
        n += 1
    return n


def period_at(plan: Plan, t: datetime) -> Period:
    """The period holding `t` (it may lie before the plan starts or after it ends)."""
    return _nth(plan, _index(plan, t))


def active(plan: Plan, period: Period) -> bool:
    """Whether the plan expects visits in `period`: on or after its first day and starting
    before the end of its last."""
    last = _last(plan)
    return period.start >= _first(plan) and (last is None or period.start < last)


def periods(plan: Plan, since: datetime, until: datetime) -> Iterator[Period]:
    """The plan's active periods that overlap [since, until), in order (at most MAX_PERIODS)."""
    if until <= since:
        return
    n = max(_index(plan, since), 0)
    for _ in range(MAX_PERIODS):
        p = _nth(plan, n)
        if p.start >= until or not active(plan, p):
            return
        yield p
        n += 1


@dataclass(frozen=True, slots=True)
class Visit:
    """A check-in as the missed rule sees it."""
    checkpoint_id: int
    at: datetime


@dataclass(frozen=True, slots=True, order=True)
class Miss:
    period: Period
    checkpoint_id: int


def missed(plan: Plan, checkpoints: Iterable[int], visits: Iterable[Visit],
           since: datetime, now: datetime) -> list[Miss]:
    """Every (period, checkpoint) of the periods that ended by `now` and overlap [since, now)
    with no visit inside the period, in time order."""
    seen: set[tuple[Period, int]] = set()
    for v in visits:
        seen.add((period_at(plan, v.at), v.checkpoint_id))
    targets = sorted(set(checkpoints))
    return [Miss(p, c) for p in periods(plan, since, now) if p.end <= now
            for c in targets if (p, c) not in seen]


def due(plan: Plan, checkpoints: Iterable[int], visits: Iterable[Visit],
        now: datetime) -> tuple[Period | None, list[int]]:
    """The period running at `now` (None when the plan expects nothing then) and the
    checkpoints not yet visited in it."""
    p = period_at(plan, now)
    if not active(plan, p):
        return None, []
    done = {v.checkpoint_id for v in visits if v.at in p}
    return p, sorted(set(checkpoints) - done)


@dataclass(frozen=True, slots=True)
class Gps:
    lat: float
    lon: float
    accuracy_m: float | None = None


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine on the mean Earth radius), metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def gps_far(gps: Gps | None, site: tuple[float, float] | None,
            radius_m: float = GPS_RADIUS_M) -> tuple[bool, float | None]:
    """(far?, distance) of a check-in's GPS from the checkpoint's site; (False, None) unless
    both are known."""
    if gps is None or site is None:
        return False, None
    d = distance_m(gps.lat, gps.lon, site[0], site[1])
    allowance = min(max(gps.accuracy_m or 0.0, 0.0), radius_m)
    return d > radius_m + allowance, d


def assess(plan: Plan, *, at: datetime, gps: Gps | None, site: tuple[float, float] | None,
           earlier: Iterable[datetime] = (), enabled: bool = True,
           radius_m: float = GPS_RADIUS_M) -> tuple[Period, list[Flag], float | None]:
    """A check-in at `at` (the token already matched its checkpoint): the period it counts
    for, its flags, and its distance from the site. Nothing here refuses a check-in: it is
    recorded with its flags. `earlier`: the times of earlier check-ins at the checkpoint."""
    p = period_at(plan, at)
    flags: list[Flag] = []
    if not enabled:
        flags.append(Flag.PLAN_INACTIVE)
    if at < _first(plan):
        flags.append(Flag.BEFORE_START)
    last = _last(plan)
    if last is not None and at >= last:
        flags.append(Flag.AFTER_END)
    if any(t in p for t in earlier):
        flags.append(Flag.REPEAT)
    far, d = gps_far(gps, site, radius_m)
    if far:
        flags.append(Flag.GPS_FAR)
    return p, flags, d


@dataclass(frozen=True, slots=True)
class ItemResult:
    item_id: str
    passed: bool
    note: str = ""


def failed_items(checklist: Iterable[ChecklistItem],
                 results: Iterable[ItemResult]) -> list[tuple[ChecklistItem, ItemResult]]:
    """The checklist items a check-in failed, in checklist order."""
    by_id = {r.item_id: r for r in results}
    return [(item, by_id[item.id]) for item in checklist
            if item.id in by_id and not by_id[item.id].passed]


def unknown_items(checklist: Iterable[ChecklistItem], results: Iterable[ItemResult]) -> list[str]:
    """Result item ids that the checklist does not have."""
    ids = {item.id for item in checklist}
    return sorted({r.item_id for r in results} - ids)
