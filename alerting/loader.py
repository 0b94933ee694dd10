"""What the service reads from the database before it consumes anything, and the rule-state
write. Queries on tables alerting owns or reads (devices is the registry's).

`owns`, where given, says which devices this process serves (a partitioned worker serves only
the devices of its partitions, docs/scaling.md): (device id, site id) -> bool. The others are
neither loaded nor restored, so a worker's memory holds only its own share of the fleet."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from alerting.config import Override
from alerting.device import DeviceInfo
from alerting.modes import ModeWindow
from alerting.watch import WatchWindow
from firetower.alarms import Mode
from firetower.model import DeviceKind, Lifecycle
from firetower.watch import WatchError, parse_settings

log = logging.getLogger(__name__)

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


# The watch windows not ended and not cancelled, each with the sites it covers: a jurisdiction's
# whole subtree (the sites whose jurisdiction has it on its path) or its own list of sites.
_WATCH_WINDOWS = """
SELECT w.id, w.name, w.starts_at, w.ends_at, w.settings,
       CASE WHEN w.jurisdiction_id IS NULL THEN w.site_ids
            ELSE ARRAY(SELECT s.id FROM sites s JOIN jurisdictions j ON j.id = s.jurisdiction_id
                       WHERE j.path @> ARRAY[w.jurisdiction_id])
       END AS sites
FROM watch_windows w
WHERE w.cancelled_at IS NULL AND w.ends_at > now()
ORDER BY w.id
"""


async def watch_windows(conn: asyncpg.Connection | PoolConnectionProxy) -> list[WatchWindow]:
    """The watch windows current or to come (a window with refused settings is logged and left
    out: the API refuses them first, so that is a row written past it)."""
    out = []
    for r in await conn.fetch(_WATCH_WINDOWS):
        try:
            settings = parse_settings(r["settings"])
        except WatchError as exc:
            log.error("watch window %d (%s) refused: %s", r["id"], r["name"], exc)
            continue
        out.append(WatchWindow(r["id"], r["name"], r["starts_at"].timestamp(),
                               r["ends_at"].timestamp(), frozenset(r["sites"] or ()), settings))
    return out


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
