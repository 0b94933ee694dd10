"""Memory before authentication, against the real API process (`firetower api`): a large
unauthenticated body is refused (413) before it is read or parsed, and 40 concurrent wrong
logins hash at most FIRETOWER_PASSWORD_HASH_CONCURRENCY passwords at once. Peak memory is
the server's own: /proc/<pid>/status VmHWM, its peak reset (clear_refs 5) before the attack.
Limits per route, with the one error shape, against the API in the test process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from api.config import ApiSettings
from api.permissions import Role
from api.users import add_user
from firetower import db
from firetower.broker import free_port
from tests.api.conftest import TEST_SECRET, World, api_settings_for, seed
from tests.api.server import running_api
from tests.conftest import Database
from tests.helpers import eventually, spawn_logged

pytestmark = pytest.mark.integration
MIB = 1024 * 1024
BIG = 43 * MIB  # the body of the finding in issue 13 (+726 MB before it was refused)
HASHES_AT_ONCE = 2
ARGON2_MIB = 64


@dataclass
class ApiProcess:
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kib(self, field: str) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise AssertionError(f"{field} not in /proc/{self.proc.pid}/status")

    def reset_peak(self) -> None:
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS


@pytest.fixture
async def api_process(clean_db: Database, tmp_path: Path) -> AsyncIterator[ApiProcess]:
    conn = await db.connect(clean_db.url)
    try:
        await add_user(conn, "chief", Role.ADMIN, "a long admin password", None)
    finally:
        await conn.close()
    port = free_port()
    env = dict(os.environ, FIRETOWER_DATABASE_URL=clean_db.url, FIRETOWER_ENV="production",
               FIRETOWER_SECRET_KEY=TEST_SECRET, FIRETOWER_API_METRICS_PORT=str(free_port()),
               FIRETOWER_PASSWORD_HASH_CONCURRENCY=str(HASHES_AT_ONCE),
               # this test measures hashing, not throttling
               FIRETOWER_LOGIN_ACCOUNT_FAILURES="1000", FIRETOWER_LOGIN_ADDRESS_FAILURES="1000")
    proc = spawn_logged([sys.executable, "-m", "firetower", "api", "--no-migrate",
                         "--port", str(port)], tmp_path / "api.log", env=env)
    server = ApiProcess(proc, port)

    async def up() -> bool:
        try:
            async with httpx.AsyncClient(timeout=2) as c:
                return (await c.get(f"{server.url}/api/v1/openapi.json")).status_code == 200
        except httpx.TransportError:
            return False

    try:
        await eventually(up, 30, 0.2)
        # warm up: the first requests import and build what every later one uses
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
            await c.post("/api/v1/auth/token", data={"username": "chief", "password": "x"})
            await c.post("/api/v1/sites", json={"id": "s", "name": "s"})
        yield server
    finally:
        proc.terminate()
        proc.wait(15)


async def _raw(port: int, head: bytes, body: Iterable[bytes] = ()) -> bytes:
    """Send a request head and body chunks until the server answers or closes; return its
    answer (head and body, read to its Content-Length)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        for chunk in body:
            if reader.at_eof():
                break
            writer.write(chunk)
            try:
                await writer.drain()
            except ConnectionError:
                break  # the server answered and closed
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)
        length = next(int(line.split(b":")[1]) for line in answer.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        return answer + await asyncio.wait_for(reader.readexactly(length), 60)
    finally:
        writer.close()


def _json_chunks(size: int) -> Iterator[bytes]:
    """A valid JSON site of `size` bytes, HTTP/1.1 chunked, 1 MiB a chunk."""
    data = b'{"id": "big", "name": "' + b"a" * (size - 30) + b'"}'
    for i in range(0, len(data), MIB):
        part = data[i:i + MIB]
        yield f"{len(part):x}\r\n".encode() + part + b"\r\n"
    yield b"0\r\n\r\n"


async def test_a_large_unauthenticated_body_is_refused_before_it_is_read(
        api_process: ApiProcess) -> None:
    before = api_process.kib("VmRSS")
    api_process.reset_peak()
    # Content-Length over the limit: answered at once, without waiting for the body.
    head = (f"POST /api/v1/sites HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {BIG}\r\n\r\n").encode()
    answer = await asyncio.wait_for(_raw(api_process.port, head), 10)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert answer.endswith(b'{"detail":"request body larger than 65536 bytes"}'), answer
    # No Content-Length (chunked): refused once 64 KiB have been read, never parsed.
    head = (b"POST /api/v1/sites HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    answer = await _raw(api_process.port, head, _json_chunks(BIG))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    peak = api_process.kib("VmHWM")
    print(f"large body: VmRSS before {before // 1024} MiB, peak {peak // 1024} MiB, "
          f"+{(peak - before) // 1024} MiB")
    assert peak - before < 32 * 1024, (before, peak)


async def test_concurrent_wrong_logins_hash_a_bounded_number_at_once(
        api_process: ApiProcess) -> None:
    before = api_process.kib("VmRSS")
    api_process.reset_peak()
    async with httpx.AsyncClient(base_url=api_process.url, timeout=120,
                                 limits=httpx.Limits(max_connections=40)) as c:
        answers = await asyncio.gather(*(
            c.post("/api/v1/auth/token", data={"username": "chief", "password": f"wrong {i}"})
            for i in range(40)))
    assert [r.status_code for r in answers] == [401] * 40
    peak = api_process.kib("VmHWM")
    print(f"40 wrong logins: VmRSS before {before // 1024} MiB, peak {peak // 1024} MiB, "
          f"+{(peak - before) // 1024} MiB")
    # at most HASHES_AT_ONCE argon2 arenas of 64 MiB, plus some slack (40 was 2.4 GB)
    assert peak - before < (HASHES_AT_ONCE * ARGON2_MIB + 64) * 1024, (before, peak)


# -- per-route limits, against the API in the test process -----------------------------------

SMALL = ApiSettings(body_max_bytes=4096, floor_plan_max_bytes=20_000, import_max_bytes=10_000)


@pytest.fixture
async def small_limits(clean_db: Database) -> AsyncIterator[World]:
    with running_api(api_settings_for(clean_db.url), SMALL) as server:
        yield await seed(clean_db.url, server.url)


async def test_each_route_has_its_limit_with_the_error_shape(small_limits: World) -> None:
    world = small_limits
    async with world.client("admin") as c:
        assert (await c.post("/floors-nothing", json={})).status_code == 404
        assert (await c.post("/sites/s1/floors", json={"id": "F1", "name": "G"})).status_code \
            == 201
        r = await c.post("/sites", json={"id": "s9", "name": "x" * 5000})
        assert (r.status_code, r.json()) == (413, {"detail": "request body larger than 4096 "
                                                             "bytes"})
        png = {"Content-Type": "image/png"}
        ok = await c.put("/sites/s1/floors/F1/plan", content=b"\x89PNG" + b"0" * 15_000,
                         headers=png)
        assert ok.status_code == 200, ok.text  # above the default, within the plan's limit
        r = await c.put("/sites/s1/floors/F1/plan", content=b"0" * 20_001, headers=png)
        assert (r.status_code, r.json()["detail"]) == (413, "floor plan larger than 20000 "
                                                            "bytes")

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
            yield b"id,kind,site_id\n"
            for i in range(600):  # about 13 KB
                yield f"d{i:04},smoke_detector,s1\n".encode()

        r = await c.post("/devices/import", content=chunks(), headers={"Content-Type":
                                                                       "text/csv"})
        assert (r.status_code, r.json().get("detail")) == (413, "CSV larger than 10000 bytes")
        assert (await c.get("/devices")).json()["count"] == 0
