"""Test-side helpers: `eventually` (the probe every test waits with), a plain QoS 1 publisher
and message generators for storage tests."""

from __future__ import annotations

import asyncio
import inspect
import random
import subprocess
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, overload

import asyncpg

from firetower.mqtt import AsyncMqtt, filter_chunks
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


@overload
async def eventually(predicate: Callable[[], Awaitable[T | None]], timeout: float = ...,
                     interval: float = ..., *, what: str | None = ...) -> T: ...
@overload
async def eventually(predicate: Callable[[], T | None], timeout: float = ...,
                     interval: float = ..., *, what: str | None = ...) -> T: ...
async def eventually(predicate: Callable[[], Any], timeout: float = PROBE_TIMEOUT_S,
                     interval: float = 0.05, *, what: str | None = None) -> Any:
    """Wait until `predicate` (a function, or an async one) returns a truthy value, and return
    it: the probe tests use instead of sleeping for something to have happened. Fails after
    `timeout` s with an AssertionError naming what never happened (`what`, else the predicate)
    and its last value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"never happened within {timeout} s: "
                                 f"{what or _describe(predicate)} (last value {value!r})")
        await asyncio.sleep(interval)  # the probe's polling interval


def count_subacks(mqtt: AsyncMqtt) -> list[int]:
    """From now on, the mid of every SUBACK `mqtt` receives (paho's on_subscribe; a callback
    already set is still called)."""
    acks: list[int] = []
    before: Any = mqtt.client.on_subscribe  # the ingester's priority session has one

    def on_subscribe(client: Any, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        acks.append(mid)
        if before is not None:
            before(client, userdata, mid, reasons, props)

    mqtt.client.on_subscribe = on_subscribe
    return acks


async def start_subscribed(mqtt: AsyncMqtt, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Start `mqtt` and wait until the broker has acknowledged every subscription it sends on
    connecting: a message published after this reaches it (the broker subscribes before it
    answers SUBACK)."""
    acks = count_subacks(mqtt)
    packets = len(list(filter_chunks(mqtt.subscriptions)))
    await mqtt.start()
    await eventually(lambda: len(acks) >= packets, timeout,
                     what=f"the broker's SUBACK of {packets} SUBSCRIBE packet(s)")


async def subscribe_acked(mqtt: AsyncMqtt, topic: str, qos: int = 1,
                          timeout: float = PROBE_TIMEOUT_S) -> None:
    """Subscribe a connected client to `topic` and wait for the broker's SUBACK."""
    acks = count_subacks(mqtt)
    mqtt.subscribe(topic, qos)
    await eventually(lambda: bool(acks), timeout, what=f"the SUBACK of {topic}")


async def delivered_so_far(mqtt: AsyncMqtt, topic: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """A barrier: wait until `mqtt`'s handler has had every message the broker queued for it
    before now (the retained ones sent after a SUBACK above all). `mqtt` publishes a marker
    to `topic`, which one of its subscriptions must match, and waits for it to come back: the
    broker delivers to a client in order. The marker is kept from the handler."""
    marker = f"barrier-{uuid.uuid4().hex}".encode()
    handler = mqtt._handler
    back = asyncio.Event()

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        if msg.payload == marker:
            back.set()
        elif handler is not None:
            handler(client, userdata, msg)

    mqtt.set_on_message(on_message)
    try:
        mqtt.publish(topic, marker, 1)
        await eventually(back.is_set, timeout, what=f"the marker back on {topic}")
    finally:
        if handler is not None:
            mqtt.set_on_message(handler)


def spawn_logged(cmd: list[str], log: Path, mode: str = "wb", **kw: Any
                 ) -> subprocess.Popen[bytes]:
    """Start `cmd` with its stdout and stderr going to `log`. The parent's copy of the file is
    closed at once (the child has its own), so nothing is left for the garbage collector."""
    with log.open(mode) as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, **kw)


async def ingester_subscribed(url: str, port: int, timeout: float = 60.0) -> None:
    """The subscription probe: wait until an ingester's subscription exists, by publishing a
    status from the unknown id `probe` until the ingester has recorded it in
    `unregistered_devices` (a message published before the ingester subscribed is for nobody,
    so the probe repeats)."""
    async def probe_recorded() -> bool:
        await publish(port, [("fire/v1/probe/status", b"{}")])
        conn = await asyncpg.connect(url)
        try:
            return bool(await conn.fetchval(
                "SELECT 1 FROM unregistered_devices WHERE device_id = 'probe'"))
        finally:
            await conn.close()

    await eventually(probe_recorded, timeout, 0.2, what="the ingester's subscription")


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
                await asyncio.sleep(0.005)  # flow control: the window is full, PUBACKs free it
            pub.publish(topic, payload, 1)
            sent += 1
            if sent % 100 == 0:
                ahead = sent / rate - (loop.time() - t0) if rate else 0
                await asyncio.sleep(max(ahead, 0))  # pacing: at most `rate` msg/s
        await eventually(lambda: pub.outstanding == 0, 240, 0.01,
                         what=f"the broker's PUBACK of all {sent} messages")
    finally:
        await pub.stop()
    return sent
