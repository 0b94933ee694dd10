"""One sweep of the loop (`firetower loop` runs it every `sweep_interval_s`): open and close
work orders, run the hazard rules, escalate overdue hazards. Every step is idempotent and reads
its facts from the database, so a sweep that dies half-way is finished by the next one and two
sweeps at once do each thing once.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg

from hazards import rules
from hazards.model import HazardDraft
from hazards.policy import DEFAULT_POLICY, HazardPolicy
from hazards.store import HazardRefused, create_hazard, escalate_due
from hazards.workorder_store import close_normal, open_orders

log = logging.getLogger("firetower.loop")

_OPEN_ALARMS_SQL = """
SELECT id, device_id, site_id, class, type, raised_at, mode, inhibited_by, evidence
FROM alarms
WHERE state IN ('active', 'acknowledged', 'verified')
  AND class IN ('offline', 'fault', 'early_warning') AND mode = 'normal' AND inhibited_by IS NULL
  AND NOT EXISTS (SELECT 1 FROM hazards h WHERE h.source = 'rule'
                  AND h.source_ref = 'rule:' || alarms.class || ':' || alarms.id)
ORDER BY raised_at
LIMIT $1"""

# False fire alarms per unit and calendar day (in the policy's time zone), for the last two
# days: a day is judged again until it has passed.
_FALSE_ALARMS_SQL = """
SELECT unit_id, day, n FROM (
    SELECT s.unit_id, (a.verdict_at AT TIME ZONE $1)::date AS day, count(*) AS n
    FROM alarms a JOIN sites s ON s.id = a.site_id
    WHERE a.class = 'fire' AND a.mode = 'normal' AND a.verdict IN ('false_alarm', 'nuisance')
      AND a.verdict_at >= $2::timestamptz - interval '2 days' AND s.unit_id IS NOT NULL
    GROUP BY 1, 2 HAVING count(*) > $3) d
WHERE NOT EXISTS (SELECT 1 FROM hazards h WHERE h.source = 'rule'
                  AND h.source_ref = 'rule:false_alarms:' || d.unit_id || ':' || d.day)"""

_LATE_ORDERS_SQL = """
SELECT id, site_id, title, repair_by, state FROM work_orders w
WHERE state <> 'closed' AND repair_by < $1
  AND NOT EXISTS (SELECT 1 FROM hazards h WHERE h.source = 'rule'
                  AND h.source_ref = 'rule:work_order:' || w.id)
ORDER BY repair_by LIMIT $2"""


@dataclass
class SweepReport:
    orders_opened: list[int] = field(default_factory=list)
    orders_closed: list[int] = field(default_factory=list)
    hazards_recorded: list[int] = field(default_factory=list)
    escalated: list[int] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


async def sweep(pool: asyncpg.Pool, *, now: datetime | None = None,
                policy: HazardPolicy = DEFAULT_POLICY, time_zone: str = "Asia/Shanghai",
                batch: int = 1000) -> SweepReport:
    t = now if now is not None else datetime.now(UTC)
    report = SweepReport()
    async with pool.acquire() as conn:
        report.orders_opened = await open_orders(conn, now=t, policy=policy, limit=batch)
        report.orders_closed = await close_normal(conn, now=t, limit=batch)
        drafts: list[HazardDraft] = []
        facts = [rules.AlarmFact(r["id"], r["device_id"], r["site_id"], r["class"], r["type"],
                                 r["raised_at"], r["mode"], r["inhibited_by"],
                                 _json(r["evidence"]))
                 for r in await conn.fetch(_OPEN_ALARMS_SQL, batch)]
        for rule in rules.ALARM_RULES.values():
            drafts += rule(facts, t, policy)
        days = [rules.FalseAlarmDay(r["unit_id"], r["day"], r["n"]) for r in
                await conn.fetch(_FALSE_ALARMS_SQL, time_zone, t, policy.false_alarms_per_day)]
        drafts += rules.false_alarms(days, policy)
        late = [rules.LateOrder(r["id"], r["site_id"], r["title"], r["repair_by"], r["state"])
                for r in await conn.fetch(_LATE_ORDERS_SQL, t, batch)]
        drafts += rules.work_order(late, t)
        for draft in drafts:
            try:
                actor = ":".join(draft.source_ref.split(":")[:2])  # 'rule:offline'
                report.hazards_recorded.append(
                    await create_hazard(conn, actor, draft, now=t, policy=policy))
            except HazardRefused as exc:  # e.g. a site deleted meanwhile: say so, go on
                report.refused.append(f"{draft.source_ref}: {exc}")
                log.warning("hazard rule %s refused: %s", draft.source_ref, exc)
        report.escalated = await escalate_due(conn, now=t, policy=policy, limit=batch)
    return report


def _json(v: object) -> dict[str, object]:
    if isinstance(v, str):
        v = json.loads(v)
    return v if isinstance(v, dict) else {}
