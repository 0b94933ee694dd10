"""Test-side helpers: a plain QoS 1 publisher and message generators for storage tests."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import asyncpg

from firetower.mqtt import AsyncMqtt
from firetower.protocol import encode, format_ts, topic_for

KINDS = ("smoke_detector", "heat_detector", "sprinkler_pressure", "alarm_panel")


def fleet(n: int) -> list[tuple[str, str]]:
    """n devices spread evenly over the four kinds: (id, kind)."""
    return [(f"t-{KINDS[i % 4][:4]}-{i:05d}", KINDS[i % 4]) for i in range(n)]


def body(kind: str, seq: int, ts: datetime, rng: random.Random) -> dict[str, object]:
    b: dict[str, object] = {"seq": seq, "ts": format_ts(ts)}
    if kind == "smoke_detector":
        b.update(obscuration_pct_per_m=round(rng.uniform(0, 0.5), 3),
                 temperature_c=round(rng.uniform(18, 26), 2), battery_v=3.0)
    elif kind == "heat_detector":
        b.update(temperature_c=round(rng.uniform(18, 26), 2), battery_v=3.0)
    elif kind == "sprinkler_pressure":
        b.update(pressure_kpa=round(rng.uniform(550, 650), 1), flow_lps=0.0)
    else:
        b.update(mains_ok=True, battery_ok=True, battery_v=27.1)
    return b


def telemetry_stream(devices: list[tuple[str, str]], per_device: int, seed: int = 1,
                     start: datetime | None = None) -> list[tuple[str, bytes]]:
    """Every device sends `per_device` readings, interleaved: [(topic, payload)]."""
    rng = random.Random(seed)
    t0 = start or datetime.now(UTC) - timedelta(hours=1)
    out = []
    for k in range(per_device):
        for i, (dev, kind) in enumerate(devices):
            ts = t0 + timedelta(seconds=60 * k, milliseconds=i)
            out.append((topic_for(dev, "telemetry"), encode(body(kind, k, ts, rng))))
    return out


async def register(url: str, devices: Iterable[tuple[str, str]], site: str = "s1") -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("INSERT INTO sites (id, name) VALUES ($1, $1) ON CONFLICT DO NOTHING",
                           site)
        await conn.executemany(
            "INSERT INTO devices (id, kind, site_id, lifecycle) VALUES ($1, $2, $3, 'in_service') "
            "ON CONFLICT DO NOTHING", [(d, k, site) for d, k in devices])
    finally:
        await conn.close()


async def publish(port: int, messages: Iterable[tuple[str, bytes]], *, window: int = 5000,
                  rate: float | None = None) -> int:
    """Publish at QoS 1 (at most `rate` msg/s) and wait for every PUBACK; never more than
    `window` outstanding."""
    pub = AsyncMqtt("127.0.0.1", port)
    await pub.start()
    sent = 0
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    try:
        for topic, payload in messages:
            while pub.outstanding >= window:
                await asyncio.sleep(0.005)
            pub.publish(topic, payload, 1)
            sent += 1
            if sent % 100 == 0:
                ahead = sent / rate - (loop.time() - t0) if rate else 0
                await asyncio.sleep(max(ahead, 0))
        while pub.outstanding:
            await asyncio.sleep(0.01)
    finally:
        await pub.stop()
    return sent
