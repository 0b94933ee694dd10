"""Registering a fleet in the device registry: complete, idempotent, fast."""

from __future__ import annotations

import time

import asyncpg
import pytest

from firetower import db
from simulators.fleet import build_fleet
from simulators.registry import register_fleet

pytestmark = pytest.mark.integration


async def test_register_is_complete_and_idempotent(clean_db) -> None:
    fleet = build_fleet(1, 40, 8)
    first = await register_fleet(clean_db.url, fleet)
    assert (first.sites, first.devices) == (40, len(fleet))
    pool = await db.create_pool(clean_db.url)
    try:
        again = await register_fleet(pool, fleet)
        assert (again.sites, again.devices) == (0, 0)
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
            names = await conn.fetch("SELECT id, name, address FROM sites")
            assert {(r["id"], r["name"], r["address"]) for r in names} == {
                (s.id, s.name, s.address) for s in fleet.sites}
    finally:
        await pool.close()


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
