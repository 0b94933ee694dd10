"""Test-side helpers: `eventually` (the probe every test waits with), a plain QoS 1 publisher
and message generators for storage tests."""

from __future__ import annotations

import asyncio
import inspect
import random
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import asyncpg

from firetower.mqtt import AsyncMqtt
from firetower.protocol import encode, format_ts, topic_for

KINDS = ("smoke_detector", "heat_detector", "sprinkler_pressure", "alarm_panel")
T = TypeVar("T")

# A probe's default deadline. Generous on purpose: the whole suite runs on two loaded CPUs, where
# something that takes 0.1 s has once taken 5 s; a deadline is reached only by a test that fails.
PROBE_TIMEOUT_S = 30.0


def _describe(predicate: Callable[[], object]) -> str:
    name = getattr(predicate, "__name__", repr(predicate))
    if name == "<lambda>":
        try:
            return inspect.getsource(predicate).strip()
        except (OSError, TypeError):
            pass
    return name


async def eventually(predicate: Callable[[], Awaitable[T | None]], timeout: float = PROBE_TIMEOUT_S,
                     interval: float = 0.05, *, what: str | None = None) -> T:
    """Wait until the async `predicate` returns a truthy value, and return it: the probe tests
    use instead of sleeping for something to have happened. Fails after `timeout` s with an
    AssertionError naming what never happened (`what`, else the predicate) and its last value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"never happened within {timeout} s: "
                                 f"{what or _describe(predicate)} (last value {value!r})")
        await asyncio.sleep(interval)  # the probe's polling interval


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
