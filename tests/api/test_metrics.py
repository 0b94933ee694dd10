"""The API's Prometheus metrics move when real requests and operator actions happen, and
`firetower api` serves them on its own port (or goes on without them if the port is taken).

The in-process API runs in this test process, so its counters are read from the process
registry; metrics are process-global, so every assertion is on a difference."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from firetower import db
from firetower.alarm_store import AlarmStore
from firetower.broker import free_port
from tests.api.conftest import World, raise_alarm
from tests.api.sse import events
from tests.conftest import Database
from tests.helpers import eventually, spawn_logged

pytestmark = pytest.mark.integration
ALARM = "/api/v1/alarms/{alarm_id}"


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def store(world: World) -> AsyncIterator[AlarmStore]:
    pool = await db.create_pool(world.db_url, max_size=2)
    await pool.execute("INSERT INTO devices (id, kind, site_id) VALUES"
                       " ('smk-1', 'smoke_detector', 's1')")
    yield AlarmStore(pool)
    await pool.close()


async def test_requests_are_counted_by_route_template_method_and_status(
        world: World, store: AlarmStore) -> None:
    fire = await raise_alarm(store, "smk-1", "s1")
    ok = {"route": ALARM, "method": "GET", "status": "2xx"}
    missing = {"route": ALARM, "method": "GET", "status": "4xx"}
    before = (value("firetower_api_requests_total", **ok),
              value("firetower_api_requests_total", **missing),
              value("firetower_api_request_seconds_count", route=ALARM, method="GET"),
              value("firetower_api_requests_total", route="<unmatched>", method="GET",
                    status="4xx"))
    async with world.client("operator") as c:
        for _ in range(3):
            assert (await c.get(f"/alarms/{fire}")).status_code == 200
        assert (await c.get(f"/alarms/{fire + 1000}")).status_code == 404
        assert (await c.get("/no/such/thing")).status_code == 404
    after = (value("firetower_api_requests_total", **ok),
             value("firetower_api_requests_total", **missing),
             value("firetower_api_request_seconds_count", route=ALARM, method="GET"),
             value("firetower_api_requests_total", route="<unmatched>", method="GET",
                   status="4xx"))
    assert [a - b for a, b in zip(after, before, strict=True)] == [3, 1, 4, 1]
    # the raw path never becomes a label value
    paths = {s.labels.get("route") for m in REGISTRY.collect()
             if m.name == "firetower_api_requests" for s in m.samples}
    assert f"/api/v1/alarms/{fire}" not in paths


async def test_operator_actions_are_counted_by_outcome(world: World, store: AlarmStore) -> None:
    fire = await raise_alarm(store, "smk-1", "s1")

    def actions() -> list[float]:
        return [value("firetower_api_alarm_actions_total", action="acknowledge", verdict="",
                      outcome="ok"),
                value("firetower_api_alarm_actions_total", action="acknowledge", verdict="",
                      outcome="conflict"),
                value("firetower_api_alarm_actions_total", action="verdict",
                      verdict="true_fire", outcome="ok")]

    before = actions()
    async with world.client("operator") as c:
        r = await c.post(f"/alarms/{fire}/acknowledge", json={"reason": "calling site"})
        assert r.status_code == 200, r.text
        r = await c.post(f"/alarms/{fire}/acknowledge", json={"reason": "again"})
        assert r.status_code == 409, r.text
        r = await c.post(f"/alarms/{fire}/verdict",
                         json={"verdict": "true_fire", "reason": "brigade on site"})
        assert r.status_code == 200, r.text
    assert [a - b for a, b in zip(actions(), before, strict=True)] == [1, 1, 1]


async def test_stream_clients_and_events_sent(world: World, store: AlarmStore) -> None:
    clients = value("firetower_stream_clients")
    sent = value("firetower_stream_events_sent_total")
    async with world.client("operator") as c, c.stream("GET", "/alarms/stream") as r:
        assert r.status_code == 200
        stream = events(r)
        assert (await anext(stream)).event == "snapshot"
        assert value("firetower_stream_clients") - clients == 1
        await raise_alarm(store, "smk-1", "s1")
        assert (await anext(stream)).event == "alarm"

        async def counted() -> bool:  # counted just after the frame is handed to the server
            return value("firetower_stream_events_sent_total") - sent == 1

        await eventually(counted, 30)

    async def gone() -> bool:
        return value("firetower_stream_clients") == clients

    await eventually(gone, 30)


def _api_process(db_url: str, metrics_port: int, log: Path) -> tuple[subprocess.Popen[bytes],
                                                                       int]:
    port = free_port()
    env = dict(os.environ, FIRETOWER_DATABASE_URL=db_url, FIRETOWER_ENV="development",
               FIRETOWER_API_PORT=str(port), FIRETOWER_API_METRICS_PORT=str(metrics_port),
               FIRETOWER_EVENT_LOOP="asyncio")
    proc = spawn_logged([sys.executable, "-m", "firetower", "api", "--no-migrate"], log, env=env)
    return proc, port


async def _get(url: str) -> httpx.Response | None:
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            return await client.get(url)
    except httpx.TransportError:
        return None


async def test_firetower_api_serves_metrics_on_its_port(database: Database,
                                                        tmp_path: Path) -> None:
    metrics_port = free_port()
    proc, port = _api_process(database.url, metrics_port, tmp_path / "api.log")
    try:
        r = await eventually(lambda: _get(f"http://127.0.0.1:{port}/api/v1/openapi.json"), 30, 0.2)
        assert r.status_code == 200

        async def scraped() -> dict[tuple[str, ...], float] | None:
            r = await _get(f"http://127.0.0.1:{metrics_port}/metrics")
            if r is None:
                return None
            found = {(s.labels["route"], s.labels["method"], s.labels["status"]): s.value
                     for m in text_string_to_metric_families(r.text)
                     if m.name == "firetower_api_requests" for s in m.samples
                     if s.name.endswith("_total")}
            return found or None

        found = await eventually(scraped, 30, 0.2)
        assert found[("/api/v1/openapi.json", "GET", "2xx")] >= 1
    finally:
        proc.terminate()
        proc.wait(15)


async def test_a_metrics_port_in_use_does_not_stop_the_api(database: Database,
                                                           tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        log = tmp_path / "api.log"
        proc, port = _api_process(database.url, taken.getsockname()[1], log)
        try:
            r = await eventually(lambda: _get(f"http://127.0.0.1:{port}/api/v1/openapi.json"),
                               30, 0.2)
            assert r.status_code == 200
            assert proc.poll() is None
        finally:
            proc.terminate()
            proc.wait(15)
    assert "metrics not served" in log.read_text()
