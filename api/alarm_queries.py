"""Read-only alarm queries: the board list, one alarm with its timeline, and the rows the live
stream sends. Alarm writes go through `firetower.alarm_store`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from api.latency import limits, stages
from api.schemas import AlarmDetail, AlarmEventPublic, AlarmPublic

# The current assignee is the latest `assign` event of the alarm (the log is the record).
SELECT_ALARMS = """
SELECT a.id, a.device_id, a.site_id, s.name AS site_name, a.point, a.zone, a.type, a.class,
       a.priority, a.state, a.verdict, a.confidence, a.mode, a.count, a.raised_at, a.last_at,
       a.received_at, a.stored_at, a.acknowledged_at, a.acknowledged_by, a.verdict_at,
       a.verdict_by, a.cleared_at, a.closed_at, a.updated_at, a.evidence,
       a.device_ts, a.ingested_at, a.shown_at, a.shown_to, a.forwarded_at, a.forward_basis,
       a.delivered_at, a.inhibited_by, a.group_key,
       d.location, d.floor_id, d.x, d.y, d.kind AS device_kind, d.parent_id,
       (SELECT e.details->>'assignee' FROM alarm_events e
         WHERE e.alarm_id = a.id AND e.kind = 'assign' ORDER BY e.id DESC LIMIT 1) AS assignee,
       s.unit_id, u.name AS unit_name,
       coalesce((SELECT array_agg(j.name ORDER BY array_position(sj.path, j.id))
                   FROM jurisdictions sj JOIN jurisdictions j ON j.id = ANY (sj.path)
                  WHERE sj.id = s.jurisdiction_id), '{}') AS jurisdiction_path
FROM alarms a
LEFT JOIN devices d ON d.id = a.device_id
LEFT JOIN sites s ON s.id = a.site_id
LEFT JOIN units u ON u.id = s.unit_id
"""
# Board order: fire > supervisory > fault > offline > early warning, then newest first.
BOARD_ORDER = "ORDER BY a.priority, a.raised_at DESC, a.id DESC"
SCOPE = "($1::text[] IS NULL OR a.site_id = ANY($1))"


def alarm(row: Any) -> AlarmPublic:
    return AlarmPublic.model_validate(dict(row))


async def list_alarms(pool: asyncpg.Pool, sites: list[str] | None, *,
                      classes: list[str] | None, states: list[str] | None,
                      site_id: str | None, device_id: str | None, unfinished: bool | None,
                      since: datetime | None, until: datetime | None, limit: int,
                      offset: int) -> tuple[list[AlarmPublic], int]:
    where = (f"{SCOPE} AND ($2::text[] IS NULL OR a.class = ANY($2)) "
             "AND ($3::text[] IS NULL OR a.state = ANY($3)) "
             "AND ($4::text IS NULL OR a.site_id = $4) AND ($5::text IS NULL OR a.device_id = $5) "
             "AND ($6::boolean IS NULL OR (a.state <> 'closed') = $6) "
             "AND ($7::timestamptz IS NULL OR a.raised_at >= $7) "
             "AND ($8::timestamptz IS NULL OR a.raised_at < $8)")
    args = (sites, classes, states, site_id, device_id, unfinished, since, until)
    rows = await pool.fetch(f"{SELECT_ALARMS} WHERE {where} {BOARD_ORDER} "
                            f"LIMIT {int(limit)} OFFSET {int(offset)}", *args)
    total = await pool.fetchval(f"SELECT count(*) FROM alarms a WHERE {where}", *args)
    return [alarm(r) for r in rows], total


async def unfinished_alarms(conn: asyncpg.Connection, sites: list[str] | None,
                            ) -> list[AlarmPublic]:
    """Every alarm not yet closed: what the board shows, in board order."""
    rows = await conn.fetch(f"{SELECT_ALARMS} WHERE {SCOPE} AND a.state <> 'closed' "
                            f"{BOARD_ORDER}", sites)
    return [alarm(r) for r in rows]


async def alarms_by_id(conn: asyncpg.Connection | asyncpg.Pool,
                       ids: list[int]) -> dict[int, AlarmPublic]:
    rows = await conn.fetch(f"{SELECT_ALARMS} WHERE a.id = ANY($1)", ids)
    return {r["id"]: alarm(r) for r in rows}


def event(row: Any) -> AlarmEventPublic:
    return AlarmEventPublic(id=row["id"], alarm_id=row["alarm_id"], at=row["at"],
                            kind=row["kind"], from_state=row["from_state"],
                            to_state=row["to_state"], actor=row["actor"], reason=row["reason"],
                            details=row["details"] or {})


async def alarm_detail(pool: asyncpg.Pool, sites: list[str] | None,
                       alarm_id: int) -> AlarmDetail | None:
    row = await pool.fetchrow(f"{SELECT_ALARMS} WHERE {SCOPE} AND a.id = $2", sites, alarm_id)
    if row is None:
        return None
    events = await pool.fetch("SELECT * FROM alarm_events WHERE alarm_id = $1 ORDER BY id",
                              alarm_id)
    data = dict(row)
    return AlarmDetail.model_validate(data | {"events": [event(e) for e in events],
                                              "latency": stages(data),
                                              "limits": limits(data, datetime.now(UTC))})
