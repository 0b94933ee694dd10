"""Shared by the integration tests: registering devices, overrides, reading alarms."""

from __future__ import annotations

from typing import Any

import asyncpg

from firetower import db


async def register(url: str, devices: list[tuple[str, str, str | None, int | None]],
                   overrides: list[tuple[str, str, str, dict[str, Any]]] = (),  # type: ignore[assignment]
                   lifecycle: str = "in_service") -> None:
    """devices: (id, kind, parent, zone); overrides: (scope, target, rule, params)."""
    conn = await db.connect(url)
    try:
        await conn.execute("INSERT INTO sites (id, name) VALUES ('s1', 'Site 1') "
                           "ON CONFLICT DO NOTHING")
        for dev, kind, parent, zone in devices:
            await conn.execute(
                "INSERT INTO devices (id, kind, site_id, parent_id, zone, lifecycle)"
                " VALUES ($1, $2, 's1', $3, $4, $5)", dev, kind, parent, zone, lifecycle)
        for scope, target, rule, params in overrides:
            await conn.execute("INSERT INTO rule_overrides (scope, target, rule, params)"
                               " VALUES ($1, $2, $3, $4)", scope, target, rule, params)
    finally:
        await conn.close()


async def alarms(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM alarms ORDER BY id")
