"""Replay a simulator scenario through the real broker, ingester, alerting service and database,
on a virtual centre clock: before a message whose time is later than the clock, wait until the
ingester has taken everything published so far, then move the clock (running every deadline
on the way, in order). Hours of scenario replay in seconds, and deadlines stay exact."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from alerting.clock import FakeClock
from alerting.service import AlertingService
from firetower import db
from firetower.model import DeviceKind
from firetower.mqtt import AsyncMqtt
from ingest.service import Ingester
from tests.conftest import settings_for
from tests.helpers import eventually


def start_for(duration_s: float) -> datetime:
    """A start in the past, so the whole run ends before the real now (the ingester refuses
    device times more than a day ahead of its own clock)."""
    t = datetime.now(UTC) - timedelta(seconds=duration_s + 3600)
    return t.replace(minute=0, second=0, microsecond=0)


@dataclass
class Replay:
    alarms: list[asyncpg.Record]
    events: list[asyncpg.Record]
    run: Any

    def of(self, cls: str | None = None, *, type_: str | None = None) -> list[asyncpg.Record]:
        return [a for a in self.alarms if (cls is None or a["class"] == cls)
                and (type_ is None or a["type"] == type_)]

    def summary(self) -> list[tuple[str, str, str]]:
        return sorted((a["class"], a["device_id"], a["type"]) for a in self.alarms)

    def at(self, key: str) -> datetime:
        """An instant from the injection details (ISO string)."""
        for inj in self.run.injections:
            if inj.details.get(key):
                return datetime.fromisoformat(inj.details[key])
        raise KeyError(key)


async def register(url: str, run: Any, extra: list[tuple[str, str, str, dict[str, Any]]]
                   ) -> None:
    fleet = run.fleet
    overrides = list(extra)
    for d in fleet:
        if d.kind is DeviceKind.SPRINKLER_PRESSURE:  # the installer enters the switch settings
            m = run.sim.model(d.id)
            params = {"min_kpa": round(m.low_kpa, 1), "cut_in_kpa": round(m.cut_in_kpa, 1)}
            overrides.append(("device", d.id, "sprinkler", params))
    conn = await db.connect(url)
    try:
        for s in fleet.sites:
            await conn.execute("INSERT INTO sites (id, name, address) VALUES ($1, $2, $3)",
                               s.id, s.name, s.address)
        for d in sorted(fleet, key=lambda d: d.parent_id is not None):
            await conn.execute(
                "INSERT INTO devices (id, kind, site_id, parent_id, zone, location, lifecycle)"
                " VALUES ($1, $2, $3, $4, $5, $6, 'in_service')",
                d.id, d.kind.value, d.site_id, d.parent_id, d.zone, d.location)
        for scope, target, rule, params in overrides:
            await conn.execute("INSERT INTO rule_overrides (scope, target, rule, params)"
                               " VALUES ($1, $2, $3, $4)", scope, target, rule, params)
    finally:
        await conn.close()


async def replay(url: str, broker: Any, run: Any,
                 overrides: list[tuple[str, str, str, dict[str, Any]]] = (),  # type: ignore[assignment]
                 *, batch_s: float = 0.5, tail_s: float = 0.0) -> Replay:
    await register(url, run, list(overrides))
    clock = FakeClock(run.start.timestamp())
    settings = settings_for(url, broker, ingest_client_id=f"scn-{uuid.uuid4().hex[:8]}")
    svc = AlertingService(settings, clock=clock)
    await svc.start()
    ing = Ingester(settings, listeners=[svc])
    await ing.start()
    pub = AsyncMqtt("127.0.0.1", broker.port)
    await pub.start()
    published = 0
    engine = svc.engine
    assert engine is not None

    async def received() -> bool:
        return ing.totals["received"] >= published

    async def caught_up() -> None:
        # the listeners evaluate a message as it is received: its decisions are made by now
        await eventually(received, 120, 0.0005,
                         what=f"the ingester received the {published} published messages")

    def advance(to: float) -> None:
        while True:
            nxt = engine.next_deadline()
            if nxt is None or nxt > to:
                break
            clock.t = max(clock.t, nxt)
            engine.tick()
        clock.t = max(clock.t, to)
        engine.tick()

    try:
        for out in run:
            t = out.ts.timestamp()
            if t > clock.t + batch_s:
                await caught_up()
                advance(t)
            pub.publish(out.topic, out.payload, 1, False)
            published += 1
        await caught_up()
        advance(run.start.timestamp() + run.duration + tail_s)
        assert svc.writer is not None
        await svc.writer.drain()  # advance() made its decisions synchronously
        conn = await db.connect(url)
        try:
            alarms = await conn.fetch("SELECT * FROM alarms ORDER BY id")
            events = await conn.fetch("SELECT * FROM alarm_events ORDER BY id")
        finally:
            await conn.close()
        return Replay(list(alarms), list(events), run)
    finally:
        await pub.stop()
        await ing.stop()
        await svc.stop()
