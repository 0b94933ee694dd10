"""Comments and assignment: alarm annotations that change no state.

`firetower.alarm_store` has no call for these, so this module appends them to the same
append-only `alarm_events` log in the same way (row lock on the alarm, event row, NOTIFY on
`firetower_alarm_events` in one transaction), so the timeline and the live stream carry them.
It writes no `alarms` column: the current assignee is the latest `assign` event.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from firetower.alarm_store import CHANNEL, AlarmNotFound


async def _append(pool: asyncpg.Pool, alarm_id: int, kind: str, actor: str, reason: str,
                  details: dict[str, Any]) -> int:
    async with pool.acquire() as conn, conn.transaction():
        state = await conn.fetchval("SELECT state FROM alarms WHERE id = $1 FOR UPDATE",
                                    alarm_id)
        if state is None:
            raise AlarmNotFound(f"no alarm {alarm_id}")
        event_id = await conn.fetchval(
            "INSERT INTO alarm_events (alarm_id, kind, from_state, to_state, actor, reason,"
            " details) VALUES ($1, $2, $3, $3, $4, $5, $6) RETURNING id",
            alarm_id, kind, state, actor, reason, details)
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, str(event_id))
        return event_id


async def comment(pool: asyncpg.Pool, alarm_id: int, actor: str, text: str) -> int:
    return await _append(pool, alarm_id, "comment", actor, text, {})


async def assign(pool: asyncpg.Pool, alarm_id: int, actor: str, assignee: str | None) -> int:
    return await _append(pool, alarm_id, "assign", actor,
                         f"assigned to {assignee}" if assignee else "unassigned",
                         {"assignee": assignee})
