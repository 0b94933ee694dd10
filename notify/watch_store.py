"""The only writer of `watch_windows`, `work_prompts` and `prompt_receipts`.

A heightened-watch window (重大活动 / 节日安保) lays tighter settings (firetower/watch.py) over a
jurisdiction subtree or a list of sites for at most 31 days. Opening and cancelling one writes
its audit row and `NOTIFY firetower_alerting_config` in the same transaction, so the rule
engine reloads at once; `mark_bounds` (the notifier, every second) records when each window
was applied and reverted.

A work prompt (工作提示) goes to the responsible person of every unit with a site in a
jurisdiction subtree and to every grid member of the grids in it: one receipt row each, and a
notify job (kind 'prompt') with `NOTIFY firetower_notify` in the prompt's transaction (the
notifier sends it). `confirm_receipt` records the first reading.

Refusals are notify.duty_store's `Refused`: `missing` (404), `conflict` (409), else a rule of
the request (422).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from firetower.refusal import Conn, Refused, now_or
from firetower.watch import WatchError, parse_settings
from notify.duty_store import row_dict
from org.store import Actor, audit

MAX_WINDOW = timedelta(days=31)  # watch_windows' own check; said here with a reason
CONFIG_CHANNEL = "firetower_alerting_config"  # the rule engine reloads on it
NOTIFY_CHANNEL = "firetower_notify"           # the notifier picks up jobs on it
NOTIFIER = Actor(None, "notify")              # who applies and reverts windows in the audit log


# The sites a window covers ($1: the window id).
WINDOW_SITES_SQL = """
SELECT s.id FROM sites s, watch_windows w
WHERE w.id = $1 AND (s.id = ANY(w.site_ids) OR s.jurisdiction_id IN (
    SELECT j.id FROM jurisdictions j WHERE j.path @> ARRAY[w.jurisdiction_id]))
ORDER BY s.id"""


async def window_sites(conn: Conn, window_id: int) -> list[str]:
    return [r[0] for r in await conn.fetch(WINDOW_SITES_SQL, window_id)]


async def _changed(conn: Conn) -> None:
    await conn.execute("SELECT pg_notify($1, 'watch_windows')", CONFIG_CHANNEL)


async def open_window(conn: Conn, actor: Actor, *, name: str, reason: str,
                      starts_at: datetime, ends_at: datetime, jurisdiction_id: int | None,
                      site_ids: Sequence[str] | None, settings: object,
                      now: datetime | None = None) -> int:
    """A new window; its settings through firetower.watch.parse_settings (refused with its
    reason), its bounds checked: ends after it starts, lasts at most 31 days, not over yet."""
    t = now_or(now)
    try:
        parsed = parse_settings(settings)
    except WatchError as exc:
        raise Refused(f"settings: {exc}") from None
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise Refused("window times need a UTC offset")
    if ends_at <= starts_at:
        raise Refused("a watch window must end after it starts")
    if ends_at - starts_at > MAX_WINDOW:
        raise Refused("a watch window lasts at most 31 days")
    if ends_at <= t:
        raise Refused("a watch window cannot lie entirely in the past")
    if (jurisdiction_id is None) == (site_ids is None):
        raise Refused("a watch window covers a jurisdiction or a list of sites: give "
                           "exactly one of jurisdiction_id and site_ids")
    sites: list[str] | None = None
    if site_ids is not None:
        sites = sorted(set(site_ids))
        if not sites:
            raise Refused("site_ids: name at least one site")
        known = {r[0] for r in await conn.fetch("SELECT id FROM sites WHERE id = ANY($1::text[])",
                                                sites)}
        missing = [s for s in sites if s not in known]
        if missing:
            raise Refused(f"site {missing[0]} not found", missing=True)
    elif not await conn.fetchval("SELECT 1 FROM jurisdictions WHERE id = $1", jurisdiction_id):
        raise Refused(f"jurisdiction {jurisdiction_id} not found", missing=True)
    async with conn.transaction():
        row = await conn.fetchrow(
            "INSERT INTO watch_windows (name, reason, starts_at, ends_at, jurisdiction_id,"
            " site_ids, settings, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7,"
            " $8, $9) RETURNING *", name, reason, starts_at, ends_at, jurisdiction_id, sites,
            parsed.to_json(), actor.name, t)
        assert row is not None
        await audit(conn, actor, "create", "watch_window", row["id"], None, row_dict(row))
        await _changed(conn)
        return int(row["id"])


async def cancel_window(conn: Conn, actor: Actor, window_id: int, *,
                        now: datetime | None = None) -> None:
    """End a window now (cancelled_at): one not yet started never starts."""
    t = now_or(now)
    async with conn.transaction():
        before = await conn.fetchrow("SELECT * FROM watch_windows WHERE id = $1 FOR UPDATE",
                                     window_id)
        if before is None:
            raise Refused(f"watch window {window_id} not found", missing=True)
        if before["cancelled_at"] is not None:
            raise Refused(f"watch window {window_id} was already cancelled at "
                               f"{before['cancelled_at'].isoformat()}", conflict=True)
        if before["ends_at"] <= t:
            raise Refused(f"watch window {window_id} already ended at "
                               f"{before['ends_at'].isoformat()}", conflict=True)
        after = await conn.fetchrow(
            "UPDATE watch_windows SET cancelled_at = $2, cancelled_by = $3 WHERE id = $1"
            " RETURNING *", window_id, t, actor.name)
        await audit(conn, actor, "cancel", "watch_window", window_id, row_dict(before), row_dict(after))
        await _changed(conn)


async def mark_bounds(conn: Conn, now: datetime) -> list[tuple[int, str]]:
    """Record the windows that began (applied_at) and those that ended or were cancelled after
    being applied (reverted_at), each with an audit row by 'notify'. A window cancelled before
    it started is never applied. Returns (id, 'applied' | 'reverted'), applied first."""
    out: list[tuple[int, str]] = []
    async with conn.transaction():
        applied = await conn.fetch(
            "UPDATE watch_windows SET applied_at = $1 WHERE applied_at IS NULL"
            " AND cancelled_at IS NULL AND starts_at <= $1 AND ends_at > $1"
            " RETURNING id, starts_at, ends_at", now)
        for r in sorted(applied, key=lambda r: r["id"]):
            await audit(conn, NOTIFIER, "apply", "watch_window", r["id"], None,
                        {"applied_at": now, "starts_at": r["starts_at"], "ends_at": r["ends_at"]})
            out.append((r["id"], "applied"))
        reverted = await conn.fetch(
            "UPDATE watch_windows SET reverted_at = $1 WHERE applied_at IS NOT NULL"
            " AND reverted_at IS NULL AND (ends_at <= $1 OR cancelled_at <= $1)"
            " RETURNING id, ends_at, cancelled_at", now)
        for r in sorted(reverted, key=lambda r: r["id"]):
            await audit(conn, NOTIFIER, "revert", "watch_window", r["id"], None,
                        {"reverted_at": now, "ends_at": r["ends_at"],
                         "cancelled_at": r["cancelled_at"]})
            out.append((r["id"], "reverted"))
    return out


# Who a prompt for jurisdiction $1 goes to: the responsible person of each unit with a site in
# the subtree, and each grid member of the grids in it.
_RECIPIENTS_SQL = """
WITH sub AS (SELECT id FROM jurisdictions WHERE path @> ARRAY[$1::bigint])
SELECT 'unit_responsible' AS recipient, u.id AS ref_id, u.responsible_name AS name
FROM units u WHERE u.id IN (SELECT unit_id FROM sites WHERE jurisdiction_id IN (SELECT id FROM sub))
UNION ALL
SELECT 'grid_member', m.id, m.name FROM grid_members m WHERE m.grid_id IN (SELECT id FROM sub)
ORDER BY 1 DESC, 2"""


async def send_prompt(conn: Conn, actor: Actor, *, title: str, body: str, jurisdiction_id: int,
                      watch_id: int | None = None, now: datetime | None = None) -> int:
    """Write the prompt, its receipts and its notify job, in one transaction."""
    t = now_or(now)
    if not title.strip() or not body.strip():
        raise Refused("a work prompt needs a title and a body")
    if not await conn.fetchval("SELECT 1 FROM jurisdictions WHERE id = $1", jurisdiction_id):
        raise Refused(f"jurisdiction {jurisdiction_id} not found", missing=True)
    if watch_id is not None and not await conn.fetchval(
            "SELECT 1 FROM watch_windows WHERE id = $1", watch_id):
        raise Refused(f"watch window {watch_id} not found", missing=True)
    async with conn.transaction():
        pid = int(await conn.fetchval(
            "INSERT INTO work_prompts (title, body, jurisdiction_id, watch_id, created_by,"
            " created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            title, body, jurisdiction_id, watch_id, actor.name, t))
        await conn.execute(
            "INSERT INTO prompt_receipts (prompt_id, recipient, ref_id, name)"
            f" SELECT $2, recipient, ref_id, name FROM ({_RECIPIENTS_SQL}) r", jurisdiction_id,
            pid)
        await conn.execute("INSERT INTO notify_jobs (kind, prompt_id) VALUES ('prompt', $1)", pid)
        await conn.execute("SELECT pg_notify($1, 'job')", NOTIFY_CHANNEL)
        return pid


async def confirm_receipt(conn: Conn, receipt_id: int, via: str, *,
                          now: datetime | None = None) -> bool:
    """Record that the receipt's person read the prompt (`via`: 'console', or the channel of a
    signed link). True the first time; False when already read or when there is no such
    receipt (the first reading stands)."""
    row = await conn.fetchval(
        "UPDATE prompt_receipts SET read_at = $2, read_via = $3 WHERE id = $1 AND read_at IS NULL"
        " RETURNING id", receipt_id, now_or(now), via)
    return row is not None


def receipt_progress(rows: Sequence[Any]) -> tuple[int, int]:
    """(read, total) of receipt rows with a `read_at`."""
    return sum(r["read_at"] is not None for r in rows), len(rows)
