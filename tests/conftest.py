"""Shared fixtures: a real Mosquitto (started here with the project's configuration) and a
fresh PostgreSQL database per test session, migrated by the project's own migration runner.

FIRETOWER_TEST_ADMIN_URL points at a PostgreSQL superuser connection. Unset, the tests use the
project's private cluster (firetower/localpg.py: var/postgresql, started here if it is not
running, `firetower localdb`), never the machine's own server. Databases are named
firetower_test_<random> and dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from firetower import db, localpg
from firetower.broker import Broker, start_broker
from firetower.settings import Settings
from tests.helpers import eventually

PROJECT_DIR = Path(__file__).resolve().parent.parent
# The suite asks for development explicitly (it and the processes it starts use the public key;
# outside development the settings refuse it: docs/security.md). Tests of a default
# environment remove it (tests/unit/test_secrets.py).
os.environ.setdefault("FIRETOWER_ENV", "development")


def _admin_url() -> str:
    url = os.environ.get("FIRETOWER_TEST_ADMIN_URL")
    if url:
        return url
    cluster, _ = localpg.ensure(localpg.default_root(PROJECT_DIR))
    return cluster.url("postgres")


ADMIN_URL = _admin_url()


def _db_url(name: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


async def _drop(name: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _timescale_installable() -> bool:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        return await db.timescale_available(conn)
    finally:
        await conn.close()


class Database:
    """A migrated throwaway database."""

    def __init__(self, url: str, flavour: str) -> None:
        self.url = url
        self.flavour = flavour

    async def reset(self) -> None:
        """Empty every data table (keeps the schema)."""
        conn = await asyncpg.connect(self.url)
        try:
            tables = await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'schema_migrations'")
            if tables:
                names = ", ".join(f'"{r["tablename"]}"' for r in tables)
                await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        finally:
            await conn.close()


async def make_database(flavour: str) -> Database:
    name = f"firetower_test_{uuid.uuid4().hex[:10]}"
    url = _db_url(name)
    await db.migrate(url, use_timescale=(flavour == "timescale"))
    return Database(url, flavour)


@pytest.fixture(scope="session")
async def database() -> AsyncIterator[Database]:
    """Plain PostgreSQL schema, shared by the session; tests call `reset()` as needed."""
    d = await make_database("plain")
    yield d
    await _drop(d.url.rpartition("/")[2])


@pytest.fixture(scope="session")
async def timescale_database() -> AsyncIterator[Database]:
    if not await _timescale_installable():
        pytest.skip("timescaledb extension is not installed on this PostgreSQL")
    d = await make_database("timescale")
    yield d
    await _drop(d.url.rpartition("/")[2])


@pytest.fixture
async def fresh_timescale_database() -> AsyncIterator[Database]:
    """A TimescaleDB database for one test. Running the storage policies moves the continuous
    aggregate's materialized horizon, and `reset()` does not empty the aggregate (truncating
    the raw table leaves it as it is), so such tests do not share the session's database."""
    if not await _timescale_installable():
        pytest.skip("timescaledb extension is not installed on this PostgreSQL")
    d = await make_database("timescale")
    yield d
    await _drop(d.url.rpartition("/")[2])


@pytest.fixture
async def clean_db(database: Database) -> Database:
    await database.reset()
    return database


@pytest.fixture(scope="session")
def chromium_installed() -> None:
    """The browser tests need Debian's Chromium; without it they fail (a skip would hide
    their failures): `make test` installs it."""
    from tests.api.pipeline import CHROMIUM

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed ({CHROMIUM}): `make test` installs it, or "
                    "apt-get install -y --no-install-recommends chromium", pytrace=False)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A Mosquitto with the project's configuration, for the whole session."""
    b = start_broker(tmp_path_factory.mktemp("broker"))
    yield b
    b.stop()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Broker]:
    """A Mosquitto for one test, which may stop, kill and restart it."""
    b = start_broker(tmp_path / "broker")
    yield b
    b.stop()


def settings_for(db_url: str, broker: Broker, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "env": "development",
        "database_url": db_url,
        "mqtt_url": broker.url,
        "ingest_client_id": f"ingest-test-{uuid.uuid4().hex[:8]}",
        "metrics_port": None,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


# The probe's old name, still imported by tests/ingest/test_storage_paths.py (kept by another
# owner); everything else imports `eventually` from tests.helpers.
wait_for = eventually
