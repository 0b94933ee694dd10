"""Shared by the dispatch tests: a seeded site and devices, endpoints, alarms, an in-process
dispatcher with short timings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg

from dispatch.config import DispatchSettings
from dispatch.dispatcher import Dispatcher
from firetower import db
from firetower.alarm_store import AlarmKey, AlarmStore, Occurrence
from firetower.alarms import AlarmClass, Mode, Trigger, Verdict
from firetower.settings import DEV_SECRET, Settings
from firetower.webhooks import subscriptions
from firetower.webhooks.secretbox import SecretBox

BOX = SecretBox(DEV_SECRET)
PUBLIC_URL = "https://centre.example"
# The test receivers listen on loopback, which the SSRF policy refuses unless allow-listed.
LOOPBACK = "127.0.0.0/8,::1/128"

FAST = {"backoff_base_s": 0.1, "backoff_max_s": 1.0, "timeout_s": 2.0, "rescan_s": 0.5,
        "verification_deadline_s": 60.0, "failing_alarm_failures": 3,
        "failing_alarm_after_s": 0.0}


def settings(db_url: str, secret_key: str = DEV_SECRET, allow: str = LOOPBACK) -> Settings:
    return Settings(env="development", database_url=db_url, metrics_port=None,
                    public_url=PUBLIC_URL, secret_key=secret_key,  # type: ignore[arg-type]
                    webhook_allow_networks=allow)


def config(**overrides: Any) -> DispatchSettings:
    return DispatchSettings(**{**FAST, **overrides})


async def seed(db_url: str, devices: int = 4) -> None:
    conn = await db.connect(db_url)
    try:
        await conn.execute("INSERT INTO sites (id, name, address, jurisdiction) VALUES"
                           " ('s1', 'Harbour Tower', '1 Quay Road', 'district-7'),"
                           " ('s2', 'Old Mill', '9 Mill Lane', 'district-9')")
        await conn.executemany(
            "INSERT INTO devices (id, kind, site_id, zone, location, lifecycle)"
            " VALUES ($1, 'smoke_detector', $2, 1, $3, 'in_service')",
            [(f"d{i}", "s1" if i % 2 == 0 else "s2", f"floor {i} corridor")
             for i in range(devices)])
    finally:
        await conn.close()


async def endpoint(pool: asyncpg.Pool, url: str, **values: Any) -> tuple[int, str]:
    async with pool.acquire() as conn:
        row, secret = await subscriptions.create(conn, BOX, {"url": url, **values}, None)
    return row["id"], secret


async def raise_fire(store: AlarmStore, device: str, *, site: str | None = "s1",
                     rule: str = "smoke.threshold", mode: Mode = Mode.NORMAL,
                     alarm_class: AlarmClass = AlarmClass.FIRE, seq: int | None = None,
                     evidence: dict[str, Any] | None = None) -> int:
    now = datetime.now(UTC)
    change = await store.raise_or_recur(Occurrence(
        AlarmKey(device, "", rule), alarm_class, now, site_id=site, received_at=now,
        confidence=0.8, evidence=evidence or {"obscuration_pct_per_m": 4.2}, mode=mode,
        reason="test", seq=seq))
    assert change is not None and change.alarm_id is not None
    return change.alarm_id


async def verdict(store: AlarmStore, alarm_id: int, v: Verdict) -> None:
    await store.transition(alarm_id, Trigger.VERDICT, actor="operator:alice", verdict=v)


@asynccontextmanager
async def running(db_url: str, secret_key: str = DEV_SECRET, allow: str = LOOPBACK,
                  **overrides: Any) -> AsyncIterator[Dispatcher]:
    d = Dispatcher(settings(db_url, secret_key, allow), config(**overrides))
    await d.start()
    try:
        yield d
    finally:
        await d.stop()


@asynccontextmanager
async def pool_for(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.create_pool(db_url, min_size=1, max_size=5)
    try:
        yield pool
    finally:
        await pool.close()
