"""What the service reads from the database before it consumes anything, and the rule-state
write. Queries on tables alerting owns or reads (devices is the registry's).

`owns`, where given, says which devices this process serves (a partitioned worker serves only
the devices of its partitions, docs/scaling.md): (device id, site id) -> bool. The others are
neither loaded nor restored, so a worker's memory holds only its own share of the fleet."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import asyncpg

from alerting.config import Override
from alerting.device import DeviceInfo
from alerting.modes import ModeWindow
from firetower.alarms import Mode
from firetower.model import DeviceKind, Lifecycle

DeviceFilter = Callable[[str, str | None], bool]


async def devices(conn: asyncpg.Connection, ids: list[str] | None = None,
                  owns: DeviceFilter | None = None
                  ) -> tuple[list[DeviceInfo], dict[str, Lifecycle]]:
    q = ("SELECT id, kind, site_id, parent_id, zone, location, lifecycle FROM devices"
         " WHERE lifecycle <> 'decommissioned'")
    rows = await (conn.fetch(q + " AND id = ANY($1)", ids) if ids is not None
                  else conn.fetch(q))
    if owns is not None:
        rows = [r for r in rows if owns(r["id"], r["site_id"])]
    infos = [DeviceInfo(r["id"], DeviceKind(r["kind"]), r["site_id"], r["parent_id"], r["zone"],
                        r["location"] or "") for r in rows]
    return infos, {r["id"]: Lifecycle(r["lifecycle"]) for r in rows}


async def overrides(conn: asyncpg.Connection) -> list[Override]:
    rows = await conn.fetch("SELECT scope, target, rule, params FROM rule_overrides ORDER BY id")
    return [Override(r["scope"], r["target"], r["rule"], r["params"]) for r in rows]


async def modes(conn: asyncpg.Connection) -> list[ModeWindow]:
    rows = await conn.fetch(
        "SELECT scope, target, point, mode, owner, reason, starts_at, expires_at FROM modes"
        " WHERE ended_at IS NULL AND (expires_at IS NULL OR expires_at > now())")
    return [ModeWindow(r["scope"], r["target"], r["point"], Mode(r["mode"]), r["owner"],
                       r["reason"], r["starts_at"].timestamp(),
                       r["expires_at"].timestamp() if r["expires_at"] else None) for r in rows]


async def rule_states(conn: asyncpg.Connection, owns: DeviceFilter | None = None
                      ) -> dict[str, bytes]:
    if owns is None:
        return {r["device_id"]: r["state"] for r in
                await conn.fetch("SELECT device_id, state FROM rule_state")}
    rows = await conn.fetch("SELECT r.device_id, r.state, d.site_id FROM rule_state r"
                            " LEFT JOIN devices d ON d.id = r.device_id")
    return {r["device_id"]: r["state"] for r in rows if owns(r["device_id"], r["site_id"])}


async def save_rule_states(conn: asyncpg.Connection, items: list[tuple[str, bytes]]) -> None:
    await conn.execute(
        "INSERT INTO rule_state (device_id, state, updated_at)"
        " SELECT * , now() FROM unnest($1::text[], $2::bytea[])"
        " ON CONFLICT (device_id) DO UPDATE SET state = EXCLUDED.state, updated_at = now()",
        [i for i, _ in items], [b for _, b in items])


def open_keys(rows: list[asyncpg.Record]) -> tuple[
        list[tuple[str, str, str]], dict[tuple[str, str, str], tuple[float, str]]]:
    """The keys of the open alarms, and for fires (raised at, source) for the zone index."""
    keys = [(r["device_id"], r["point"], r["type"]) for r in rows]
    fires = {(r["device_id"], r["point"], r["type"]):
             (_ts(r["raised_at"]), (r["evidence"] or {}).get("location") or "")
             for r in rows if r["class"] == "fire"}
    return keys, fires


def _ts(value: datetime) -> float:
    return value.timestamp()
