"""Shared pieces of the benchmarks: a throwaway database and broker, a counting subscriber
(the broker-only ceiling) and process CPU readings. Percentiles: bench/stats.py; records and
checks: bench/records.py."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from firetower import db
from firetower.broker import Broker, start_broker


def bench_db_url(base_url: str, name: str) -> str:
    parts = urlsplit(base_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def drop_database(url: str) -> None:
    """Drop the database `url` names (connecting to `postgres` on the same server)."""
    conn = await asyncpg.connect(bench_db_url(url, "postgres"))
    try:
        name = urlsplit(url).path.lstrip("/")
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@asynccontextmanager
async def fresh_database(base_url: str, name: str, *, plain: bool = False, keep: bool = False):
    """Drop and re-create `name`, migrate it; drop it afterwards unless `keep`."""
    url = bench_db_url(base_url, name)
    await drop_database(url)
    await db.migrate(url, use_timescale=False if plain else None)
    try:
        yield url
    finally:
        if not keep:
            await drop_database(url)


@contextmanager
def fresh_broker() -> Iterator[Broker]:
    state = Path(tempfile.mkdtemp(prefix="firetower-bench-broker-"))
    broker = start_broker(state)
    try:
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(state, ignore_errors=True)


def _count_messages(port: int, expected: int, ready: Any, result: Any, idle_s: float,
                    client_id: str, persistent: bool) -> None:
    asyncio.run(_count(port, expected, ready, result, idle_s, client_id, persistent))


async def _count(port: int, expected: int, ready: Any, result: Any, idle_s: float,
                 client_id: str, persistent: bool) -> None:
    """Receive with the ingester's own MQTT client (`AsyncMqtt`: PUBLISH fast path, PUBACKs
    batched every 5 ms), so the ceiling is what the broker and the client code can do
    without any storage, decoding or rules."""
    from firetower.mqtt import AsyncMqtt

    state = {"n": 0, "first": 0.0, "last": 0.0, "cpu_first": 0.0, "cpu_last": 0.0}
    acks: list[tuple[int, int]] = []
    mqtt = AsyncMqtt("127.0.0.1", port, client_id=client_id, clean_session=not persistent,
                     manual_ack=True)

    def on_message(client: Any, userdata: object, msg: Any) -> None:
        now = time.perf_counter()
        if not state["n"]:
            state["first"] = now
            # CPU from here on only: the process's start-up (interpreter, imports, connect) is
            # not the cost of receiving
            state["cpu_first"] = _own_cpu()
            ready.set()  # a backlog queued for the session may arrive before the SUBACK
        state["n"] += 1
        state["last"] = now
        acks.append((msg.mid, mqtt.generation))

    mqtt.set_on_message(on_message)
    mqtt.client.on_subscribe = lambda *a: ready.set()
    mqtt.subscribe("fire/#", 1)
    await mqtt.start(timeout=15)
    while True:
        await asyncio.sleep(0.005)
        if acks:
            mqtt.ack_many(acks)
            acks.clear()
            state["cpu_last"] = _own_cpu()  # the last messages' acknowledgements sent
        if state["n"] >= expected:
            break
        if state["n"] and time.perf_counter() - state["last"] > idle_s:
            break
    await mqtt.stop()
    result.put({"received": state["n"], "seconds": state["last"] - state["first"],
                "cpu_s": max(0.0, state["cpu_last"] - state["cpu_first"])})


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


class CountingSubscriber:
    """A QoS 1 subscriber in its own process that only counts and acknowledges: the
    broker-only ceiling."""

    def __init__(self, port: int, expected: int, idle_s: float = 10.0,
                 client_id: str = "bench-counter", persistent: bool = False) -> None:
        ctx = mp.get_context("spawn")
        self._ready = ctx.Event()
        self._result = ctx.Queue()
        self._proc = ctx.Process(target=_count_messages,
                                 args=(port, expected, self._ready, self._result, idle_s,
                                       client_id, persistent))

    def start(self) -> None:
        self._proc.start()
        if not self._ready.wait(15):
            raise RuntimeError("counting subscriber did not subscribe")

    async def result(self, timeout: float = 600) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        out = await loop.run_in_executor(None, self._result.get, True, timeout)
        self._proc.join(5)
        return out


def create_session(port: int, client_id: str, topic: str = "fire/#") -> None:
    """Make the broker hold a persistent QoS 1 session for `client_id`, then disconnect: what
    is published next queues for it (a backlog to drain)."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    done = {"sub": False}
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    client.on_subscribe = lambda *a: done.update(sub=True)
    client.connect("127.0.0.1", port)
    client.subscribe(topic, 1)
    deadline = time.monotonic() + 10
    while not done["sub"] and time.monotonic() < deadline:
        client.loop(0.1)
    client.disconnect()
    client.loop(0.1)
    if not done["sub"]:
        raise RuntimeError("could not create the session")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc/<pid>/stat). The benchmarks
    read it at the start and at the end of the window they measure and take the difference,
    so a process's start-up is not counted."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


# Rows the ingester's INSERT skipped because the (device, seq, ts) was already stored: what the
# broker delivered more than once (or a device sent again). The tables are unique on that key,
# so counting rows against distinct keys afterwards can only give 0; this is the real figure.
REDELIVERED_METRIC = "firetower_ingest_duplicates_total"


async def scrape_metrics(port: int, names: dict[str, str], *, attempts: int = 10
                         ) -> dict[str, float]:
    """Sum the samples of the metrics `names` (Prometheus name, or name plus a label selector
    such as `x_bucket{le="1.0"}`, -> key) from http://127.0.0.1:port/metrics. A saturated
    process answers late (its metrics thread waits for the GIL): wait and retry, then raise."""
    import httpx

    async with httpx.AsyncClient() as client:
        for attempt in range(attempts):
            try:
                text = (await client.get(f"http://127.0.0.1:{port}/metrics", timeout=30)).text
                break
            except httpx.HTTPError:
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(1.0)
    out = dict.fromkeys(names.values(), 0.0)
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name, _, labels = line.partition("{")
        name = name.partition(" ")[0]
        if 'le="1.0"' in labels:
            name += '{le="1.0"}'
        if name in names:
            out[names[name]] += float(line.rsplit(" ", 1)[1])
    return out
