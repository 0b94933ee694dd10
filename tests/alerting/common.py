"""Shared by the integration tests: registering devices, overrides, reading alarms, and the
ingester with the rule engine running against a real broker and database."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg

from alerting.service import AlertingService
from firetower import db
from firetower.broker import Broker
from firetower.mqtt import AsyncMqtt
from ingest.service import Ingester


async def register(url: str, devices: list[tuple[str, str, str | None, int | None]],
                   overrides: list[tuple[str, str, str, dict[str, Any]]] = (),  # type: ignore[assignment]
                   lifecycle: str = "in_service") -> None:
    """devices: (id, kind, parent, zone); overrides: (scope, target, rule, params)."""
    conn = await db.connect(url)
    try:
        await conn.execute("INSERT INTO sites (id, name) VALUES ('s1', 'Site 1') "
                           "ON CONFLICT DO NOTHING")
        for dev, kind, parent, zone in devices:
            await conn.execute(
                "INSERT INTO devices (id, kind, site_id, parent_id, zone, lifecycle)"
                " VALUES ($1, $2, 's1', $3, $4, $5)", dev, kind, parent, zone, lifecycle)
        for scope, target, rule, params in overrides:
            await conn.execute("INSERT INTO rule_overrides (scope, target, rule, params)"
                               " VALUES ($1, $2, $3, $4)", scope, target, rule, params)
    finally:
        await conn.close()


async def alarms(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM alarms ORDER BY id")


@dataclass
class Running:
    svc: AlertingService
    ing: Ingester
    pub: AsyncMqtt  # a publisher on the broker, standing in for the devices
    conn: asyncpg.Connection


@contextlib.asynccontextmanager
async def running_centre(db_url: str, broker: Broker) -> AsyncIterator[Running]:
    """The alerting service and the ingester feeding it (started in that order, stopped in the
    reverse: the ingester's acknowledgements wait on the alarm writer), a publisher and a
    database connection."""
    from tests.conftest import settings_for

    settings = settings_for(db_url, broker)
    svc = AlertingService(settings)
    await svc.start()
    ing = Ingester(settings, listeners=[svc])
    await ing.start()
    pub = AsyncMqtt("127.0.0.1", broker.port)
    await pub.start()
    conn = await db.connect(db_url)
    try:
        yield Running(svc, ing, pub, conn)
    finally:
        await conn.close()
        await pub.stop()
        await ing.stop()
        await svc.stop()
