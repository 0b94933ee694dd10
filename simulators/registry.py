"""Register a simulated fleet: sites with what an operator needs to act on them, floors with
their plans, devices placed on them, and the installer's sprinkler settings.

What is written (simulators/sites.py and floorplan.py make it, deterministic from the seed):
- `sites`: name, full address, coordinates, contacts, fire plan (building notes, entrances,
  water sources, hazards);
- `floors`: one per storey with devices, its SVG plan (`plan_type` image/svg+xml);
- `devices`: kind, site, parent (every field device hangs off its site's panel, so an offline
  panel inhibits their offline alarms), zone, location, floor and spot (x/y fractions of
  the plan), in service;
- `rule_overrides`: per sprinkler pressure sensor, its system's low-pressure switch point and
  jockey cut-in, as an installer enters them.

Rows are COPied into temporary tables and inserted with ON CONFLICT DO NOTHING, in one
transaction: idempotent, and fast for 100,000+ devices. Existing rows are left as they are
(an installer may have decommissioned or moved a device since), except that what is missing
is filled in: a demo site registered before sites had details gets them, a floor without a
plan gets its plan, a device without a placement or a field device without a parent gets
them. Nothing someone entered is overwritten.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeAlias

import asyncpg

from firetower import db
from firetower.model import DeviceKind, Lifecycle
from simulators.fleet import Fleet
from simulators.physics import SprinklerModel, model_for
from simulators.sites import site_details

Override: TypeAlias = tuple[str, str, str, dict[str, Any]]   # scope, target, rule, params
PLAN_TYPE = "image/svg+xml"
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)   # a model's switch settings do not depend on it


def rule_overrides(fleet: Fleet) -> list[Override]:
    """The settings an installer enters for each sprinkler pressure sensor: the system's
    low-pressure switch point and its jockey pump's cut-in (without the cut-in the centre
    cannot tell a leak from the pump's normal decline between starts). They depend on the
    fleet's seed and the device only."""
    out: list[Override] = []
    for d in fleet.of_kind(DeviceKind.SPRINKLER_PRESSURE):
        m = model_for(d, fleet.seed, _EPOCH)
        assert isinstance(m, SprinklerModel)
        out.append(("device", d.id, "sprinkler",
                    {"min_kpa": round(m.low_kpa, 1), "cut_in_kpa": round(m.cut_in_kpa, 1)}))
    return out


@dataclass(frozen=True)
class Registered:
    sites: int     # newly inserted
    devices: int   # newly inserted
    floors: int = 0
    details_filled: int = 0   # existing sites, floors, devices given what they lacked


async def register_fleet(target: str | asyncpg.Pool | asyncpg.Connection,
                         fleet: Fleet) -> Registered:
    """Insert the fleet (devices in_service) unless already present; fill in what is missing."""
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


_TEMP = """
CREATE TEMP TABLE sim_sites (id text, name text, address text, latitude float8,
    longitude float8, contacts text, fire_plan text) ON COMMIT DROP;
CREATE TEMP TABLE sim_floors (site_id text, id text, name text, level integer,
    plan_image bytea) ON COMMIT DROP;
CREATE TEMP TABLE sim_devices (id text, kind text, site_id text, parent_id text, zone integer,
    location text, floor_id text, x float8, y float8, ord serial) ON COMMIT DROP;
CREATE TEMP TABLE sim_overrides (scope text, target text, rule text, params text) ON COMMIT DROP
"""
_SITES = """
INSERT INTO sites (id, name, address, latitude, longitude, contacts, fire_plan)
SELECT id, name, address, latitude, longitude, contacts::jsonb, fire_plan::jsonb FROM sim_sites
ON CONFLICT (id) DO NOTHING
"""
_FILL_SITES = """
UPDATE sites s SET address = n.address, latitude = n.latitude, longitude = n.longitude,
    contacts = n.contacts::jsonb, fire_plan = n.fire_plan::jsonb
FROM sim_sites n
WHERE s.id = n.id AND s.latitude IS NULL AND s.longitude IS NULL
  AND s.contacts = '[]'::jsonb AND s.fire_plan = '{}'::jsonb
"""
_FLOORS = """
INSERT INTO floors (site_id, id, name, level, plan_image, plan_type)
SELECT site_id, id, name, level, plan_image, $1 FROM sim_floors
ON CONFLICT (site_id, id) DO NOTHING
"""
_FILL_FLOORS = """
UPDATE floors f SET plan_image = n.plan_image, plan_type = $1 FROM sim_floors n
WHERE f.site_id = n.site_id AND f.id = n.id AND f.plan_image IS NULL
"""
_DEVICES = """
INSERT INTO devices (id, kind, site_id, parent_id, zone, location, floor_id, x, y, lifecycle)
SELECT id, kind, site_id, parent_id, zone, location, floor_id, x, y, $1 FROM sim_devices
ORDER BY ord ON CONFLICT (id) DO NOTHING
"""
# a device still where the fleet put it (same site) but without a placement or a parent
_FILL_DEVICES = """
UPDATE devices d SET
    floor_id = CASE WHEN d.floor_id IS NULL AND d.x IS NULL THEN n.floor_id ELSE d.floor_id END,
    x = CASE WHEN d.floor_id IS NULL AND d.x IS NULL THEN n.x ELSE d.x END,
    y = CASE WHEN d.floor_id IS NULL AND d.x IS NULL THEN n.y ELSE d.y END,
    parent_id = COALESCE(d.parent_id, n.parent_id)
FROM sim_devices n
WHERE d.id = n.id AND d.site_id = n.site_id
  AND ((d.floor_id IS NULL AND d.x IS NULL) OR (d.parent_id IS NULL AND n.parent_id IS NOT NULL))
"""
_OVERRIDES = """
INSERT INTO rule_overrides (scope, target, rule, params, updated_by)
SELECT scope, target, rule, params::jsonb, 'simulator' FROM sim_overrides
ON CONFLICT (scope, target, rule) DO NOTHING
"""


async def _register(conn: asyncpg.Connection, fleet: Fleet) -> Registered:
    sites, floors, spots = [], [], {}
    for s in fleet.sites:
        det = site_details(fleet, s)
        sites.append((s.id, s.name, det.address, det.latitude, det.longitude,
                      json.dumps(det.contacts, ensure_ascii=False),
                      json.dumps(det.fire_plan, ensure_ascii=False)))
        for f in det.floors:
            floors.append((s.id, f.id, f.name, f.level, f.svg))
            spots.update((d, (f.id, x, y)) for d, (x, y) in f.spots.items())
    # panels first: a field device's parent must exist when its row is checked
    devices = sorted(((d.id, d.kind.value, d.site_id, d.parent_id, d.zone, d.location,
                       *spots.get(d.id, (None, None, None))) for d in fleet.devices),
                     key=lambda r: r[3] is not None)
    overrides = [(scope, target, rule, json.dumps(params))
                 for scope, target, rule, params in rule_overrides(fleet)]
    async with conn.transaction():
        await conn.execute(_TEMP)
        await conn.copy_records_to_table("sim_sites", records=sites, columns=[
            "id", "name", "address", "latitude", "longitude", "contacts", "fire_plan"])
        await conn.copy_records_to_table("sim_floors", records=floors,
                                         columns=["site_id", "id", "name", "level", "plan_image"])
        await conn.copy_records_to_table("sim_devices", records=devices, columns=[
            "id", "kind", "site_id", "parent_id", "zone", "location", "floor_id", "x", "y"])
        await conn.copy_records_to_table("sim_overrides", records=overrides,
                                         columns=["scope", "target", "rule", "params"])
        site_status = await conn.execute(_SITES)
        filled = _count(await conn.execute(_FILL_SITES))
        floor_status = await conn.execute(_FLOORS, PLAN_TYPE)
        filled += _count(await conn.execute(_FILL_FLOORS, PLAN_TYPE))
        device_status = await conn.execute(_DEVICES, Lifecycle.IN_SERVICE.value)
        filled += _count(await conn.execute(_FILL_DEVICES))
        await conn.execute(_OVERRIDES)
    return Registered(_count(site_status), _count(device_status), _count(floor_status), filled)


def _count(status: str) -> int:
    """'INSERT 0 123' -> 123, 'UPDATE 7' -> 7."""
    return int(status.rsplit(" ", 1)[-1])
