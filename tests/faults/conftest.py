"""Fixtures of the fault suite: one private PostgreSQL cluster for the session (cases may
crash it), a migrated template database, and per case a fresh database and a `Centre`
(broker, ingester, dispatcher, receiver) that is torn down whatever happens."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from firetower import db
from tests.faults.centre import Centre
from tests.pgcluster import PgCluster

TEMPLATE = "firetower_faults_template"


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    cluster = PgCluster(max_connections=200).init()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
async def faults_template(pg_cluster: PgCluster) -> str:
    url = await pg_cluster.create_database(TEMPLATE)
    await db.migrate(url, use_timescale=False)
    await pg_cluster.seal_template(TEMPLATE)
    return TEMPLATE


@pytest.fixture
async def make_centre(pg_cluster: PgCluster, faults_template: str,
                      ) -> AsyncIterator[Callable[..., Awaitable[Centre]]]:
    centres: list[Centre] = []

    async def make(**kwargs: Any) -> Centre:
        await asyncio.to_thread(pg_cluster.wait_ready)
        url = await pg_cluster.create_database(f"faults_{uuid.uuid4().hex[:10]}", faults_template)
        centre = await Centre.create(url, **kwargs)
        centres.append(centre)
        return centre

    yield make
    errors = []
    for centre in centres:
        try:
            await centre.close()
        except Exception as exc:  # close the others whatever happens to one
            errors.append(exc)
    if errors:
        raise errors[0]
