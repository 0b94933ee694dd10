"""Who gets what: notification policies, resolved against an alarm's place in the organisation.

A policy (table `notify_policies`) names alarm classes and a priority bound, an optional
jurisdiction subtree or unit, the recipients by their role in the organisation, optional
channels, quiet hours and a grouping window. `plan()` turns an alarm and the policies into one
`Target` per recipient role: the union of every matching policy, keeping the most urgent
handling (no quiet hours if any policy has none at that moment; the shortest grouping window).

Fire is never held: quiet hours and grouping never apply to it. Supervisory alarms are never
grouped either. Pure: no I/O, no clock (the caller passes `now`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from firetower.alarms import AlarmClass

# The roles a policy or an escalation step may name, and where each is found
# (notify/outbox.py resolves them against the organisation's tables).
RECIPIENTS: dict[str, str] = {
    "unit_responsible": "the unit's fire-safety responsible person (消防安全责任人)",
    "unit_manager": "the unit's fire-safety manager (消防安全管理人)",
    "grid_member": "the members of the unit's grid (网格员)",
    "maintenance_company": "the maintenance companies under contract for the site (维保单位)",
    "township_station": "the township's fire station (乡镇消防工作站) on the site's path",
    "unit_duty": "the operator on duty in the unit's control room (消控室值班员)",
    "duty_operator": "the centre's operator on duty, nearest the site",
    "duty_leader": "the centre's shift leader on duty, nearest the site",
    "duty_officer": "the duty officer of a higher level (e.g. the county's), nearest the site",
}
# The classes that floods are made of: grouped per site and window when a policy asks.
GROUPABLE = frozenset({AlarmClass.FAULT, AlarmClass.OFFLINE, AlarmClass.EARLY_WARNING})
MAX_GROUP_WINDOW_S = 3600


class PolicyError(ValueError):
    """A policy is refused at write time; the message says why."""


@dataclass(frozen=True, slots=True)
class Policy:
    id: int
    name: str
    classes: tuple[str, ...]
    recipients: tuple[str, ...]
    max_priority: int = 5
    jurisdiction_id: int | None = None
    unit_id: int | None = None
    channels: tuple[str, ...] | None = None
    quiet_start: time | None = None
    quiet_end: time | None = None
    timezone: str = "Asia/Shanghai"
    group_window_s: int = 0
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class AlarmFacts:
    """What the policies look at: the alarm and where its site sits in the organisation."""

    alarm_class: AlarmClass
    priority: int
    site_id: str | None
    unit_id: int | None
    path: tuple[int, ...]  # jurisdiction ids, root first, of the site's jurisdiction


@dataclass(frozen=True, slots=True)
class Target:
    recipient: str
    channels: frozenset[str] | None  # None: every channel the recipient has
    deliver_at: datetime  # now, or the end of quiet hours
    group_window_s: int  # 0: send alone
    policies: tuple[int, ...] = field(default=())


def validate(p: Policy, channels: Iterable[str]) -> None:
    """Refuse a policy that cannot work, with the reason (write time, never at 3 a.m.)."""
    known = set(channels)
    if not p.classes:
        raise PolicyError("a policy must name at least one alarm class")
    for c in p.classes:
        if c not in AlarmClass.__members__.values():
            raise PolicyError(f"unknown alarm class {c!r} "
                              f"(classes: {', '.join(a.value for a in AlarmClass)})")
    if not p.recipients:
        raise PolicyError("a policy must name at least one recipient")
    for r in p.recipients:
        if r not in RECIPIENTS:
            raise PolicyError(f"unknown recipient {r!r} (recipients: {', '.join(RECIPIENTS)})")
    if p.channels is not None:
        if not p.channels:
            raise PolicyError("channels, when given, must name at least one channel")
        for ch in p.channels:
            if ch not in known:
                raise PolicyError(f"unknown channel {ch!r} (channels: {', '.join(sorted(known))})")
    if not 1 <= p.max_priority <= 5:
        raise PolicyError("max_priority must be between 1 (fire only) and 5")
    if (p.quiet_start is None) != (p.quiet_end is None):
        raise PolicyError("quiet hours need both a start and an end")
    if p.quiet_start is not None and p.quiet_start == p.quiet_end:
        raise PolicyError("quiet hours must not start and end at the same time")
    if p.quiet_start is not None and AlarmClass.FIRE.value in p.classes and len(p.classes) == 1:
        raise PolicyError("quiet hours never apply to fire: a fire-only policy cannot have them")
    try:
        ZoneInfo(p.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise PolicyError(f"unknown time zone {p.timezone!r}") from exc
    if not 0 <= p.group_window_s <= MAX_GROUP_WINDOW_S:
        raise PolicyError(f"group_window_s must be between 0 and {MAX_GROUP_WINDOW_S}")
    if p.jurisdiction_id is not None and p.unit_id is not None:
        raise PolicyError("a policy applies to a jurisdiction subtree or to a unit, not both")


def matches(p: Policy, a: AlarmFacts) -> bool:
    if not p.enabled or a.alarm_class.value not in p.classes or a.priority > p.max_priority:
        return False
    if p.jurisdiction_id is not None and p.jurisdiction_id not in a.path:
        return False
    return p.unit_id is None or p.unit_id == a.unit_id


def quiet_until(p: Policy, now: datetime) -> datetime | None:
    """The end of the quiet hours `now` falls in, or None outside them."""
    if p.quiet_start is None or p.quiet_end is None:
        return None
    local = now.astimezone(ZoneInfo(p.timezone))
    t = local.timetz().replace(tzinfo=None)
    start, end = p.quiet_start, p.quiet_end
    inside = start <= t < end if start < end else (t >= start or t < end)
    if not inside:
        return None
    until = local.replace(hour=end.hour, minute=end.minute, second=end.second, microsecond=0)
    if until <= local:
        until += timedelta(days=1)
    return until.astimezone(now.tzinfo)


def plan(a: AlarmFacts, policies: Sequence[Policy], now: datetime) -> list[Target]:
    """One target per recipient role the matching policies name (sorted by role)."""
    fire = a.alarm_class is AlarmClass.FIRE
    by_role: dict[str, Target] = {}
    for p in policies:
        if not matches(p, a):
            continue
        deliver = now if fire else (quiet_until(p, now) or now)
        window = p.group_window_s if a.alarm_class in GROUPABLE else 0
        chans = frozenset(p.channels) if p.channels is not None else None
        for r in p.recipients:
            old = by_role.get(r)
            if old is None:
                by_role[r] = Target(r, chans, deliver, window, (p.id,))
                continue
            merged = (None if old.channels is None or chans is None
                      else old.channels | chans)
            by_role[r] = Target(r, merged, min(old.deliver_at, deliver),
                                min(old.group_window_s, window) if old.group_window_s and window
                                else 0, (*old.policies, p.id))
    return [by_role[r] for r in sorted(by_role)]


def group_key(contact: str, site_id: str | None, at: datetime, window_s: int) -> tuple[str, datetime]:
    """The group a grouped message joins, and when the group is sent (the window's end)."""
    epoch = int(at.timestamp())
    start = epoch - epoch % window_s
    end = datetime.fromtimestamp(start + window_s, tz=at.tzinfo)
    return f"{contact}|{site_id or ''}|{start}", end
