"""The whole alarm pipeline for browser tests: ingester + rule engine (in this event loop),
the API on a free port (own thread), users and a panel registered through the API."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from alerting.service import AlertingService
from firetower.broker import Broker, free_port
from firetower.mqtt import AsyncMqtt
from firetower.protocol import encode, format_ts, topic_for
from ingest.service import Ingester
from tests.api.conftest import TEST_SECRET, World, api_settings_for, seed
from tests.api.server import running_api
from tests.conftest import Database
from tests.helpers import ingester_subscribed

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def png(width: int = 400, height: int = 240) -> bytes:
    """A plain grey PNG, big enough to place markers on."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    raw = b"".join(b"\x00" + b"\x60" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0,
                                                               0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@dataclass
class Pipeline:
    world: World
    publisher: AsyncMqtt
    seq: int = 0

    def fire(self, device_id: str, zone: int = 1, point: int = 1) -> None:
        """A panel reports a fire (protocol v1), as a transmitting device would."""
        self.seq += 1
        self.publisher.publish(topic_for(device_id, "event"), encode(
            {"seq": self.seq, "ts": format_ts(datetime.now(UTC)), "category": "fire",
             "active": True, "zone": zone, "point": point, "component": "smoke_detector",
             "location": "3F east corridor"}))

    def event(self, device_id: str, category: str, active: bool, zone: int = 1,
              point: int = 1) -> None:
        """A panel reports any event category (fault, supervisory, ...) going on or off."""
        self.seq += 1
        self.publisher.publish(topic_for(device_id, "event"), encode(
            {"seq": self.seq, "ts": format_ts(datetime.now(UTC)), "category": category,
             "active": active, "zone": zone, "point": point, "component": "smoke_detector",
             "location": "3F east corridor"}))


async def _register(world: World, panels: list[str]) -> None:
    async with world.client("admin") as c:
        await c.post("/sites/s1/floors", json={"id": "3F", "name": "Third floor", "level": 3})
        await c.put("/sites/s1/floors/3F/plan", content=png(),
                    headers={"Content-Type": "image/png"})
        for i, dev in enumerate(panels):
            r = await c.post("/devices", json={
                "id": dev, "kind": "alarm_panel", "site_id": "s1", "floor_id": "3F",
                "location": f"Panel room {i}", "x": 0.1 + 0.8 * (i % 10) / 10,
                "y": 0.1 + 0.8 * ((i // 10) % 10) / 10})
            assert r.status_code == 201, r.text


@asynccontextmanager
async def pipeline(database: Database, broker: Broker, panels: list[str]) -> AsyncIterator[Pipeline]:
    settings = api_settings_for(database.url, mqtt_url=broker.url,
                                ingest_client_id=f"ingest-browser-{id(panels)}")
    with running_api(settings) as server:
        world = await seed(database.url, server.url)
        await _register(world, panels)
        alerting = AlertingService(settings)
        await alerting.start()
        ingester = Ingester(settings, listeners=[alerting])
        await ingester.start()
        publisher = AsyncMqtt("127.0.0.1", broker.port)
        await publisher.start()
        try:
            yield Pipeline(world, publisher)
        finally:
            await publisher.stop()
            await ingester.stop()
            await alerting.stop()


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)  # a probe's polling interval (deadline above)
    raise RuntimeError(f"nothing listens on {port}")


@asynccontextmanager
async def process_pipeline(database: Database, broker: Broker, panels: list[str],
                           ) -> AsyncIterator[Pipeline]:
    """The deployment shape: `firetower api` and `firetower ingest` (with the rule engine) as
    their own processes, so the measurement shares no interpreter with the test."""
    port = free_port()
    env = {**os.environ, "FIRETOWER_ENV": "test", "FIRETOWER_DATABASE_URL": database.url,
           "FIRETOWER_MQTT_URL": broker.url, "FIRETOWER_SECRET_KEY": TEST_SECRET,
           "FIRETOWER_METRICS_PORT": str(free_port()),
           "FIRETOWER_INGEST_CLIENT_ID": f"ingest-latency-{port}"}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        api = subprocess.Popen([sys.executable, "-m", "firetower", "api", "--port", str(port)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(api)
        _wait_port(port, api)
        url = f"http://127.0.0.1:{port}"
        world = await seed(database.url, url)
        await _register(world, panels)
        procs.append(subprocess.Popen([sys.executable, "-m", "firetower", "ingest"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        publisher = AsyncMqtt("127.0.0.1", broker.port)
        await publisher.start()
        await ingester_subscribed(database.url, broker.port)  # connected, registry loaded
        try:
            yield Pipeline(world, publisher)
        finally:
            await publisher.stop()
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(15)
            if proc.stderr is not None:
                proc.stderr.close()
