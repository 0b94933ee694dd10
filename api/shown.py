"""The "shown" latency clock: the first time an alarm reached a warning-centre operator.

An alarm counts as shown when it is sent to a user who may handle alarms (an operator or an
admin: `Permission.ALARM_HANDLE`), on the live stream (snapshot or change) or in the board list
or detail. Site managers and installers seeing their own site's alarm do not start the centre's
response, so they do not count. Only the first showing is kept (`shown_at`, `shown_to`),
written by `AlarmStore.mark_shown` (the one alarm write path).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import datetime

import asyncpg

from api.deps import Principal
from api.permissions import Permission
from firetower.alarm_store import AlarmStore

log = logging.getLogger(__name__)

def unshown(alarms: Iterable[dict | object]) -> list[int]:
    """Ids of the alarms (public models or their JSON dicts) with no shown clock yet."""
    ids = []
    for a in alarms:
        if isinstance(a, dict):
            if a.get("shown_at") is None and a.get("id") is not None:
                ids.append(a["id"])
        elif getattr(a, "shown_at", 1) is None:
            ids.append(a.id)  # type: ignore[attr-defined]
    return ids


# Recordings in flight: a task of its own each, so a client that disconnects right after
# the frame (which cancels the stream's task) does not lose the clock.
_PENDING: set[asyncio.Task[None]] = set()


def mark_shown(pool: asyncpg.Pool, ids: list[int], user: Principal, at: datetime) -> None:
    """Record, in the background, that `user` was shown these alarms at `at` (the time they
    were sent), without delaying the next frame or response."""
    if not ids or not user.can(Permission.ALARM_HANDLE):
        return
    task = asyncio.create_task(_record(pool, ids, user.name, at), name="mark-shown")
    _PENDING.add(task)
    task.add_done_callback(_PENDING.discard)


async def _record(pool: asyncpg.Pool, ids: list[int], name: str, at: datetime) -> None:
    """A failure is logged and never breaks anything: the clock is lost, not the alarm."""
    try:
        await AlarmStore(pool).mark_shown(ids, at=at, to=name)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        log.warning("could not record shown_at for %d alarms: %s", len(ids), exc)
