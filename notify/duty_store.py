"""The only writer of `duty_rosters`, `duty_shifts`, `duty_log` and `shift_handovers`.

A roster (值班表) belongs to the centre at a jurisdiction level (it covers the sites of that
subtree) or to a unit's control room (the unit's sites). Rosters and shifts are planned
(`duty:plan`), each change with its audit row; one user's shifts of a roster never overlap
(notify/rosters.py says when they do). The duty log (值班记录) is append-only; a hand-over
(交接班) records the alarms of the roster's sites still on the board as they stand, and a log
row of kind 'handover', in one transaction.

Refusals are `Refused`: `missing` (404), `conflict` (409), else a rule of the request (422);
notify/watch_store.py refuses with the same class, takes the same connection and clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from firetower.refusal import Conn, Refused, now_or
from notify.rosters import POSITIONS, Shift, clash
from org.store import Actor, audit

MAX_SHIFT = timedelta(days=7)  # duty_shifts' own check; said here with a reason


def row_dict(row: asyncpg.Record | None) -> dict[str, Any] | None:
    """A row as the audit log takes it."""
    return None if row is None else dict(row.items())


# The sites a roster covers ($1: the roster id).
ROSTER_SITES_SQL = """
SELECT s.id FROM sites s, duty_rosters r
WHERE r.id = $1 AND (s.unit_id = r.unit_id OR s.jurisdiction_id IN (
    SELECT j.id FROM jurisdictions j WHERE j.path @> ARRAY[r.jurisdiction_id]))
ORDER BY s.id"""

# What a hand-over lists: the roster's alarms still on the board (not closed), board order.
_OPEN_ALARMS_SQL = f"""
SELECT a.id, a.class, a.priority, a.state, a.site_id, s.name AS site_name, a.device_id,
       a.raised_at
FROM alarms a JOIN sites s ON s.id = a.site_id
WHERE a.state <> 'closed' AND a.site_id IN ({ROSTER_SITES_SQL})
ORDER BY a.priority, a.raised_at DESC, a.id"""


@dataclass(frozen=True, slots=True)
class Handover:
    id: int
    log_id: int
    open_alarms: list[dict[str, Any]]


async def roster_sites(conn: Conn, roster_id: int) -> list[str]:
    return [r[0] for r in await conn.fetch(ROSTER_SITES_SQL, roster_id)]


async def open_alarms(conn: Conn, roster_id: int) -> list[dict[str, Any]]:
    """The alarms a hand-over of this roster lists now: id, class, priority, state, site,
    device, raised_at (ISO 8601), most urgent first."""
    rows = await conn.fetch(_OPEN_ALARMS_SQL, roster_id)
    return [{"id": r["id"], "class": r["class"], "priority": r["priority"], "state": r["state"],
             "site_id": r["site_id"], "site_name": r["site_name"], "device_id": r["device_id"],
             "raised_at": r["raised_at"].isoformat()} for r in rows]


async def _roster(conn: Conn, roster_id: int, *, lock: bool = False) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT * FROM duty_rosters WHERE id = $1"
                              + (" FOR UPDATE" if lock else ""), roster_id)
    if row is None:
        raise Refused(f"roster {roster_id} not found", missing=True)
    return row


async def _check_owner(conn: Conn, jurisdiction_id: int | None, unit_id: int | None) -> None:
    if (jurisdiction_id is None) == (unit_id is None):
        raise Refused("a roster belongs to a jurisdiction or to a unit: give exactly one of "
                          "jurisdiction_id and unit_id")
    if jurisdiction_id is not None and not await conn.fetchval(
            "SELECT 1 FROM jurisdictions WHERE id = $1", jurisdiction_id):
        raise Refused(f"jurisdiction {jurisdiction_id} not found", missing=True)
    if unit_id is not None and not await conn.fetchval(
            "SELECT 1 FROM units WHERE id = $1", unit_id):
        raise Refused(f"unit {unit_id} not found", missing=True)


async def create_roster(conn: Conn, actor: Actor, *, name: str, jurisdiction_id: int | None,
                        unit_id: int | None) -> int:
    await _check_owner(conn, jurisdiction_id, unit_id)
    async with conn.transaction():
        row = await conn.fetchrow(
            "INSERT INTO duty_rosters (name, jurisdiction_id, unit_id) VALUES ($1, $2, $3)"
            " RETURNING *", name, jurisdiction_id, unit_id)
        assert row is not None
        await audit(conn, actor, "create", "duty_roster", row["id"], None, row_dict(row))
        return int(row["id"])


async def rename_roster(conn: Conn, actor: Actor, roster_id: int, name: str) -> None:
    async with conn.transaction():
        before = await _roster(conn, roster_id, lock=True)
        after = await conn.fetchrow("UPDATE duty_rosters SET name = $2 WHERE id = $1 RETURNING *",
                                    roster_id, name)
        await audit(conn, actor, "update", "duty_roster", roster_id, row_dict(before), row_dict(after))


async def delete_roster(conn: Conn, actor: Actor, roster_id: int) -> None:
    """A roster goes with its shifts, log and hand-overs (their audit row keeps the roster)."""
    async with conn.transaction():
        before = await _roster(conn, roster_id, lock=True)
        await conn.execute("DELETE FROM duty_rosters WHERE id = $1", roster_id)
        await audit(conn, actor, "delete", "duty_roster", roster_id, row_dict(before), None)


def _shift(r: asyncpg.Record) -> Shift:
    return Shift(r["id"], r["user_id"], r["position"], r["starts_at"], r["ends_at"])


async def shifts(conn: Conn, roster_id: int, start: datetime | None = None,
                 end: datetime | None = None) -> list[Shift]:
    """The roster's shifts overlapping [start, end) (all when not given), by start."""
    rows = await conn.fetch(
        "SELECT id, user_id, position, starts_at, ends_at FROM duty_shifts WHERE roster_id = $1"
        " AND ($2::timestamptz IS NULL OR ends_at > $2)"
        " AND ($3::timestamptz IS NULL OR starts_at < $3) ORDER BY starts_at, id",
        roster_id, start, end)
    return [_shift(r) for r in rows]


async def _check_shift(conn: Conn, roster_id: int, user_id: int, position: str,
                       starts_at: datetime, ends_at: datetime, ignore: int | None) -> None:
    """In the roster's transaction, the roster row locked: the rules of a shift."""
    if position not in POSITIONS:
        raise Refused(f"position must be one of {', '.join(POSITIONS)}, not {position!r}")
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise Refused("shift times need a UTC offset")
    if ends_at <= starts_at:
        raise Refused("a shift must end after it starts")
    if ends_at - starts_at > MAX_SHIFT:
        raise Refused("a shift lasts at most 7 days")
    user = await conn.fetchrow("SELECT name, active FROM users WHERE id = $1", user_id)
    if user is None:
        raise Refused(f"user {user_id} does not exist", missing=True)
    if not user["active"]:
        raise Refused(f"user {user['name']} is disabled: a disabled user cannot be on duty")
    hit = clash(await shifts(conn, roster_id, starts_at, ends_at), user_id, starts_at, ends_at,
                ignore=ignore)
    if hit is not None:
        raise Refused(
            f"user {user['name']} already has shift {hit.id} ({hit.position}, "
            f"{hit.starts_at.isoformat()} to {hit.ends_at.isoformat()}) on this roster: "
            "one person's shifts of a roster may not overlap", conflict=True)


async def add_shift(conn: Conn, actor: Actor, roster_id: int, *, user_id: int, position: str,
                    starts_at: datetime, ends_at: datetime) -> int:
    async with conn.transaction():
        await _roster(conn, roster_id, lock=True)  # one shift change of a roster at a time
        await _check_shift(conn, roster_id, user_id, position, starts_at, ends_at, None)
        row = await conn.fetchrow(
            "INSERT INTO duty_shifts (roster_id, user_id, position, starts_at, ends_at)"
            " VALUES ($1, $2, $3, $4, $5) RETURNING *",
            roster_id, user_id, position, starts_at, ends_at)
        assert row is not None
        await audit(conn, actor, "create", "duty_shift", row["id"], None, row_dict(row))
        return int(row["id"])


async def _shift_row(conn: Conn, roster_id: int, shift_id: int) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT * FROM duty_shifts WHERE id = $1 AND roster_id = $2",
                              shift_id, roster_id)
    if row is None:
        raise Refused(f"shift {shift_id} not found on roster {roster_id}", missing=True)
    return row


async def change_shift(conn: Conn, actor: Actor, roster_id: int, shift_id: int, *,
                       user_id: int | None = None, position: str | None = None,
                       starts_at: datetime | None = None,
                       ends_at: datetime | None = None) -> None:
    """Change what is given of a shift; the result is checked like a new shift."""
    async with conn.transaction():
        await _roster(conn, roster_id, lock=True)
        before = await _shift_row(conn, roster_id, shift_id)
        new = (before["user_id"] if user_id is None else user_id,
               before["position"] if position is None else position,
               before["starts_at"] if starts_at is None else starts_at,
               before["ends_at"] if ends_at is None else ends_at)
        await _check_shift(conn, roster_id, *new, ignore=shift_id)
        after = await conn.fetchrow(
            "UPDATE duty_shifts SET user_id = $2, position = $3, starts_at = $4, ends_at = $5"
            " WHERE id = $1 RETURNING *", shift_id, *new)
        await audit(conn, actor, "update", "duty_shift", shift_id, row_dict(before), row_dict(after))


async def delete_shift(conn: Conn, actor: Actor, roster_id: int, shift_id: int) -> None:
    async with conn.transaction():
        await _roster(conn, roster_id, lock=True)
        before = await _shift_row(conn, roster_id, shift_id)
        await conn.execute("DELETE FROM duty_shifts WHERE id = $1", shift_id)
        await audit(conn, actor, "delete", "duty_shift", shift_id, row_dict(before), None)


async def log_note(conn: Conn, roster_id: int, actor: str, text: str, *,
                   now: datetime | None = None) -> int:
    """Append a note to the roster's duty log."""
    if not text.strip():
        raise Refused("a duty-log note needs some text")
    async with conn.transaction():
        await _roster(conn, roster_id)
        return int(await conn.fetchval(
            "INSERT INTO duty_log (roster_id, at, actor, kind, text) VALUES ($1, $2, $3, 'note',"
            " $4) RETURNING id", roster_id, now_or(now), actor, text))


async def hand_over(conn: Conn, roster_id: int, *, from_user_id: int, to_user_id: int,
                    note: str, actor: str, now: datetime | None = None) -> Handover:
    """`from_user_id` hands the roster's duty over to `to_user_id`: the record lists the alarms
    of the roster's sites still on the board, as they stand; a 'handover' row in the log."""
    t = now_or(now)
    if to_user_id == from_user_id:
        raise Refused("a shift is handed over to another user, not to oneself")
    async with conn.transaction():
        await _roster(conn, roster_id, lock=True)
        to = await conn.fetchrow("SELECT name, active FROM users WHERE id = $1", to_user_id)
        if to is None:
            raise Refused(f"user {to_user_id} does not exist", missing=True)
        if not to["active"]:
            raise Refused(f"user {to['name']} is disabled: hand over to an active user")
        alarms = await open_alarms(conn, roster_id)
        hid = await conn.fetchval(
            "INSERT INTO shift_handovers (roster_id, at, from_user_id, to_user_id, open_alarms,"
            " note) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            roster_id, t, from_user_id, to_user_id, alarms, note)
        fires = sum(a["class"] == "fire" for a in alarms)
        text = (f"handed over to {to['name']}: {len(alarms)} open alarm"
                f"{'' if len(alarms) == 1 else 's'}" + (f" ({fires} fire)" if fires else "")
                + (f". {note}" if note.strip() else ""))
        log_id = await conn.fetchval(
            "INSERT INTO duty_log (roster_id, at, actor, kind, text) VALUES ($1, $2, $3,"
            " 'handover', $4) RETURNING id", roster_id, t, actor, text[:4000])
        return Handover(int(hid), int(log_id), alarms)
