"""Publishing connections: `Lane` (one MQTT connection with a bounded window of
unacknowledged messages) and `Pool` (N worker processes, one lane each, fed in chunks)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import sys
from asyncio.subprocess import PIPE
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from paho.mqtt.enums import MQTTErrorCode

from firetower.mqtt import AsyncMqtt

DEFAULT_WINDOW = 10_000       # unacknowledged messages per connection (paho's hard limit 65,535)
CHUNK = 1000                  # messages per hand-over to a worker process
Credentials = tuple[str, str | None] | None
Item = tuple[str, bytes, int, bool]


@dataclass
class PublishStats:
    sent: int = 0        # accepted by paho
    acked: int = 0       # PUBACK received (QoS 0 counts on send)
    errors: int = 0      # refused for good (e.g. a topic paho will not publish)
    retries: int = 0     # publishes retried after a full window
    elapsed: float = 0.0
    processes: int = 1
    # event confirmation (simulators/confirmations.py), when asked for
    confirmed: int = 0   # events the centre confirmed
    resent: int = 0      # events sent again while unconfirmed
    unconfirmed: int = 0  # events given up (max tries) or still pending at the end

    @property
    def rate(self) -> float:
        return self.acked / self.elapsed if self.elapsed > 0 else 0.0

    def add(self, other: PublishStats) -> None:
        self.sent += other.sent
        self.acked += other.acked
        self.errors += other.errors
        self.retries += other.retries
        self.confirmed += other.confirmed
        self.resent += other.resent
        self.unconfirmed += other.unconfirmed

    def __str__(self) -> str:
        confirm = (f"; events confirmed {self.confirmed:,}, resent {self.resent:,}, "
                   f"unconfirmed {self.unconfirmed:,}"
                   if self.confirmed or self.resent or self.unconfirmed else "")
        return (f"sent {self.sent:,}, acked {self.acked:,}, errors {self.errors:,} in "
                f"{self.elapsed:.1f} s ({self.rate:,.0f} msg/s, {self.processes} process(es))"
                + confirm)


class Lane:
    """One MQTT connection with a bounded window of unacknowledged QoS 1 messages."""

    def __init__(self, host: str, port: int, *, credentials: Credentials = None,
                 window: int = DEFAULT_WINDOW, client_id: str | None = None,
                 will: Item | None = None, max_inflight: int = 0) -> None:
        self.mqtt = AsyncMqtt(host, port, client_id=client_id, credentials=credentials,
                              will=will, max_inflight=max_inflight)
        self.mqtt.client.on_publish = self._on_publish
        self.window = min(window, 60_000)
        self.stats = PublishStats()
        self._room = asyncio.Event()
        self._pending = 0

    async def start(self, timeout: float = 10.0) -> None:
        await self.mqtt.start(timeout)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any,
                    properties: Any) -> None:
        self.stats.acked += 1
        self._pending -= 1
        if self._pending < self.window:
            self._room.set()

    async def _wait_room(self) -> None:
        while self._pending >= self.window:
            self._room.clear()
            await self._room.wait()

    async def put(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        if self._pending >= self.window:
            await self._wait_room()
        for attempt in range(1000):
            try:
                info = self.mqtt.client.publish(topic, payload, qos, retain)
            except ValueError:   # a topic paho refuses to send (wildcards, empty)
                self.stats.errors += 1
                return
            if info.rc in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                # NO_CONN: paho keeps QoS 1 messages and sends them after reconnecting
                self.stats.sent += 1
                if qos == 0:
                    self.stats.acked += 1
                else:
                    self._pending += 1
                return
            self.stats.retries += 1   # MQTT_ERR_QUEUE_SIZE: window full inside paho
            await asyncio.sleep(min(0.5, 0.001 * (attempt + 1)))
        self.stats.errors += 1

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait until every QoS 1 message is acknowledged."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self._pending > 0:
            if deadline is not None and loop.time() > deadline:
                return False
            self._room.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room.wait(), 0.2)
        return True

    async def stop(self) -> None:
        await self.mqtt.stop()

    def kill(self) -> None:
        self.mqtt.kill()


# -- worker processes -------------------------------------------------------------------------

class Pool:
    """N worker processes (`python -m simulators.worker`), one connection each, fed chunks of
    messages over stdin (length-prefixed msgpack); they report progress on stdout."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.procs: list[asyncio.subprocess.Process] = []
        self.chunks: list[list[Item]] = [[] for _ in range(n)]
        self.counts = [[0, 0] for _ in range(n)]
        self.finals: list[dict[str, Any] | None] = [None] * n
        self.errors: list[str] = []
        self._readers: list[asyncio.Task[None]] = []

    async def start(self, host: str, port: int, credentials: Credentials, window: int,
                    prefix: str) -> None:
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        if credentials is not None:
            env["FIRETOWER_SIM_USERNAME"] = credentials[0]
            env["FIRETOWER_SIM_PASSWORD"] = credentials[1] or ""
        for i in range(self.n):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "simulators.worker", host, str(port), str(window),
                f"{prefix}-{i}", stdin=PIPE, stdout=PIPE, env=env, start_new_session=True)
            self.procs.append(proc)
            self._readers.append(asyncio.create_task(self._read(i, proc)))

    async def _read(self, i: int, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            report = msgspec.json.decode(line)
            self.counts[i] = [report["sent"], report["acked"]]
            if report.get("final"):
                self.finals[i] = report
            if report.get("error"):
                self.errors.append(f"publisher process {i}: {report['error']}")

    async def add(self, lane: int, item: Item) -> None:
        chunk = self.chunks[lane]
        chunk.append(item)
        if len(chunk) >= CHUNK:
            await self.flush(lane)

    async def flush(self, lane: int | None = None) -> None:
        for i in range(self.n) if lane is None else (lane,):
            if self.chunks[i]:
                await self._send(i, _pack(self.chunks[i]))
                self.chunks[i] = []

    async def _send(self, i: int, frame: bytes) -> None:
        stdin = self.procs[i].stdin
        assert stdin is not None
        if self.procs[i].returncode is not None:
            raise RuntimeError(f"publisher process {i} exited")
        stdin.write(frame)
        await stdin.drain()   # back-pressure: waits while the worker is behind

    def progress(self) -> tuple[int, int]:
        return sum(c[0] for c in self.counts), sum(c[1] for c in self.counts)

    async def close(self, timeout: float) -> tuple[PublishStats, list[str]]:
        """Send the end marker, wait for every worker to drain and report."""
        with contextlib.suppress(Exception):
            await self.flush()
        for i, proc in enumerate(self.procs):
            if proc.returncode is None and proc.stdin is not None:
                with contextlib.suppress(Exception):
                    await self._send(i, _END)
                    proc.stdin.close()
        total = PublishStats()
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in self.procs)), timeout)
        except TimeoutError:
            self.errors.append("publisher processes did not finish in time")
            for p in self.procs:
                if p.returncode is None:
                    p.kill()
                    await p.wait()
        await asyncio.gather(*self._readers, return_exceptions=True)
        for i, final in enumerate(self.finals):
            if final is None:
                self.errors.append(f"publisher process {i} did not report")
                continue
            total.add(PublishStats(final["sent"], final["acked"], final["errors"],
                                   final["retries"]))
        return total, self.errors


_END = struct.pack(">I", 0)


def _pack(items: list[Item]) -> bytes:
    body = msgspec.msgpack.encode(items)
    return struct.pack(">I", len(body)) + body
