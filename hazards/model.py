"""The hazard (隐患) and its lifecycle: sources, severities, states, triggers, the TRANSITIONS
table and the pure `transition` function (docs/hazards.md, "The loop").

    found ──notify──▶ notified ──receipt──▶ rectifying ──submit──▶ submitted ──verify──▶ verified ──close──▶ closed
      │                                         ▲                      │
      └───────────── fix_on_spot ───────────────┼──────────────────────┘ (found → submitted)
                                                └──────── reject ──────┘

Overdue is not a state: a hazard is overdue while it is not yet submitted and its deadline has
passed (`is_overdue`). Escalation (hazards/escalation.py) moves the owning level up; it never
changes the state. Closed is reachable only from verified: closed means verified.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Source(StrEnum):
    ALARM = "alarm"              # an IoT alarm converted by an operator
    RULE = "rule"                # raised by a hazard rule (hazards/rules.py)
    PATROL = "patrol"            # a failed checklist item at a patrol checkpoint
    INSPECTION = "inspection"    # found in an inspection (double-random or special)
    PUBLIC_REPORT = "public_report"  # a citizen's report (12345, WeChat, the public form)
    DEPARTMENT = "department"    # notified by a supervising department (抄告)
    MANUAL = "manual"            # recorded by a grid member, supervisor or operator


class Severity(StrEnum):
    GENERAL = "general"  # 一般隐患: stays in the grid and the township
    MAJOR = "major"      # 重大隐患: listed for supervision (挂牌督办) at once


# Hazard categories (the console labels each): where a report's, a rule's or a patrol item's
# category lands.
CATEGORIES = ("evacuation", "fire_lane", "fire_equipment", "electrical", "ebike", "fire_load",
              "management", "false_alarms", "maintenance", "other")


class HazardState(StrEnum):
    FOUND = "found"
    NOTIFIED = "notified"        # the responsible unit was told (抄告); waits for the receipt
    RECTIFYING = "rectifying"    # the unit signed the receipt and is fixing it
    SUBMITTED = "submitted"      # the fix is reported, with photos, and waits for 复查
    VERIFIED = "verified"        # checked by someone other than the one who submitted it
    CLOSED = "closed"


class Trigger(StrEnum):
    NOTIFY = "notify"
    RECEIPT = "receipt"
    SUBMIT = "submit"
    FIX_ON_SPOT = "fix_on_spot"  # 当场整改: found and fixed at once, still verified by another
    VERIFY = "verify"
    REJECT = "reject"
    CLOSE = "close"


S, T = HazardState, Trigger

# (state, trigger) -> next state. Anything else is refused with the allowed triggers.
TRANSITIONS: dict[tuple[HazardState, Trigger], HazardState] = {
    (S.FOUND, T.NOTIFY): S.NOTIFIED,
    (S.FOUND, T.FIX_ON_SPOT): S.SUBMITTED,
    (S.NOTIFIED, T.RECEIPT): S.RECTIFYING,
    (S.NOTIFIED, T.SUBMIT): S.SUBMITTED,     # fixed before the receipt was signed
    (S.RECTIFYING, T.SUBMIT): S.SUBMITTED,
    (S.SUBMITTED, T.VERIFY): S.VERIFIED,
    (S.SUBMITTED, T.REJECT): S.RECTIFYING,
    (S.VERIFIED, T.CLOSE): S.CLOSED,
}

# States in which the deadline runs (the responsible party still owes the fix).
OWING = frozenset({S.FOUND, S.NOTIFIED, S.RECTIFYING})
OPEN = frozenset(HazardState) - {S.CLOSED}

# The permission each trigger needs (names of api.permissions.Permission values; the library
# does not import the API, the API checks these strings against its role table).
TRIGGER_PERMISSION: dict[Trigger, str] = {
    T.NOTIFY: "hazard:report",
    T.FIX_ON_SPOT: "hazard:report",
    T.RECEIPT: "hazard:rectify",
    T.SUBMIT: "hazard:rectify",
    T.VERIFY: "hazard:verify",
    T.REJECT: "hazard:verify",
    T.CLOSE: "hazard:verify",
}

# Triggers that must carry a note (why it was rejected; what was done).
NEEDS_NOTE = frozenset({T.REJECT, T.SUBMIT, T.FIX_ON_SPOT})


class InvalidTransition(ValueError):
    def __init__(self, state: HazardState, trigger: Trigger) -> None:
        self.state, self.trigger = state, trigger
        self.allowed = allowed(state)
        super().__init__(f"a {state.value} hazard cannot take '{trigger.value}'; allowed: "
                         f"{', '.join(t.value for t in self.allowed) or 'nothing (closed)'}")


def allowed(state: HazardState) -> list[Trigger]:
    return [t for (s, t) in TRANSITIONS if s is state]


def transition(state: HazardState, trigger: Trigger) -> HazardState:
    """The next state, or InvalidTransition naming the allowed triggers."""
    try:
        return TRANSITIONS[(state, trigger)]
    except KeyError:
        raise InvalidTransition(state, trigger) from None


def is_overdue(state: HazardState, deadline: datetime | None, now: datetime) -> bool:
    return state in OWING and deadline is not None and now > deadline


@dataclass(frozen=True, slots=True)
class HazardDraft:
    """What is known when a hazard is recorded. `source_ref` makes recording idempotent: a
    second draft with the same (source, source_ref) returns the first hazard (a rule firing
    again, a patrol check-in retried, a public report converted twice)."""
    source: Source
    title: str
    site_id: str | None = None
    unit_id: int | None = None
    jurisdiction_id: int | None = None   # the grid or node it was found in; else the site's
    description: str = ""
    category: str = ""                   # e.g. 'evacuation', 'fire_equipment', 'electrical'
    legal_basis: str = ""                # e.g. '《消防法》第十六条'
    severity: Severity = Severity.GENERAL
    deadline: datetime | None = None     # else the default for the severity (HazardPolicy)
    source_ref: str = ""                 # 'alarm:123', 'rule:offline:dev-1:...', 'checkin:9/2'
    responsible_name: str = ""
    responsible_phone: str = ""
    campaign: str = ""                   # a special rectification campaign (专项整治) it belongs to
    files_before: tuple[str, ...] = field(default_factory=tuple)  # file ids (hazards/files.py)
