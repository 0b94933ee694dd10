"""A device's placement (site, panel, zone) changes are announced like kind and lifecycle
changes, so registries and rule engines (and a partitioned worker, whose partition follows the
site) reload it; other column changes stay quiet."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.conftest import Database
from tests.helpers import register

pytestmark = pytest.mark.integration


async def test_placement_changes_notify_and_others_do_not(clean_db: Database) -> None:
    await register(clean_db.url, [("nd-1", "smoke_detector"), ("nd-panel", "alarm_panel")])
    conn = await asyncpg.connect(clean_db.url)
    got: asyncio.Queue[str] = asyncio.Queue()
    await conn.add_listener("firetower_devices", lambda *a: got.put_nowait(a[3]))
    try:
        await conn.execute("INSERT INTO sites (id, name) VALUES ('s2', 's2')")
        for change in ("site_id = 's2'", "parent_id = 'nd-panel'", "zone = 4"):
            await conn.execute(f"UPDATE devices SET {change} WHERE id = 'nd-1'")
            assert await asyncio.wait_for(got.get(), 5) == "nd-1", change
        await conn.execute("UPDATE devices SET location = 'east stair' WHERE id = 'nd-1'")
        await asyncio.sleep(0.3)  # on purpose: time for a wrong notification to arrive
        assert got.empty()
    finally:
        await conn.close()
