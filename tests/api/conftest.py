"""API fixtures: a running API on the session database, and a seeded world with two sites and
one user per role (each with a bearer token)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from api.config import ApiSettings
from api.permissions import Role
from api.users import add_user
from firetower import db
from firetower.settings import Settings
from tests.api.server import ApiServer, running_api
from tests.conftest import Database

PASSWORD = "correct horse battery"
TEST_SECRET = "test-secret-key-0123456789abcdef"
# name -> (role, sites)
USERS: dict[str, tuple[Role, list[str] | None]] = {
    "admin": (Role.ADMIN, None),
    "operator": (Role.OPERATOR, None),
    "installer": (Role.INSTALLER, ["s1"]),
    "manager": (Role.SITE_MANAGER, ["s1"]),
    "supervisor": (Role.SUPERVISOR, None),
    "integration": (Role.INTEGRATION, None),
}


def api_settings_for(db_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {"env": "test", "database_url": db_url,
                                 "secret_key": TEST_SECRET,
                                 "metrics_port": None,
                                 # test webhook receivers listen on loopback (SSRF allow-list)
                                 "webhook_allow_networks": "127.0.0.0/8,::1/128"}
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def api(database: Database) -> Iterator[ApiServer]:
    # One server for the whole session, so login throttling (tested on a server of its own,
    # test_login_throttle.py) must not count the failed logins of unrelated tests: every
    # test logs in from 127.0.0.1 with the same few accounts.
    relaxed = ApiSettings(login_account_failures=10_000, login_address_failures=10_000)
    with running_api(api_settings_for(database.url), relaxed) as server:
        yield server


@dataclass
class World:
    url: str
    db_url: str
    tokens: dict[str, str] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)

    def client(self, who: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return httpx.AsyncClient(base_url=f"{self.url}/api/v1", headers=headers, timeout=10)


async def seed(db_url: str, url: str) -> World:
    conn = await db.connect(db_url)
    world = World(url, db_url)
    try:
        await conn.execute("INSERT INTO sites (id, name) VALUES ('s1', 'Harbour Tower'), "
                           "('s2', 'Old Mill')")
        for name, (role, sites) in USERS.items():
            row = await add_user(conn, name, role, PASSWORD, sites)
            world.ids[name] = row["id"]
    finally:
        await conn.close()
    async with httpx.AsyncClient(base_url=f"{url}/api/v1") as client:
        for name in USERS:
            r = await client.post("/auth/token", data={"username": name, "password": PASSWORD})
            assert r.status_code == 200, r.text
            world.tokens[name] = r.json()["access_token"]
    return world


@pytest.fixture
async def world(clean_db: Database, api: ApiServer) -> AsyncIterator[World]:
    yield await seed(clean_db.url, api.url)


async def raise_alarm(store: object, device_id: str, site_id: str | None,
                      alarm_class: str = "fire", rule: str = "smoke.threshold",
                      point: str = "") -> int:
    """Raise (or re-occur) an alarm the way the rule engine does, through the alarm store."""
    from datetime import UTC, datetime

    from firetower.alarm_store import AlarmKey, AlarmStore, Occurrence
    from firetower.alarms import AlarmClass

    assert isinstance(store, AlarmStore)
    now = datetime.now(UTC)
    change = await store.raise_or_recur(Occurrence(
        AlarmKey(device_id, point, rule), AlarmClass(alarm_class), now, site_id=site_id,
        received_at=now, reason="test"))
    assert change.alarm_id is not None
    return change.alarm_id
