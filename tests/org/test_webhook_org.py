"""Webhook events carry the site's place in the city, and a subscription naming a district
receives the alarms of every grid under it (migration 0012), on the real database."""

from __future__ import annotations

import pytest

from firetower import db
from firetower.alarm_store import AlarmStore
from org.store import Actor, create, create_jurisdiction, place_site
from tests.api.conftest import raise_alarm
from tests.conftest import Database

pytestmark = pytest.mark.integration
ADMIN = Actor(None, "test")


async def test_payload_and_subtree_filter(clean_db: Database) -> None:
    pool = await db.create_pool(clean_db.url, max_size=2)
    try:
        async with pool.acquire() as conn:
            ids: dict[str, int] = {}
            for key, code, level, parent in (("city", "350100", "city", None),
                                             ("d1", "350102", "district", "city"),
                                             ("d2", "350103", "district", "city"),
                                             ("t1", "350102001", "township", "d1"),
                                             ("g1", "G-1", "grid", "t1")):
                row = await create_jurisdiction(conn, ADMIN, {
                    "code": code, "name": code, "level": level,
                    "parent_id": ids.get(parent) if parent else None})
                ids[key] = row["id"]
            unit = await create(conn, ADMIN, "unit", {
                "credit_code": "91350100M000100Y43", "name": "Harbour Tower Co.",
                "responsible_name": "Lin", "responsible_phone": "123"})
            await conn.execute("INSERT INTO sites (id, name) VALUES ('s1', 'Harbour Tower')")
            await conn.execute("INSERT INTO devices (id, kind, site_id) VALUES "
                               "('smk-1', 'smoke_detector', 's1')")
            await place_site(conn, ADMIN, "s1", unit_id=unit["id"], jurisdiction_id=ids["g1"])
            endpoints = {}
            for name, codes in (("district", ["350102"]), ("other", ["350103"]),
                                ("grid", ["G-1"]), ("all", None)):
                endpoints[name] = await conn.fetchval(
                    "INSERT INTO webhook_endpoints (name, url, jurisdictions) "
                    "VALUES ($1, 'https://example.org/hook', $2) RETURNING id", name, codes)
        await raise_alarm(AlarmStore(pool), "smk-1", "s1")
        got = {r["endpoint_id"] for r in await pool.fetch(
            "SELECT endpoint_id FROM webhook_deliveries")}
        assert got == {endpoints["district"], endpoints["grid"], endpoints["all"]}
        data = await pool.fetchval("SELECT data FROM webhook_events")
        site = data["alarm"]["site"]
        assert [j["code"] for j in site["jurisdiction_path"]] == ["350100", "350102",
                                                                  "350102001", "G-1"]
        assert site["jurisdiction"] == "G-1"
        assert site["unit"]["credit_code"] == "91350100M000100Y43"
        assert site["unit"]["responsible_phone"] == "123"
    finally:
        await pool.close()
