"""Migration 0011 on a database that already holds sites and scoped users: every site lands in
a default jurisdiction and unit, nothing is lost, and the change is in the audit log."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import asyncpg
import pytest

from firetower import db
from tests.conftest import _db_url, _drop

pytestmark = pytest.mark.integration


async def test_existing_sites_move_into_a_default_unit(tmp_path: Path) -> None:
    before = tmp_path / "migrations"
    before.mkdir()
    for f in sorted(db.MIGRATIONS_DIR.glob("*.sql")):
        if int(f.name[:4]) < 11:
            shutil.copy(f, before / f.name)
    name = f"firetower_test_{uuid.uuid4().hex[:10]}"
    url = _db_url(name)
    try:
        await db.migrate(url, directory=before, use_timescale=False)
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("INSERT INTO sites (id, name) VALUES ('a', 'A'), ('b', 'B')")
            await conn.execute("INSERT INTO users (name, role, site_ids, password_hash) VALUES "
                               "('inst', 'installer', '{a}', 'x')")
        finally:
            await conn.close()
        applied = await db.migrate(url, use_timescale=False)
        assert any(a.startswith("0011_org") for a in applied)
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch(
                "SELECT s.id, s.name, u.name AS unit, j.code, j.path = ARRAY[j.id] AS root "
                "FROM sites s JOIN units u ON u.id = s.unit_id "
                "JOIN jurisdictions j ON j.id = s.jurisdiction_id ORDER BY s.id")
            assert [tuple(r) for r in rows] == [("a", "A", "Default unit", "default", True),
                                                ("b", "B", "Default unit", "default", True)]
            assert await conn.fetchval("SELECT site_ids FROM users WHERE name = 'inst'") == ["a"]
            audit = await conn.fetchrow("SELECT action, entity, after FROM audit_log")
            assert audit is not None
            assert (audit["action"], audit["entity"]) == ("import", "site")
            # append-only
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("UPDATE audit_log SET actor_name = 'someone else'")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("DELETE FROM audit_log")
        finally:
            await conn.close()
    finally:
        await _drop(name)
