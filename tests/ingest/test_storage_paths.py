"""Both storage paths: plain PostgreSQL everywhere, TimescaleDB where the extension exists
(skipped, not failed, elsewhere). The same ingest and the same queries work on both."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from firetower import db
from ingest.service import Ingester
from tests.conftest import settings_for, wait_for
from tests.helpers import fleet, publish, register, telemetry_stream

pytestmark = pytest.mark.integration

START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
ROLLUP = """
SELECT device_id, sum(samples) AS n, max(temperature_max) AS tmax, min(pressure_min) AS pmin
FROM telemetry_1m WHERE bucket >= now() - interval '1 day' GROUP BY device_id ORDER BY device_id
"""


async def ingest_sample(url: str, broker) -> list[asyncpg.Record]:  # type: ignore[no-untyped-def]
    devices = fleet(40)
    stream = telemetry_stream(devices, per_device=5, seed=2, start=START)
    await register(url, devices)
    ingester = Ingester(settings_for(url, broker))
    await ingester.start()
    conn = await db.connect(url)
    try:
        await publish(broker.port, stream)

        async def stored() -> bool:
            return await conn.fetchval("SELECT count(*) FROM telemetry") == len(stream)

        await wait_for(stored, 30)
        return await conn.fetch(ROLLUP)
    finally:
        await conn.close()
        await ingester.stop()


async def test_plain_postgres_path(clean_db, broker) -> None:
    assert clean_db.flavour == "plain"
    rows = await ingest_sample(clean_db.url, broker)
    assert len(rows) == 40 and all(r["n"] == 5 for r in rows)
    conn = await db.connect(clean_db.url)
    try:
        assert await db.storage_flavour(conn) == "plain"
        kind = await conn.fetchval("SELECT relkind FROM pg_class WHERE relname = 'telemetry_1m'")
        assert kind == b"v"  # a plain view, not a materialized one
    finally:
        await conn.close()


@pytest.mark.timescale
async def test_timescale_path(timescale_database, broker) -> None:
    await timescale_database.reset()
    rows = await ingest_sample(timescale_database.url, broker)
    assert len(rows) == 40 and all(r["n"] == 5 for r in rows)
    conn = await db.connect(timescale_database.url)
    try:
        assert await db.storage_flavour(conn) == "timescale"
        hypertables = {r["hypertable_name"]: r["compression_enabled"] for r in await conn.fetch(
            "SELECT hypertable_name, compression_enabled FROM timescaledb_information.hypertables")}
        assert hypertables == {"telemetry": True, "events": True, "device_status": True}
        segment = await conn.fetchval(
            "SELECT attname FROM timescaledb_information.compression_settings "
            "WHERE hypertable_name = 'telemetry' AND segmentby_column_index = 1")
        assert segment == "device_id"
        jobs = {(r["proc_name"], r["hypertable_name"]): r["scheduled"] for r in await conn.fetch(
            "SELECT proc_name, hypertable_name, scheduled FROM timescaledb_information.jobs "
            "WHERE hypertable_name IS NOT NULL")}
        for target in ("telemetry", "telemetry_1m"):  # the aggregate is kept like the raw data
            assert ("policy_retention", target) in jobs
            assert ("policy_compression", target) in jobs
        # the centre runs them (ingest/storage.py), TimescaleDB's workers do not
        assert not any(jobs.values())
        cagg = await conn.fetchval(
            "SELECT view_name FROM timescaledb_information.continuous_aggregates")
        assert cagg == "telemetry_1m"
        # compress every chunk, then a redelivered message is still stored only once
        await conn.execute("SELECT compress_chunk(c) FROM show_chunks('telemetry') c")
        before = await conn.fetchval("SELECT count(*) FROM telemetry")
        assert before == 200
    finally:
        await conn.close()
    again = await ingest_sample_again(timescale_database.url, broker)
    assert again == before


async def ingest_sample_again(url: str, broker) -> int:  # type: ignore[no-untyped-def]
    stream = telemetry_stream(fleet(40), per_device=5, seed=2, start=START)
    ingester = Ingester(settings_for(url, broker))
    await ingester.start()
    try:
        await publish(broker.port, stream)
        await wait_for(lambda: _seen(ingester, len(stream)), 30)
    finally:
        await ingester.stop()
    conn = await db.connect(url)
    try:
        return await conn.fetchval("SELECT count(*) FROM telemetry")
    finally:
        await conn.close()


async def _seen(ingester: Ingester, n: int) -> bool:
    return ingester.totals["stored"] + ingester.totals["duplicates"] >= n
