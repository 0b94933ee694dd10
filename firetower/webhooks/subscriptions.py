"""Subscription storage: endpoints, their filters and their sealed signing secrets.

Used by the API router (create, change, rotate) and by the dispatcher (active keys). A secret
is shown once, when created or rotated; afterwards only the dispatcher can unseal it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import asyncpg

from firetower.webhooks.secretbox import SealError, SecretBox
from firetower.webhooks.signing import new_secret, secret_key

FILTER_FIELDS = ("event_types", "classes", "max_priority", "site_ids", "jurisdictions",
                 "verdicts", "modes")
FIELDS = ("name", "url", "enabled", *FILTER_FIELDS)
COLUMNS = ("id, name, url, enabled, event_types, classes, max_priority, site_ids, jurisdictions,"
           " verdicts, modes, owner_id, created_at, updated_at, consecutive_failures,"
           " failing_since, last_success_at, last_error")


class EndpointNotFound(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class ActiveKey:
    key: bytes
    expires_at: datetime | None


async def create(conn: asyncpg.Connection, box: SecretBox, values: dict[str, Any],
                 owner_id: int | None) -> tuple[asyncpg.Record, str]:
    """Insert an endpoint and its first secret; returns (row, the secret in clear)."""
    cols = [f for f in FIELDS if f in values]
    secret = new_secret()
    async with conn.transaction():
        # INSERT ... RETURNING always returns its row
        row = cast(asyncpg.Record, await conn.fetchrow(
            f"INSERT INTO webhook_endpoints ({', '.join([*cols, 'owner_id'])})"
            f" VALUES ({', '.join(f'${i}' for i in range(1, len(cols) + 2))})"
            f" RETURNING {COLUMNS}", *(values[c] for c in cols), owner_id))
        await conn.execute("INSERT INTO webhook_secrets (endpoint_id, sealed) VALUES ($1, $2)",
                           row["id"], box.seal(secret))
    return row, secret


def _scope(owner_id: int | None) -> str:
    return "" if owner_id is None else " AND owner_id = $2"


async def get(conn: asyncpg.Connection, endpoint_id: int,
              owner_id: int | None = None) -> asyncpg.Record:
    """owner_id: restrict to one owner's endpoints (integration accounts); None = all."""
    args: list[Any] = [endpoint_id] + ([] if owner_id is None else [owner_id])
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM webhook_endpoints WHERE id = $1{_scope(owner_id)}", *args)
    if row is None:
        raise EndpointNotFound(f"no webhook endpoint {endpoint_id}")
    return row


async def list_(conn: asyncpg.Connection, owner_id: int | None = None) -> list[asyncpg.Record]:
    if owner_id is None:
        return await conn.fetch(f"SELECT {COLUMNS} FROM webhook_endpoints ORDER BY id")
    return await conn.fetch(
        f"SELECT {COLUMNS} FROM webhook_endpoints WHERE owner_id = $1 ORDER BY id", owner_id)


async def update(conn: asyncpg.Connection, endpoint_id: int, values: dict[str, Any],
                 owner_id: int | None = None) -> asyncpg.Record:
    await get(conn, endpoint_id, owner_id)
    cols = [f for f in FIELDS if f in values]
    if not cols:
        return await get(conn, endpoint_id)
    sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(cols, start=2))
    # `get` above raised if the endpoint does not exist
    return cast(asyncpg.Record, await conn.fetchrow(
        f"UPDATE webhook_endpoints SET {sets}, updated_at = now() WHERE id = $1"
        f" RETURNING {COLUMNS}", endpoint_id, *(values[c] for c in cols)))


async def delete(conn: asyncpg.Connection, endpoint_id: int, owner_id: int | None = None) -> None:
    await get(conn, endpoint_id, owner_id)
    await conn.execute("DELETE FROM webhook_endpoints WHERE id = $1", endpoint_id)


async def rotate(conn: asyncpg.Connection, box: SecretBox, endpoint_id: int, overlap_s: float,
                 owner_id: int | None = None) -> tuple[str, datetime]:
    """Add a new secret; the current ones stay valid for `overlap_s` more seconds (receivers
    switch within that window: meanwhile every message carries one signature per secret)."""
    await get(conn, endpoint_id, owner_id)
    secret = new_secret()
    until = datetime.now(UTC) + timedelta(seconds=overlap_s)
    async with conn.transaction():
        await conn.execute(
            "UPDATE webhook_secrets SET expires_at = least(coalesce(expires_at, $2), $2)"
            " WHERE endpoint_id = $1", endpoint_id, until)
        await conn.execute("INSERT INTO webhook_secrets (endpoint_id, sealed) VALUES ($1, $2)",
                           endpoint_id, box.seal(secret))
    return secret, until


async def active_keys(conn: asyncpg.Connection | asyncpg.Pool, box: SecretBox,
                      endpoint_id: int) -> list[ActiveKey]:
    rows = await conn.fetch(
        "SELECT sealed, expires_at FROM webhook_secrets WHERE endpoint_id = $1"
        " AND (expires_at IS NULL OR expires_at > now()) ORDER BY id DESC", endpoint_id)
    return [ActiveKey(secret_key(box.open(r["sealed"])), r["expires_at"]) for r in rows]


async def reseal(conn: asyncpg.Connection | asyncpg.Pool, box: SecretBox) -> tuple[int, int]:
    """Re-seal every stored secret that is in the old format or sealed with a previous key
    under the current key (the migration and the end of a key rotation). Returns (re-sealed,
    unreadable); an unreadable row is left as it is (its endpoint's deliveries wait)."""
    done = failed = 0
    for r in await conn.fetch("SELECT id, sealed FROM webhook_secrets ORDER BY id"):
        if not box.stale(r["sealed"]):
            continue
        try:
            fresh = box.seal(box.open(r["sealed"]))
        except SealError:
            failed += 1
            continue
        # Only if unchanged meanwhile (another process may have re-sealed or rotated it).
        done += await conn.fetchval(
            "WITH u AS (UPDATE webhook_secrets SET sealed = $2 WHERE id = $1 AND sealed = $3"
            " RETURNING 1) SELECT count(*) FROM u", r["id"], fresh, r["sealed"])
    return done, failed
