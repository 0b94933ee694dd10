"""The API through a database crash (issue 11): requests while the database is down or in
crash recovery get a clear 503 with Retry-After (they used to get a 500 while connections were
refused), the live stream stays open across the outage and delivers the changes made after
it, and once the database is back the same process answers normally.

A PRIVATE cluster (tests/pgcluster.py) is crashed with `pg_ctl stop -m immediate`, left down,
then held in recovery (57P03) before it accepts connections again.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator

import httpx
import pytest

from firetower import db
from firetower.alarm_store import AlarmStore
from tests.api.conftest import api_settings_for, raise_alarm, seed
from tests.api.server import running_api
from tests.api.sse import SseEvent, events
from tests.helpers import eventually
from tests.pgcluster import PgCluster

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    c = PgCluster().init()
    try:
        c.start()
        yield c
    finally:
        c.destroy()


async def read_stream(client: httpx.AsyncClient, sink: list[SseEvent]) -> None:
    async with client.stream("GET", "/alarms/stream") as r:
        assert r.status_code == 200
        async for ev in events(r):
            sink.append(ev)


async def test_requests_get_503_during_a_crash_and_the_stream_survives(
        cluster: PgCluster) -> None:
    url = await cluster.create_database(f"api_{uuid.uuid4().hex[:8]}")
    await db.migrate(url, use_timescale=False)
    with running_api(api_settings_for(url)) as server:
        world = await seed(url, server.url)
        received: list[SseEvent] = []
        async with world.client("operator") as client, \
                httpx.AsyncClient(base_url=f"{server.url}/api/v1",
                                  headers=client.headers, timeout=None) as streaming:
            reader = asyncio.create_task(read_stream(streaming, received))
            try:
                await eventually(lambda: _has(received, "snapshot"), 30)
                assert (await client.get("/auth/me")).status_code == 200

                cluster.crash()
                down = await client.get("/auth/me")  # connections refused
                assert down.status_code == 503, down.text
                assert down.headers["retry-after"].isdigit()
                assert "database unavailable" in down.json()["detail"]

                await asyncio.to_thread(cluster.start_in_recovery)
                recovering = await client.get("/auth/me")  # 57P03
                assert recovering.status_code == 503, recovering.text
                assert recovering.headers["retry-after"].isdigit()
                await asyncio.sleep(2.0)  # an outage of 2 s on purpose: the stream reads through it
                assert not reader.done(), reader

                await asyncio.to_thread(cluster.end_recovery)

                async def answers() -> bool:
                    return (await client.get("/auth/me")).status_code == 200

                await eventually(answers, 20, 0.2)
                conn = await db.connect(url)
                try:
                    await raise_alarm(AlarmStore(conn), "smk-after", "s1")
                finally:
                    await conn.close()

                async def delivered() -> bool:
                    return any(e.event == "alarm" and e.data["alarm"]
                               and e.data["alarm"]["device_id"] == "smk-after"
                               for e in received)

                await eventually(delivered, 20)
                assert not reader.done()
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                    await reader


async def _has(received: list[SseEvent], kind: str) -> bool:
    return any(e.event == kind for e in received)
