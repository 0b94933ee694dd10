"""The delivery log and manual replay (read and written by the API), and test pings."""

from __future__ import annotations

import re
from typing import Any

import asyncpg

from firetower.webhooks.payload import PING

CHANNEL = "firetower_webhooks"

# What a failed attempt is logged as. The log is shown to integrators, so it says what failed,
# never what the target answered nor an exception's text (which names hosts and port states):
# dispatch/transport.py::describe picks one of these, or "HTTP <status>".
NOT_ALLOWED = "address not allowed"
ERROR_TEXTS = frozenset({NOT_ALLOWED, "name not resolved", "timeout", "connection refused",
                         "connection failed", "connection lost", "TLS error",
                         "invalid HTTP answer", "request failed"})
NO_SECRET = ("no usable signing secret (expired, or sealed with a key that is neither"
             " FIRETOWER_SECRET_KEY nor a previous one)")
_HTTP = re.compile(r"HTTP (\d{3})(: not retried)?")


def public_error(error: str | None) -> str | None:
    """An attempt's error as integrators may see it. Rows written before these texts were
    fixed held the target's answer ("HTTP 500: <body>") or an exception's text: those are cut
    down to what failed."""
    if error is None or error in ERROR_TEXTS or error == NO_SECRET:
        return error
    http = _HTTP.match(error)
    if http is not None:
        return http.group(0) if http.group(0) == error else f"HTTP {http.group(1)}"
    if error.startswith("timeout"):
        return "timeout"
    return "request failed"

_DELIVERIES = """
SELECT d.id, d.endpoint_id, d.status, d.attempts, d.next_attempt_at, d.created_at,
       d.finished_at, d.last_status, d.last_error, d.replay_of,
       e.uid, e.type, e.alarm_id, e.occurred_at
FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id
WHERE d.endpoint_id = $1 AND ($2::text IS NULL OR d.status = $2)
  AND ($3::bigint IS NULL OR d.id < $3)
ORDER BY d.id DESC LIMIT $4
"""


async def deliveries(conn: asyncpg.Connection, endpoint_id: int, *, status: str | None = None,
                     before: int | None = None, limit: int = 100) -> list[asyncpg.Record]:
    return await conn.fetch(_DELIVERIES, endpoint_id, status, before, limit)


async def attempts(conn: asyncpg.Connection, endpoint_id: int,
                   delivery_id: int) -> list[asyncpg.Record] | None:
    """None when the delivery does not belong to the endpoint."""
    if not await conn.fetchval("SELECT 1 FROM webhook_deliveries WHERE id = $1"
                               " AND endpoint_id = $2", delivery_id, endpoint_id):
        return None
    return await conn.fetch(
        "SELECT id, at, duration_ms, status_code, error, outcome FROM webhook_attempts"
        " WHERE delivery_id = $1 ORDER BY id", delivery_id)


async def replay(conn: asyncpg.Connection, endpoint_id: int,
                 delivery_ids: list[int] | None = None,
                 status: tuple[str, ...] = ("dead", "rejected")) -> list[int]:
    """Queue the given deliveries again (or every dead or rejected one when `delivery_ids` is
    None), at the tail of the endpoint's queue, with the same event id (so a receiver that
    did get it drops the copy). Returns the new delivery ids."""
    async with conn.transaction():
        rows = await conn.fetch(
            "INSERT INTO webhook_deliveries (endpoint_id, event_id, replay_of)"
            " SELECT endpoint_id, event_id, id FROM webhook_deliveries"
            " WHERE endpoint_id = $1 AND ($2::bigint[] IS NULL OR id = ANY ($2))"
            " AND ($2::bigint[] IS NOT NULL OR status = ANY ($3::text[]))"
            " ORDER BY id RETURNING id", endpoint_id, delivery_ids, list(status))
        if delivery_ids is not None and len(rows) != len(set(delivery_ids)):
            raise LookupError("no such delivery for this endpoint")  # rolls the batch back
        if rows:
            await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, str(endpoint_id))
    return [r["id"] for r in rows]


async def ping(conn: asyncpg.Connection, endpoint_id: int, actor: str) -> int:
    """Queue a `webhook.ping` to one endpoint, through the same queue as alarm events."""
    data: dict[str, Any] = {"endpoint_id": endpoint_id, "requested_by": actor}
    async with conn.transaction():
        event_id = await conn.fetchval(
            "INSERT INTO webhook_events (type, data) VALUES ($1, $2) RETURNING id", PING, data)
        delivery_id: int = await conn.fetchval(
            "INSERT INTO webhook_deliveries (endpoint_id, event_id) VALUES ($1, $2) RETURNING id",
            endpoint_id, event_id)
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, str(endpoint_id))
    return delivery_id
