"""Escalation of overdue hazards and listing of major ones, as pure functions.

"Routine hazards do not leave the grid": a general hazard is owned by the grid (or node) it was
found in. When its deadline passes while the fix is still owed, it moves up ONE level with a
new deadline (`escalation_extension_s`), once per deadline: the deadline it escalated for is
recorded, and a sweep that sees the same deadline again does nothing. When the new owner is at
a listing level (district and above by default) the hazard becomes listed for supervision
(挂牌督办) with that owner as the supervising authority. At the root it stays with the root,
is listed, and gets the extension, so an overdue hazard is never forgotten.

A major hazard is listed at once, by the nearest listing-level ancestor of where it was found.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from hazards.model import HazardState, Severity, is_overdue
from hazards.policy import HazardPolicy


@dataclass(frozen=True, slots=True)
class Node:
    id: int
    level: str


@dataclass(frozen=True, slots=True)
class Escalation:
    from_owner: int | None
    to_owner: int | None
    old_deadline: datetime
    new_deadline: datetime
    listed_by: int | None      # set when this escalation lists the hazard


def lister(path: Sequence[Node], policy: HazardPolicy) -> Node | None:
    """The nearest node on `path` (root first, the hazard's node last) at a listing level;
    else the root."""
    for node in reversed(path):
        if node.level in policy.listing_levels:
            return node
    return path[0] if path else None


def listing_for(severity: Severity, path: Sequence[Node], policy: HazardPolicy) -> Node | None:
    """Who lists a new hazard for supervision: major ones only."""
    return lister(path, policy) if severity is Severity.MAJOR else None


def escalation(state: HazardState, deadline: datetime | None, escalated_for: datetime | None,
               owner_path: Sequence[Node], listed: bool, now: datetime,
               policy: HazardPolicy) -> Escalation | None:
    """What the sweep at `now` does to one hazard; None: nothing. `owner_path` is the path from
    the root to the current owner (the owner last); empty when the hazard has no owner."""
    if deadline is None or not is_overdue(state, deadline, now) or escalated_for == deadline:
        return None
    owner = owner_path[-1] if owner_path else None
    target = owner_path[-2] if len(owner_path) >= 2 else owner
    lists = (not listed and target is not None
             and (target.level in policy.listing_levels or target is owner))
    new_deadline = max(now, deadline) + timedelta(seconds=policy.escalation_extension_s)
    return Escalation(owner.id if owner else None, target.id if target else None, deadline,
                      new_deadline, target.id if lists and target is not None else None)
