"""Public reports (举报), the pure part: categories, the duplicate rule, tracking codes, the
report's and the reward's steps, and the intake's flood control
(docs/hazards-files-and-reports.md). No I/O; hazards/report_store.py writes.

    received ──merge──▶ merged      (a duplicate of another report; follows it)
        ├──dismiss──▶ dismissed     (with a reason)
        └──convert──▶ converted     (became a hazard)

    reward:  none ──▶ eligible ──▶ granted (final, with an amount)
               └──▶ refused ◀──┘  (refused ──▶ eligible: reconsidered)
"""

from __future__ import annotations

import math
import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

CATEGORIES = ("blocked_exit", "fire_lane", "fire_equipment", "electrical", "ebike_charging",
              "flammables", "other")
# A report's category -> the hazard category it becomes (hazards.model.CATEGORIES).
HAZARD_CATEGORY = {"blocked_exit": "evacuation", "fire_lane": "fire_lane",
                   "fire_equipment": "fire_equipment", "electrical": "electrical",
                   "ebike_charging": "ebike", "flammables": "fire_load", "other": "other"}
CHANNELS = ("web", "hotline", "api")

# The duplicate rule's defaults: a report within MERGE_RADIUS_M metres and MERGE_WINDOW of an
# open report of the same category is the same hazard seen twice.
MERGE_RADIUS_M = 200.0
MERGE_WINDOW = timedelta(hours=24)
# A report's location this close to a site's coordinates is matched to that site.
SITE_MATCH_M = 300.0
EARTH_RADIUS_M = 6_371_008.8  # mean radius (IUGG)


class ReportStatus(StrEnum):
    RECEIVED = "received"
    MERGED = "merged"
    DISMISSED = "dismissed"
    CONVERTED = "converted"


class ReportStep(StrEnum):
    MERGE = "merge"
    DISMISS = "dismiss"
    CONVERT = "convert"


class Reward(StrEnum):
    NONE = "none"
    ELIGIBLE = "eligible"
    GRANTED = "granted"
    REFUSED = "refused"


R, P = ReportStatus, ReportStep
STEPS: dict[tuple[ReportStatus, ReportStep], ReportStatus] = {
    (R.RECEIVED, P.MERGE): R.MERGED,
    (R.RECEIVED, P.DISMISS): R.DISMISSED,
    (R.RECEIVED, P.CONVERT): R.CONVERTED,
}
# Reports a new one may merge into: not yet decided, or already a hazard (a second citizen
# reporting the same blocked exit joins the first report's hazard).
MERGE_TARGETS = frozenset({R.RECEIVED, R.CONVERTED})

REWARD_STEPS: dict[Reward, frozenset[Reward]] = {
    Reward.NONE: frozenset({Reward.ELIGIBLE, Reward.REFUSED}),
    Reward.ELIGIBLE: frozenset({Reward.GRANTED, Reward.REFUSED, Reward.NONE}),
    Reward.REFUSED: frozenset({Reward.ELIGIBLE}),
    Reward.GRANTED: frozenset(),
}
MAX_REWARD = 1_000_000


class StepRefused(ValueError):
    """A step the report (or its reward) cannot take now; `allowed` names what it can."""

    def __init__(self, message: str, allowed: Iterable[str]) -> None:
        self.allowed = sorted(allowed)
        super().__init__(f"{message}; allowed: {', '.join(self.allowed) or 'nothing'}")


def step(status: ReportStatus, what: ReportStep) -> ReportStatus:
    try:
        return STEPS[(status, what)]
    except KeyError:
        raise StepRefused(f"a {status.value} report cannot take '{what.value}'",
                          [s.value for (st, s) in STEPS if st is status]) from None


def reward_step(report: ReportStatus, current: Reward, new: Reward,
                amount: float | None) -> None:
    """Refuses a reward change that the rules do not allow: only the listed steps; eligible
    and granted only for a report that became a hazard; an amount exactly when granted."""
    if new not in REWARD_STEPS[current]:
        raise StepRefused(f"a reward {current.value} cannot become {new.value}",
                          [r.value for r in REWARD_STEPS[current]])
    if new in (Reward.ELIGIBLE, Reward.GRANTED) and report is not R.CONVERTED:
        raise StepRefused(f"only a report that became a hazard earns a reward (this one is "
                          f"{report.value})", [Reward.REFUSED.value]
                          if Reward.REFUSED in REWARD_STEPS[current] else [])
    if (new is Reward.GRANTED) != (amount is not None):
        raise ValueError("an amount is given exactly when the reward is granted")
    if amount is not None and not 0 < amount <= MAX_REWARD:
        raise ValueError(f"the amount must be above 0 and at most {MAX_REWARD}")


# -- place and time ------------------------------------------------------------------------

def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def bounding_box(lat: float, lon: float, radius_m: float) -> tuple[float, float, float, float]:
    """(min lat, max lat, min lon, max lon) that holds every point within radius_m: the
    database's prefilter before `haversine_m` decides."""
    # The widest longitude a point within the radius reaches is asin(sin(d) / cos(lat)), a
    # little more than d / cos(lat); both spans get one part in a million more, so a point on
    # the circle is inside whatever the rounding.
    d = radius_m / EARTH_RADIUS_M * (1 + 1e-6)
    dlat = math.degrees(d)
    cos = math.cos(math.radians(lat))
    s = math.sin(min(d, math.pi / 2))
    dlon = 180.0 if s >= cos else min(180.0, math.degrees(math.asin(s / cos)) * (1 + 1e-6))
    return max(-90.0, lat - dlat), min(90.0, lat + dlat), lon - dlon, lon + dlon


@dataclass(frozen=True, slots=True)
class Candidate:
    """An earlier report, as the duplicate rule sees it."""
    id: int
    category: str
    status: ReportStatus
    received_at: datetime
    latitude: float | None
    longitude: float | None


@dataclass(frozen=True, slots=True)
class MergeRule:
    radius_m: float = MERGE_RADIUS_M
    window: timedelta = MERGE_WINDOW

    def matches(self, category: str, lat: float | None, lon: float | None, at: datetime,
                other: Candidate) -> bool:
        """Whether a report (category, place, time) duplicates `other`: same category,
        `other` open (received or converted), both located, within radius_m metres and
        within `window` of each other (either order)."""
        if (lat is None or lon is None or other.latitude is None or other.longitude is None
                or other.category != category or other.status not in MERGE_TARGETS):
            return False
        if abs(at - other.received_at) > self.window:
            return False
        return haversine_m(lat, lon, other.latitude, other.longitude) <= self.radius_m

    def target(self, category: str, lat: float | None, lon: float | None, at: datetime,
               candidates: Iterable[Candidate]) -> Candidate | None:
        """The report a new one merges into: of those it duplicates, the nearest; at equal
        distance the earliest (then the lowest id), so the answer does not depend on order."""
        best: tuple[float, datetime, int, Candidate] | None = None
        for c in candidates:
            if self.matches(category, lat, lon, at, c):
                assert lat is not None and lon is not None
                assert c.latitude is not None and c.longitude is not None
                key = (haversine_m(lat, lon, c.latitude, c.longitude), c.received_at, c.id, c)
                if best is None or key[:3] < best[:3]:
                    best = key
        return None if best is None else best[3]


def nearest_site(lat: float, lon: float, sites: Iterable[tuple[str, float, float]],
                 within_m: float = SITE_MATCH_M) -> str | None:
    """The id of the nearest (id, lat, lon) within `within_m` metres (ties: lowest id)."""
    best: tuple[float, str] | None = None
    for site_id, slat, slon in sites:
        d = haversine_m(lat, lon, slat, slon)
        if d <= within_m and (best is None or (d, site_id) < best):
            best = (d, site_id)
    return None if best is None else best[1]


# -- tracking codes ------------------------------------------------------------------------

# Crockford's base-32 alphabet without Z: 31 symbols (no I, L, O, U, so a code read over the
# phone is not misheard), a prime number of them, so the check character catches every single
# changed character and every swap of two different neighbouring ones.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXY"
CODE_RANDOM = 11   # random characters: 11 x log2(31) = 54.5 bits
_INDEX = {c: i for i, c in enumerate(ALPHABET)}
_READ_AS = {"I": "1", "L": "1", "O": "0", "-": "", " ": ""}


def _check_char(body: str) -> str:
    # position-weighted sum mod 31: weights 1..11 and differences 1..30 are all units mod 31
    return ALPHABET[sum((i + 1) * _INDEX[c] for i, c in enumerate(body)) % 31]


def new_tracking_code(token: Callable[[int], int] = secrets.randbelow) -> str:
    """A fresh code: 11 random characters and a check character."""
    body = "".join(ALPHABET[token(31)] for _ in range(CODE_RANDOM))
    return body + _check_char(body)


def normalize_tracking_code(text: str) -> str | None:
    """The code as stored, from what a person typed (any case, dashes and spaces, I/L for 1,
    O for 0), or None if it cannot be a code (wrong length, characters or check character)."""
    if len(text) > 40:
        return None
    code = "".join(_READ_AS.get(c, c) for c in text.upper())
    if len(code) != CODE_RANDOM + 1 or any(c not in _INDEX for c in code):
        return None
    return code if _check_char(code[:-1]) == code[-1] else None


# -- flood control -------------------------------------------------------------------------

class Buckets:
    """Token buckets per key (a client address) in a table of at most `max_keys` entries,
    least recently used dropped first: a flood from ever new addresses costs a fixed amount
    of memory, and an address that was dropped starts again with a full bucket (the global
    cap still holds). `rate` tokens a second, up to `burst`."""

    def __init__(self, rate: float, burst: float, max_keys: int,
                 clock: Callable[[], float]) -> None:
        if rate <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("rate > 0, burst >= 1 and max_keys >= 1")
        self.rate, self.burst, self.max_keys, self.clock = rate, burst, max_keys, clock
        self._table: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def __len__(self) -> int:
        return len(self._table)

    def take(self, key: str, cost: float = 1.0) -> float:
        """0.0 if `cost` tokens were taken, else the seconds until they will be there."""
        now = self.clock()
        tokens, at = self._table.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        wait = 0.0
        if tokens >= cost:
            tokens -= cost
        else:
            wait = (cost - tokens) / self.rate
        self._table[key] = (tokens, now)
        while len(self._table) > self.max_keys:
            self._table.popitem(last=False)
        return wait


@dataclass(frozen=True, slots=True)
class IntakeLimits:
    per_address_per_hour: float = 10.0   # new reports from one address
    address_burst: float = 3.0
    per_minute: float = 30.0             # new reports from everyone together
    status_per_minute: float = 30.0      # status look-ups from one address
    max_addresses: int = 10_000          # addresses remembered (each bucket ~200 bytes)


class IntakeThrottle:
    """Who may file a report or look one up now. `report` charges the address first and the
    global cap second, so one address cannot use up everyone's allowance by itself."""

    def __init__(self, limits: IntakeLimits, clock: Callable[[], float]) -> None:
        self.limits = limits
        self.reports = Buckets(limits.per_address_per_hour / 3600, limits.address_burst,
                               limits.max_addresses, clock)
        self.status = Buckets(limits.status_per_minute / 60, limits.status_per_minute,
                              limits.max_addresses, clock)
        self.everyone = Buckets(limits.per_minute / 60, limits.per_minute, 1, clock)

    def report(self, address: str) -> tuple[float, str] | None:
        """None if a report may be filed (and it is counted), else (seconds to wait, which
        limit: "address" or "everyone")."""
        wait = self.reports.take(address)
        if wait:
            return wait, "address"
        wait = self.everyone.take("*")
        if wait:
            return wait, "everyone"
        return None

    def lookup(self, address: str) -> float:
        return self.status.take(address)
