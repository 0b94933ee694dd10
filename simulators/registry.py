"""Register a simulated fleet in the device registry (`sites`, `devices`).

Rows are COPied into temporary tables and inserted with ON CONFLICT DO NOTHING, in one
transaction: idempotent, and fast for 100,000+ devices. Existing rows are left as they are
(an installer may have decommissioned a device since).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

import asyncpg

from firetower import db
from firetower.model import DeviceKind, Lifecycle
from simulators.fleet import Fleet
from simulators.physics import SprinklerModel
from simulators.stream import Simulation

Override: TypeAlias = tuple[str, str, str, dict[str, Any]]   # scope, target, rule, params


def rule_overrides(sim: Simulation) -> list[Override]:
    """The settings an installer enters for each sprinkler pressure sensor: the system's
    low-pressure switch point and its jockey pump's cut-in (without the cut-in the centre
    cannot tell a leak from the pump's normal decline between starts)."""
    out: list[Override] = []
    for d in sim.fleet.of_kind(DeviceKind.SPRINKLER_PRESSURE):
        m = sim.model(d.id)
        assert isinstance(m, SprinklerModel)
        out.append(("device", d.id, "sprinkler",
                    {"min_kpa": round(m.low_kpa, 1), "cut_in_kpa": round(m.cut_in_kpa, 1)}))
    return out


@dataclass(frozen=True)
class Registered:
    sites: int     # newly inserted
    devices: int   # newly inserted


async def register_fleet(target: str | asyncpg.Pool | asyncpg.Connection,
                         fleet: Fleet) -> Registered:
    """Insert the fleet's sites and devices (lifecycle in_service) unless already present."""
    if isinstance(target, str):
        conn = await db.connect(target)
        try:
            return await _register(conn, fleet)
        finally:
            await conn.close()
    if isinstance(target, asyncpg.Pool):
        async with target.acquire() as conn:
            return await _register(conn, fleet)
    return await _register(target, fleet)


async def _register(conn: asyncpg.Connection, fleet: Fleet) -> Registered:
    sites = [(s.id, s.name, s.address) for s in fleet.sites]
    # panels first: a detector's parent must exist when its row is checked
    devices = sorted(((d.id, d.kind.value, d.site_id, d.parent_id, d.zone, d.location)
                      for d in fleet.devices), key=lambda r: r[3] is not None)
    async with conn.transaction():
        await conn.execute(
            "CREATE TEMP TABLE sim_sites (id text, name text, address text) ON COMMIT DROP;"
            "CREATE TEMP TABLE sim_devices (id text, kind text, site_id text, parent_id text,"
            " zone integer, location text, ord serial) ON COMMIT DROP")
        await conn.copy_records_to_table("sim_sites", records=sites,
                                         columns=["id", "name", "address"])
        await conn.copy_records_to_table(
            "sim_devices", records=devices,
            columns=["id", "kind", "site_id", "parent_id", "zone", "location"])
        site_status = await conn.execute(
            "INSERT INTO sites (id, name, address) SELECT id, name, address FROM sim_sites "
            "ON CONFLICT (id) DO NOTHING")
        device_status = await conn.execute(
            "INSERT INTO devices (id, kind, site_id, parent_id, zone, location, lifecycle) "
            "SELECT id, kind, site_id, parent_id, zone, location, $1 FROM sim_devices "
            "ORDER BY ord ON CONFLICT (id) DO NOTHING", Lifecycle.IN_SERVICE.value)
    return Registered(_count(site_status), _count(device_status))


def _count(status: str) -> int:
    """'INSERT 0 123' -> 123."""
    return int(status.rsplit(" ", 1)[-1])
