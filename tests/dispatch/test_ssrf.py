"""SSRF (issue 13): webhook URLs that point inside the centre's network are refused at
registration (API) and at every delivery after DNS resolution (dispatcher), unless allow-listed;
the delivery log says what failed, never what the target answered. Real API, real PostgreSQL,
real receivers on loopback ports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from dispatch.receiver import Receiver
from firetower import db
from firetower.alarm_store import AlarmStore
from firetower.broker import free_port
from tests.api.conftest import World, api_settings_for, seed
from tests.api.server import running_api
from tests.conftest import Database
from tests.dispatch.common import endpoint, pool_for, raise_fire, running
from tests.dispatch.common import seed as seed_devices
from tests.helpers import eventually

pytestmark = pytest.mark.integration
INTERNAL_BODY = "postgres internal admin page: password=hunter2"


@pytest.fixture
async def strict_world(clean_db: Database) -> AsyncIterator[World]:
    """An API with the default policy: no network allow-listed."""
    with running_api(api_settings_for(clean_db.url, webhook_allow_networks="")) as srv:
        yield await seed(clean_db.url, srv.url)


async def test_registration_refuses_internal_targets(strict_world: World) -> None:
    rx = await Receiver([]).start()  # a real service on a loopback port
    port = rx.port
    internal = [f"http://127.0.0.1:{port}/hook", f"http://localhost:{port}/hook",
                f"http://[::1]:{port}/", "http://10.0.0.5/", "http://192.168.1.1:8080/",
                "http://172.16.0.1/", "http://169.254.169.254/latest/meta-data/",
                "http://[fe80::1]/", "http://[fd00::1]/", "http://0.0.0.0:5432/",
                "http://[::ffff:127.0.0.1]:5432/", "http://127.1:5432/", "http://app.localhost/"]
    try:
        async with strict_world.client("integration") as c:
            for url in internal:
                r = await c.post("/webhooks", json={"url": url})
                assert r.status_code == 422, (url, r.text)
                assert r.json()["detail"].startswith("url: address not allowed"), r.text
            assert (await c.get("/webhooks")).json()["count"] == 0
            ok = await c.post("/webhooks", json={"url": "https://gateway.example/hook"})
            assert ok.status_code == 201, ok.text
            hook = ok.json()["id"]
            r = await c.patch(f"/webhooks/{hook}", json={"url": f"http://localhost:{port}/"})
            assert r.status_code == 422 and "address not allowed" in r.json()["detail"]
            got = (await c.get(f"/webhooks/{hook}")).json()
            assert got["url"] == "https://gateway.example/hook"
    finally:
        await rx.stop()
    assert rx.requests == []


async def test_allow_list_admits_a_network(clean_db: Database) -> None:
    settings = api_settings_for(clean_db.url, webhook_allow_networks="127.0.0.1/32")
    with running_api(settings) as srv:
        w = await seed(clean_db.url, srv.url)
        async with w.client("admin") as c:
            r = await c.post("/webhooks", json={"url": f"http://127.0.0.1:{free_port()}/"})
            assert r.status_code == 201, r.text
            r = await c.post("/webhooks", json={"url": "http://127.0.0.2/"})
            assert r.status_code == 422  # only the allow-listed /32


async def _attempts(pool: object, eid: int) -> list[dict[str, object]]:
    rows = await pool.fetch(  # type: ignore[attr-defined]
        "SELECT a.status_code, a.error, a.outcome FROM webhook_attempts a"
        " JOIN webhook_deliveries d ON d.id = a.delivery_id WHERE d.endpoint_id = $1"
        " ORDER BY a.id", eid)
    return [dict(r) for r in rows]


async def test_name_resolving_to_loopback_refused_at_delivery(clean_db: Database) -> None:
    """An endpoint stored with a name that resolves to loopback (as after DNS rebinding: the
    API's check passed, the name changed since): the dispatcher refuses it at connection time,
    keeps the message queued, and delivers once loopback is allow-listed."""
    await seed_devices(clean_db.url)
    rx = await Receiver([]).start()
    async with pool_for(clean_db.url) as pool:
        store = AlarmStore(pool)
        eid, secret = await endpoint(pool, f"http://localhost:{rx.port}/hook",
                                     event_types=["alarm.raised"])
        rx.secrets.append(secret)
        async with running(clean_db.url, allow=""):
            await raise_fire(store, "d0")
            await eventually(lambda: _attempts(pool, eid), timeout=30)
            tries = await _attempts(pool, eid)
            assert tries[0] == {"status_code": None, "error": "address not allowed",
                                "outcome": "retry"}
            health = await pool.fetchrow("SELECT last_error, consecutive_failures FROM"
                                         " webhook_endpoints WHERE id = $1", eid)
            assert health["last_error"] == "address not allowed"
        assert rx.requests == []
        async with running(clean_db.url):  # loopback allow-listed: the same message arrives
            await eventually(lambda: _n(rx, 1), timeout=30)
    await rx.stop()
    assert rx.bad_signatures == 0


async def _n(rx: Receiver, n: int) -> bool:
    return len(rx.unique) >= n


async def _answering_500(port: int) -> asyncio.Server:
    """An internal service that answers 500 with a page the integrator must not see."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass
        body = INTERNAL_BODY.encode()
        writer.write(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: "
                     + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body)
        await writer.drain()
        writer.close()
    return await asyncio.start_server(serve, "127.0.0.1", port)


async def test_delivery_log_says_what_failed_not_what_the_target_said(
        world_with_dispatch: tuple[World, int, int]) -> None:
    w, failing, closed = world_with_dispatch
    async with w.client("admin") as c:
        for eid, expected in ((failing, "HTTP 500"), (closed, "connection refused")):
            deliveries = (await c.get(f"/webhooks/{eid}/deliveries")).json()["data"]
            assert deliveries and deliveries[0]["last_error"] == expected, deliveries
            tries = (await c.get(f"/webhooks/{eid}/deliveries/{deliveries[0]['id']}"
                                 "/attempts")).json()
            assert tries and all(t["error"] == expected for t in tries), tries
            hook = (await c.get(f"/webhooks/{eid}")).json()
            assert hook["health"]["last_error"] == expected
            assert INTERNAL_BODY not in str([deliveries, tries, hook])
        # A row written before the fixed texts (the body was stored then) is cut on the way out.
        conn = await db.connect(w.db_url)
        try:
            await conn.execute("UPDATE webhook_attempts SET error = $1", f"HTTP 500: {INTERNAL_BODY}")
            await conn.execute("UPDATE webhook_deliveries SET last_error = $1",
                               f"HTTP 500: {INTERNAL_BODY}")
            await conn.execute("UPDATE webhook_endpoints SET last_error = $1",
                               "ConnectError: [Errno 111] Connect call failed ('10.0.0.5', 5432)")
        finally:
            await conn.close()
        deliveries = (await c.get(f"/webhooks/{failing}/deliveries")).json()["data"]
        tries = (await c.get(f"/webhooks/{failing}/deliveries/{deliveries[0]['id']}"
                             "/attempts")).json()
        hook = (await c.get(f"/webhooks/{failing}")).json()
        assert deliveries[0]["last_error"] == "HTTP 500" and tries[0]["error"] == "HTTP 500"
        assert hook["health"]["last_error"] == "request failed"


@pytest.fixture
async def world_with_dispatch(clean_db: Database) -> AsyncIterator[tuple[World, int, int]]:
    """An API and a dispatcher (loopback allow-listed, as an administrator would for an
    internal gateway) with two endpoints: one answering 500 with a body, one closed port."""
    settings = api_settings_for(clean_db.url)
    with running_api(settings) as srv:
        w = await seed(clean_db.url, srv.url)
        port = free_port()
        server = await _answering_500(port)
        try:
            async with w.client("admin") as c:
                failing = (await c.post("/webhooks", json={
                    "url": f"http://127.0.0.1:{port}/", "event_types": ["alarm.raised"]}))
                closed = (await c.post("/webhooks", json={
                    "url": f"http://127.0.0.1:{free_port()}/", "event_types": ["alarm.raised"]}))
                ids = (failing.json()["id"], closed.json()["id"])
            async with pool_for(clean_db.url) as pool, \
                    running(clean_db.url, secret_key=settings.secret_key.get_secret_value()):
                await raise_fire(AlarmStore(pool), "d-ssrf", site="s1")

                async def both_tried() -> bool:
                    return all([await _attempts(pool, i) for i in ids])
                await eventually(both_tried, timeout=30)
            yield w, *ids
        finally:
            server.close()
            await server.wait_closed()
