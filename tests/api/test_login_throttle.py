"""Login throttling against the real API (its own server, so the session's API keeps its
counters clean): per account and per client address, 429 with Retry-After and the one error
shape, no password hashed while throttled; a right password forgets the account's failures."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest

from api.config import ApiSettings
from tests.api.conftest import PASSWORD, World, api_settings_for, seed
from tests.api.server import running_api
from tests.conftest import Database

pytestmark = pytest.mark.integration
WINDOW_S = 600.0
LIMITS = ApiSettings(login_account_failures=3, login_address_failures=8,
                     login_window_s=WINDOW_S)


@pytest.fixture
async def world(clean_db: Database) -> AsyncIterator[World]:
    with running_api(api_settings_for(clean_db.url), LIMITS) as server:
        yield await seed(clean_db.url, server.url)


async def _login(c: httpx.AsyncClient, name: str, password: str) -> httpx.Response:
    return await c.post("/auth/token", data={"username": name, "password": password})


def _throttled(r: httpx.Response, limit: str) -> None:
    assert r.status_code == 429, r.text
    assert r.json() == {"detail": f"too many failed logins for this {limit}; try again later"}
    assert 1 <= int(r.headers["retry-after"]) <= WINDOW_S


async def test_per_account(world: World) -> None:
    async with world.client() as c:
        for _ in range(3):
            assert (await _login(c, "operator", "wrong password")).status_code == 401
        started = time.monotonic()
        _throttled(await _login(c, "operator", "wrong password"), "account")
        # the right password too: it is not even checked (no argon2 while throttled)
        _throttled(await _login(c, "operator", PASSWORD), "account")
        _throttled(await _login(c, "OPERATOR", PASSWORD), "account")
        assert time.monotonic() - started < 0.1
        # another account is not affected, and a success forgets that account's failures
        for _ in range(2):
            assert (await _login(c, "admin", "wrong password")).status_code == 401
        assert (await _login(c, "admin", PASSWORD)).status_code == 200
        for _ in range(3):
            assert (await _login(c, "admin", "wrong password")).status_code == 401


async def test_per_address(world: World) -> None:
    async with world.client() as c:
        for i in range(8):  # 8 names, 1 failure each: under every account's limit
            assert (await _login(c, f"nobody{i}", "wrong password")).status_code == 401
        r = await _login(c, "supervisor", PASSWORD)
        _throttled(r, "address")
