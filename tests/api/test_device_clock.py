"""The device API shows each device's clock: the offset the ingester measured and the state of
its clock fault (docs/alarms.md, "Device clock")."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from firetower import db
from tests.api.conftest import World

pytestmark = pytest.mark.integration


async def test_devices_show_their_clock(world: World) -> None:
    checked = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    conn = await db.connect(world.db_url)
    try:
        await conn.executemany(
            "INSERT INTO devices (id, kind, site_id, clock_offset_s, clock_checked_at)"
            " VALUES ($1, 'alarm_panel', 's1', $2, $3)",
            [("p-new", None, None), ("p-right", 0.42, checked), ("p-ahead", -31_536_000.0, checked),
             ("p-was-ahead", 0.3, checked)])
        for device, state in (("p-ahead", "active"), ("p-was-ahead", "cleared_unack")):
            await conn.execute(
                "INSERT INTO alarms (device_id, site_id, type, class, priority, state, evidence,"
                " raised_at, last_at) VALUES ($1, 's1', 'clock', 'fault', 3, $2, $3, now(), now())",
                device, state, {"state": "ahead", "offset_s": -31_536_000.0})
    finally:
        await conn.close()
    async with world.client("operator") as c:
        one = (await c.get("/devices/p-ahead")).json()
        listed = {d["id"]: d for d in (await c.get("/devices", params={"site_id": "s1"})).json()[
            "data"]}
    assert (one["clock"], one["clock_offset_s"]) == ("ahead", -31_536_000.0)
    assert datetime.fromisoformat(one["clock_checked_at"]) == checked
    assert {i: (d["clock"], d["clock_offset_s"]) for i, d in listed.items()} == {
        "p-new": (None, None), "p-right": ("ok", 0.42), "p-ahead": ("ahead", -31_536_000.0),
        "p-was-ahead": ("ok", 0.3)}  # a cleared fault is history, not the clock's state
