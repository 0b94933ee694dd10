"""The demo's city (cli/demo_city.py): the simulated fleet's sites placed in Shenzhen's
districts and in units through org.store's import, once, and never over a user's own tree."""

from __future__ import annotations

import pytest

from cli.demo_city import place_demo_city
from firetower import db
from org.store import Actor, create_jurisdiction
from simulators.fleet import build_fleet
from simulators.registry import register_fleet
from tests.conftest import Database

pytestmark = pytest.mark.integration


async def test_the_fleet_is_placed_once(clean_db: Database) -> None:
    fleet = build_fleet(1, 12, 1)
    await register_fleet(clean_db.url, fleet)
    assert await place_demo_city(clean_db.url, fleet, timeout_s=10)
    conn = await db.connect(clean_db.url)
    try:
        rows = await conn.fetch(
            "SELECT s.id, g.level, u.credit_code, u.responsible_name FROM sites s "
            "JOIN jurisdictions g ON g.id = s.jurisdiction_id JOIN units u ON u.id = s.unit_id")
        assert len(rows) == 12 and {r["level"] for r in rows} == {"grid"}
        assert all(r["responsible_name"] for r in rows)  # the site's fire safety manager
        assert await conn.fetchval("SELECT count(*) FROM sites WHERE contacts <> '[]'") == 12
        audit = await conn.fetchval("SELECT count(*) FROM audit_log WHERE actor_name LIKE "
                                    "'firetower run%'")
        assert audit >= 12 + 12 + 19  # units, placements, nodes
    finally:
        await conn.close()
    # a second start changes nothing: the tree exists
    assert not await place_demo_city(clean_db.url, fleet, timeout_s=10)


async def test_a_users_own_tree_is_left_alone(clean_db: Database) -> None:
    fleet = build_fleet(1, 3, 1)
    await register_fleet(clean_db.url, fleet)
    conn = await db.connect(clean_db.url)
    try:
        await create_jurisdiction(conn, Actor(None, "someone"), {
            "code": "350100", "name": "Fuzhou", "level": "city"})
        assert not await place_demo_city(clean_db.url, fleet, timeout_s=10)
        assert await conn.fetchval("SELECT count(*) FROM jurisdictions") == 1
        assert await conn.fetchval("SELECT count(*) FROM sites WHERE unit_id IS NOT NULL") == 0
    finally:
        await conn.close()
