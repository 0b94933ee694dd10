"""Duty rosters (值班表), pure: who is on duty at a time, the shifts running at a time, the gaps
in a roster's coverage over a period, and the overlap rule of one user's shifts.

A shift is the half-open interval [starts_at, ends_at): a shift ending at 08:00 and the next
starting at 08:00 meet without overlapping, and at 08:00 only the second is on duty. No I/O:
notify/duty_store.py reads and writes the rows, the API and the notifier ask this module.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

# The positions of a duty shift (duty_shifts.position): the duty operator (值班员), the shift
# leader (值班长) and the officer on call (带班领导).
POSITIONS: tuple[str, ...] = ("operator", "leader", "officer")


@dataclass(frozen=True, slots=True)
class Shift:
    id: int
    user_id: int
    position: str
    starts_at: datetime
    ends_at: datetime

    def covers(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at

    def overlaps(self, starts_at: datetime, ends_at: datetime) -> bool:
        """Whether [starts_at, ends_at) shares an instant with this shift."""
        return self.starts_at < ends_at and starts_at < self.ends_at


@dataclass(frozen=True, slots=True)
class Gap:
    """A stretch of a period that no shift (of the position asked) covers."""

    starts_at: datetime
    ends_at: datetime


def current(shifts: Iterable[Shift], at: datetime) -> list[Shift]:
    """The shifts running at `at`: by position (operator, leader, officer), then start, id."""
    order = {p: i for i, p in enumerate(POSITIONS)}
    return sorted((s for s in shifts if s.covers(at)),
                  key=lambda s: (order.get(s.position, len(order)), s.starts_at, s.id))


def on_duty(shifts: Iterable[Shift], at: datetime) -> dict[str, list[int]]:
    """Who is on duty at `at`, per position (every position present, maybe empty): the user
    ids, each once, in the order their shifts started."""
    out: dict[str, list[int]] = {p: [] for p in POSITIONS}
    for s in current(shifts, at):
        users = out.setdefault(s.position, [])
        if s.user_id not in users:
            users.append(s.user_id)
    return out


def gaps(shifts: Iterable[Shift], start: datetime, end: datetime,
         position: str | None = None) -> list[Gap]:
    """The stretches of [start, end) that no shift covers (of `position`, or of any position),
    in order, disjoint and never empty. An empty or inverted period has no gap."""
    if end <= start:
        return []
    spans = sorted((max(s.starts_at, start), min(s.ends_at, end)) for s in shifts
                   if (position is None or s.position == position) and s.overlaps(start, end))
    out: list[Gap] = []
    cursor = start
    for lo, hi in spans:
        if lo > cursor:
            out.append(Gap(cursor, lo))
        cursor = max(cursor, hi)
    if cursor < end:
        out.append(Gap(cursor, end))
    return out


def clash(shifts: Iterable[Shift], user_id: int, starts_at: datetime, ends_at: datetime,
          *, ignore: int | None = None) -> Shift | None:
    """The first shift (by start) of `user_id` that [starts_at, ends_at) would overlap: one
    person cannot be on two shifts of a roster at once. `ignore`: the shift being changed."""
    hits = [s for s in shifts if s.user_id == user_id and s.id != ignore
            and s.overlaps(starts_at, ends_at)]
    return min(hits, key=lambda s: (s.starts_at, s.id)) if hits else None
