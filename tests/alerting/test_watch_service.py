"""Heightened watch windows through the alerting service and the real PostgreSQL: the loader
resolves a window's sites, a NOTIFY loads a window at once, the service's own bound timer
applies and reverts it on time, and supervision follows (real clock)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from alerting import loader
from alerting.service import CONFIG_CHANNEL, AlertingService
from firetower import db
from firetower.model import Telemetry
from firetower.watch import WatchSettings
from tests.conftest import settings_for
from tests.helpers import eventually

from .common import register

pytestmark = pytest.mark.integration
DEVICES: list[tuple[str, str, str | None, int | None]] = [
    ("smk-1", "smoke_detector", None, None), ("smk-2", "smoke_detector", None, None)]


async def org(conn: asyncpg.Connection) -> None:
    """Jurisdictions 1 (root) > 2 > 3; s1 in 2, s2 in 3, s3 in 1, s4 nowhere."""
    tree: list[tuple[int, int | None, list[int]]] = [
        (1, None, [1]), (2, 1, [1, 2]), (3, 2, [1, 2, 3]), (4, 1, [1, 4])]
    for jid, parent, path in tree:
        await conn.execute(
            "INSERT INTO jurisdictions (id, parent_id, code, name, level, path)"
            " VALUES ($1, $2, $3, $3, 'district', $4)", jid, parent, f"j{jid}", path)
    homes: list[tuple[str, int | None]] = [("s1", 2), ("s2", 3), ("s3", 1), ("s4", None)]
    for site, home in homes:
        await conn.execute("INSERT INTO sites (id, name, jurisdiction_id) VALUES ($1, $1, $2)"
                           " ON CONFLICT (id) DO UPDATE SET jurisdiction_id = $2", site, home)


async def add_window(conn: asyncpg.Connection, starts: datetime, ends: datetime,
                     settings: object, *, jurisdiction: int | None = None,
                     sites: list[str] | None = None, name: str = "春节安保") -> int:
    wid: int = await conn.fetchval(
        "INSERT INTO watch_windows (name, starts_at, ends_at, jurisdiction_id, site_ids,"
        " settings, created_by) VALUES ($1, $2, $3, $4, $5, $6, 'op:test') RETURNING id",
        name, starts, ends, jurisdiction, sites, settings)
    return wid


async def notify(conn: asyncpg.Connection) -> None:
    """What the API sends when a window is created or cancelled."""
    await conn.execute("SELECT pg_notify($1, 'watch_windows')", CONFIG_CHANNEL)


@pytest.fixture
async def conn(clean_db) -> AsyncIterator[asyncpg.Connection]:  # type: ignore[no-untyped-def]
    await register(clean_db.url, DEVICES)
    c = await db.connect(clean_db.url)
    try:
        await org(c)
        yield c
    finally:
        await c.close()


@pytest.fixture
async def svc(clean_db, broker, conn) -> AsyncIterator[AlertingService]:  # type: ignore[no-untyped-def]
    s = AlertingService(settings_for(clean_db.url, broker))
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


async def test_the_loader_resolves_sites_and_leaves_out_ended_cancelled_and_refused(  # type: ignore[no-untyped-def]
        conn, caplog) -> None:
    now = datetime.now(UTC)
    hour = timedelta(hours=1)
    by_root = await add_window(conn, now - hour, now + hour, {"heartbeat_s": 60},
                               jurisdiction=2)
    by_list = await add_window(conn, now + hour, now + 2 * hour,
                               {"verification_s": 20, "prealarm_ratio": 0.5},
                               sites=["s4", "s1"])
    await add_window(conn, now - 2 * hour, now - hour, {"heartbeat_s": 60}, sites=["s1"])
    cancelled = await add_window(conn, now - hour, now + hour, {"heartbeat_s": 60},
                                 sites=["s1"])
    await conn.execute("UPDATE watch_windows SET cancelled_at = now() WHERE id = $1", cancelled)
    await add_window(conn, now - hour, now + hour, {"heartbeat_s": 1}, sites=["s1"])
    with caplog.at_level(logging.ERROR, logger="alerting.loader"):
        windows = await loader.watch_windows(conn)
    assert [(w.id, w.site_ids, w.settings) for w in windows] == [
        (by_root, frozenset({"s1", "s2"}), WatchSettings(heartbeat_s=60.0)),
        (by_list, frozenset({"s1", "s4"}), WatchSettings(verification_s=20.0,
                                                         prealarm_ratio=0.5))]
    assert windows[0].starts_at == pytest.approx((now - hour).timestamp())
    assert "heartbeat_s must be between 10 and 3600" in caplog.text


async def test_a_notify_applies_a_window_at_once_and_a_cancel_reverts_it(  # type: ignore[no-untyped-def]
        svc, conn, caplog) -> None:
    caplog.set_level(logging.INFO, logger="alerting.service")
    assert svc.engine is not None
    st = svc.engine.devices["smk-1"]
    before = st.params
    now = datetime.now(UTC)
    wid = await add_window(conn, now - timedelta(minutes=1), now + timedelta(hours=1),
                           {"heartbeat_s": 120, "verification_s": 30}, jurisdiction=1)
    await notify(conn)
    await eventually(lambda: st.params.supervision.heartbeat_s == 120.0, 10)
    assert st.params.smoke.unconfirmed_for_s == 30.0
    assert f"watch window {wid} (春节安保) applied: 3 sites" in caplog.text  # s1, s2, s3

    await conn.execute("UPDATE watch_windows SET cancelled_at = now() WHERE id = $1", wid)
    await notify(conn)
    await eventually(lambda: st.params is before, 10)
    assert f"watch window {wid} (春节安保) reverted: 3 sites" in caplog.text


async def offline(conn: asyncpg.Connection, device: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM alarms WHERE type = 'offline' AND device_id = $1",
                               device)


async def test_a_window_applies_and_reverts_at_its_bounds(svc, conn, caplog) -> None:  # type: ignore[no-untyped-def]
    """Heartbeat 300 s, a window from 3 s to 14 s after the devices' last_seen with a 10 s
    heartbeat (the lowest allowed): silent smk-1 goes offline at last_seen + 10 s; smk-2,
    reporting at +8 s, is supervised by 300 s again once the window ends (its watch deadline
    +18 s passes without an alarm)."""
    caplog.set_level(logging.INFO, logger="alerting.service")
    engine = svc.engine
    assert engine is not None
    one, two = engine.devices["smk-1"], engine.devices["smk-2"]
    before = one.params
    assert before.supervision.heartbeat_s == 300.0 and one.last_seen is not None
    seen = one.last_seen
    start, end = seen + 3.0, seen + 14.0
    wid = await add_window(conn, datetime.fromtimestamp(start, UTC),
                           datetime.fromtimestamp(end, UTC), {"heartbeat_s": 10}, sites=["s1"])
    await notify(conn)
    await eventually(lambda: bool(svc._windows), 10)
    assert one.params is before  # loaded, not applied before its start

    await asyncio.sleep(max(seen + 8.0 - svc.clock.now(), 0.0))
    assert one.params.supervision.heartbeat_s == 10.0  # applied by the bound timer
    t = datetime.now(UTC)
    svc.on_message(Telemetry("smk-2", 1, t, t, obscuration_pct_per_m=0.2, temperature_c=21.0))
    reported = two.last_seen
    assert reported is not None

    alarm = await eventually(lambda: offline(conn, "smk-1"), 10)
    raised = alarm["raised_at"].timestamp()
    # decided when the new deadline popped (the evidence's deadline, exact); dated when decided,
    # which a loaded CI machine may delay a little: never near seen + 300
    assert abs(raised - (seen + 10.0)) < 3.0, raised - seen
    assert raised >= start
    assert alarm["evidence"]["deadline"] == pytest.approx(seen + 10.0)

    await asyncio.sleep(max(reported + 10.0 + 1.5 - svc.clock.now(), 0.0))
    assert svc.clock.now() > end
    assert two.params is before  # reverted by the bound timer: the very same parameters
    assert await offline(conn, "smk-2") is None  # its watch deadline passed, no alarm
    assert two.hb_at == pytest.approx(reported + 300.0)
    assert f"watch window {wid} (春节安保) applied: 1 sites" in caplog.text
    assert f"watch window {wid} (春节安保) reverted: 1 sites" in caplog.text
