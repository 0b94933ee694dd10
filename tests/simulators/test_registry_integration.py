"""Registering a fleet in the device registry: complete, idempotent, fast; the demo sites come
with details an operator can act on, valid for what the API returns."""

from __future__ import annotations

import json
import time
from xml.etree import ElementTree

import asyncpg
import pytest

from api.schemas import FloorCreate, SiteCreate
from firetower import db
from firetower.model import DeviceKind
from simulators.fleet import build_fleet
from simulators.registry import PLAN_TYPE, register_fleet, rule_overrides

pytestmark = pytest.mark.integration


async def test_register_is_complete_and_idempotent(clean_db) -> None:
    fleet = build_fleet(1, 40, 8)
    first = await register_fleet(clean_db.url, fleet)
    assert (first.sites, first.devices) == (40, len(fleet))
    pool = await db.create_pool(clean_db.url)
    try:
        again = await register_fleet(pool, fleet)
        assert (again.sites, again.devices, again.floors, again.details_filled) == (0, 0, 0, 0)
        async with pool.acquire() as conn:
            rows = await conn.fetch("SELECT id, kind, site_id, parent_id, zone, location, "
                                    "lifecycle FROM devices ORDER BY id")
            assert len(rows) == len(fleet)
            by_id = {r["id"]: r for r in rows}
            for d in fleet:
                r = by_id[d.id]
                assert (r["kind"], r["site_id"], r["parent_id"], r["zone"], r["location"],
                        r["lifecycle"]) == (d.kind.value, d.site_id, d.parent_id, d.zone,
                                            d.location, "in_service")
            names = await conn.fetch("SELECT id, name FROM sites")
            assert {(r["id"], r["name"]) for r in names} == {(s.id, s.name) for s in fleet.sites}
            assert await conn.fetchval("SELECT count(*) FROM rule_overrides") == len(
                rule_overrides(fleet))
    finally:
        await pool.close()


async def test_demo_sites_have_what_an_operator_needs(clean_db) -> None:
    fleet = build_fleet(3, 4, 10)
    reg = await register_fleet(clean_db.url, fleet)
    assert reg.floors == 4 * 2   # ten of a kind: eight heads a floor, two floors
    conn = await db.connect(clean_db.url)
    try:
        sites = await conn.fetch("SELECT * FROM sites ORDER BY id")
        floors = await conn.fetch("SELECT * FROM floors ORDER BY site_id, level")
        devices = await conn.fetch("SELECT * FROM devices ORDER BY id")
        overrides = await conn.fetch("SELECT * FROM rule_overrides")
    finally:
        await conn.close()
    for s in sites:   # as the API takes and returns them
        contacts = _json(s["contacts"])
        plan = _json(s["fire_plan"])
        SiteCreate(id=s["id"], name=s["name"], address=s["address"], latitude=s["latitude"],
                   longitude=s["longitude"], contacts=contacts, fire_plan=plan)
        assert "District" in s["address"] and 22 < s["latitude"] < 23
        assert len(contacts) >= 3 and all(c["phone"] for c in contacts)
        assert {"Fire safety manager (消防安全管理人)", "Building manager"} <= {
            c["role"] for c in contacts}
        assert plan["entrances"] and plan["water_sources"] and plan["hazards"]
        assert "storeys" in plan["notes"]
    site_floors: dict[str, set[str]] = {}
    for f in floors:
        FloorCreate(id=f["id"], name=f["name"], level=f["level"])
        site_floors.setdefault(f["site_id"], set()).add(f["id"])
        assert f["plan_type"] == PLAN_TYPE
        svg = ElementTree.fromstring(bytes(f["plan_image"]))
        assert svg.get("viewBox") == f"0 0 {svg.get('width')} {svg.get('height')}"
        texts = {t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")}
        assert {"Stair A", "Stair B", "Lifts"} <= texts
        if f["level"] == 0:
            assert {"Fire control room", "Alarm valve room", "MAIN ENTRANCE"} <= texts
    for d in devices:
        assert d["floor_id"] in site_floors[d["site_id"]]
        assert 0 < d["x"] < 1 and 0 < d["y"] < 1
        if d["kind"] != DeviceKind.ALARM_PANEL.value:
            assert d["parent_id"] == f"{d['site_id']}-pnl-0000" and d["zone"] >= 1
    spr = {d.id for d in fleet.of_kind(DeviceKind.SPRINKLER_PRESSURE)}
    assert {o["target"] for o in overrides} == spr
    assert all(set(_json(o["params"])) == {"min_kpa", "cut_in_kpa"} for o in overrides)


async def test_old_demo_rows_get_what_they_lacked_and_nothing_entered_is_overwritten(
        clean_db) -> None:
    fleet = build_fleet(5, 2, 3)
    spr = fleet.of_kind(DeviceKind.SPRINKLER_PRESSURE)[0]
    conn = await db.connect(clean_db.url)
    try:   # what the registry wrote before: bare sites, devices, sprinklers without a parent
        for s in fleet.sites:
            await conn.execute("INSERT INTO sites (id, name, address) VALUES ($1, $2, $3)",
                               s.id, s.name, s.address)
        for d in sorted(fleet, key=lambda d: d.parent_id is not None):
            parent = None if d.kind is DeviceKind.SPRINKLER_PRESSURE else d.parent_id
            await conn.execute("INSERT INTO devices (id, kind, site_id, parent_id, zone, "
                               "location, lifecycle) VALUES ($1, $2, $3, $4, $5, $6, "
                               "'in_service')", d.id, d.kind.value, d.site_id, parent, d.zone,
                               d.location)
        edited = fleet.sites[1].id   # an operator entered this site's contacts by hand
        await conn.execute("UPDATE sites SET contacts = $2 WHERE id = $1", edited,
                           [{"name": "Ms Operator", "role": "", "phone": "110", "email": ""}])
        reg = await register_fleet(conn, fleet)
        assert (reg.sites, reg.devices) == (0, 0) and reg.floors == 2
        assert reg.details_filled == 1 + len(fleet)   # one site (not the edited), every device
        row = await conn.fetchrow("SELECT parent_id, floor_id FROM devices WHERE id = $1",
                                  spr.id)
        assert (row["parent_id"], row["floor_id"]) == (spr.parent_id, "GF")
        kept = await conn.fetchrow("SELECT latitude, contacts FROM sites WHERE id = $1", edited)
        assert kept["latitude"] is None and _json(kept["contacts"])[0]["name"] == "Ms Operator"
        again = await register_fleet(conn, fleet)
        assert again.details_filled == 0
    finally:
        await conn.close()


async def test_bigger_fleet_grows_and_is_fast(clean_db) -> None:
    conn = await asyncpg.connect(clean_db.url)
    try:
        await register_fleet(conn, build_fleet(2, 100, 10))
        big = build_fleet(2, 1000, 33)            # 100,000 devices
        t = time.perf_counter()
        reg = await register_fleet(conn, big)
        elapsed = time.perf_counter() - t
        assert (reg.sites, reg.devices) == (900, len(big) - 100 * 31)
        assert await conn.fetchval("SELECT count(*) FROM devices") == len(big)
        assert elapsed < 60, elapsed
    finally:
        await conn.close()


def _json(value: object) -> object:
    return json.loads(value) if isinstance(value, str) else value
