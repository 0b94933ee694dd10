"""The rules that turn what the centre already knows into hazards (docs/hazards.md, "Rules").
Each is a pure function from facts and `now` to drafts; each draft carries a `source_ref` that
names the fact it came from, so a rule that fires on every sweep records one hazard.

| rule | fires when | default (HazardPolicy) |
|---|---|---|
| offline | a device's offline alarm is open longer than N | 24 h |
| fault | a fault alarm is open longer than N | 72 h |
| early_warning | an early warning predicts its limit within N | 7 days |
| false_alarms | a unit had more than N false fire alarms in a calendar day (GB 50440) | 5 |
| work_order | a work order is past its repair deadline and not closed | — |

Alarms in test, disabled or maintenance mode, and alarms inhibited by their panel's outage,
never make hazards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from hazards.model import HazardDraft, Source
from hazards.policy import HazardPolicy


@dataclass(frozen=True, slots=True)
class AlarmFact:
    id: int
    device_id: str
    site_id: str | None
    alarm_class: str
    type: str
    raised_at: datetime
    mode: str = "normal"
    inhibited_by: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FalseAlarmDay:
    unit_id: int
    day: date
    count: int


@dataclass(frozen=True, slots=True)
class LateOrder:
    id: int
    site_id: str | None
    title: str
    repair_by: datetime
    state: str


def _counts(a: AlarmFact) -> bool:
    return a.mode == "normal" and a.inhibited_by is None


def offline(alarms: Iterable[AlarmFact], now: datetime, policy: HazardPolicy) -> list[HazardDraft]:
    limit = timedelta(seconds=policy.offline_hazard_s)
    return [HazardDraft(
        Source.RULE, f"Device {a.device_id} offline for more than {_span(limit)}",
        site_id=a.site_id, category="fire_equipment",
        description=f"offline since {a.raised_at.isoformat()} (alarm {a.id})",
        legal_basis="GB 50440 §3.0.2: the centre watches the monitored equipment's connection",
        source_ref=f"rule:offline:{a.id}")
        for a in alarms
        if a.alarm_class == "offline" and _counts(a) and now - a.raised_at > limit]


def fault(alarms: Iterable[AlarmFact], now: datetime, policy: HazardPolicy) -> list[HazardDraft]:
    limit = timedelta(seconds=policy.fault_hazard_s)
    return [HazardDraft(
        Source.RULE, f"Fault {a.type} on {a.device_id} not cleared in {_span(limit)}",
        site_id=a.site_id, category="fire_equipment",
        description=f"fault since {a.raised_at.isoformat()} (alarm {a.id})",
        legal_basis="GB 25201: a fault of the fire alarm system is repaired at once",
        source_ref=f"rule:fault:{a.id}")
        for a in alarms
        if a.alarm_class == "fault" and _counts(a) and now - a.raised_at > limit]


def predicted_at(a: AlarmFact) -> datetime | None:
    """When an early warning's fit says the limit is reached (its evidence `predicted_s`,
    counted from when it was raised)."""
    s = a.evidence.get("predicted_s")
    if not isinstance(s, int | float) or isinstance(s, bool):
        return None
    return a.raised_at + timedelta(seconds=float(s))


def early_warning(alarms: Iterable[AlarmFact], now: datetime,
                  policy: HazardPolicy) -> list[HazardDraft]:
    horizon = now + timedelta(seconds=policy.early_warning_hazard_s)
    out: list[HazardDraft] = []
    for a in alarms:
        when = predicted_at(a) if a.alarm_class == "early_warning" and _counts(a) else None
        if when is not None and when <= horizon:
            out.append(HazardDraft(
                Source.RULE, f"{a.type} on {a.device_id}: limit predicted by "
                             f"{when.date().isoformat()}",
                site_id=a.site_id, category="fire_equipment",
                description=f"early warning {a.id}: {a.evidence}"[:4000],
                source_ref=f"rule:early_warning:{a.id}"))
    return out


def false_alarms(days: Iterable[FalseAlarmDay], policy: HazardPolicy) -> list[HazardDraft]:
    n = policy.false_alarms_per_day
    return [HazardDraft(
        Source.RULE, f"{d.count} false fire alarms on {d.day.isoformat()} (more than {n})",
        unit_id=d.unit_id, category="false_alarms",
        legal_basis="GB 50440: more than 5 equipment false alarms a day at one unit",
        source_ref=f"rule:false_alarms:{d.unit_id}:{d.day.isoformat()}")
        for d in days if d.count > n]


def work_order(orders: Iterable[LateOrder], now: datetime) -> list[HazardDraft]:
    return [HazardDraft(
        Source.RULE, f"Work order {o.id} past its repair deadline",
        site_id=o.site_id, category="maintenance",
        description=f"{o.title}; repair was due {o.repair_by.isoformat()}",
        legal_basis="GB 25201: the maintenance company repairs within the agreed time",
        source_ref=f"rule:work_order:{o.id}")
        for o in orders if o.state != "closed" and now > o.repair_by]


# The alarm rules, by name: the sweep runs each over the open alarms.
ALARM_RULES: dict[str, Callable[[Iterable[AlarmFact], datetime, HazardPolicy],
                                list[HazardDraft]]] = {
    "offline": offline,
    "fault": fault,
    "early_warning": early_warning,
}


def _span(d: timedelta) -> str:
    s = d.total_seconds()
    if s >= 86400 and s % 86400 == 0:
        return f"{int(s // 86400)} d"
    if s >= 3600:
        return f"{s / 3600:g} h"
    return f"{s:g} s"
