"""The TimescaleDB policies as the centre runs them (ingest/storage.py, docs/storage.md): in
the foreground and recorded as succeeded, late rows materialized, telemetry_1m compressed and
kept like the raw data. Real database, real ingester; skipped where the extension is absent;
a database of its own per test (the policies move the aggregate's horizon). The plain path:
the same schema, nothing to run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from firetower import db
from ingest.service import Ingester
from ingest.storage import HISTORY_RETENTION, POLICIES, StoragePolicies
from tests.conftest import settings_for, wait_for
from tests.helpers import fleet, publish, register, telemetry_stream

pytestmark = pytest.mark.integration

# the 1-minute aggregate's rows of the late devices, materialized only (not the real-time part)
MATERIALIZED = """
SELECT count(*) AS buckets, coalesce(sum(samples), 0) AS samples
FROM _timescaledb_internal.{table} WHERE device_id LIKE 'late-%'
"""


async def _materialized(conn: asyncpg.Connection) -> tuple[int, int]:
    table = await conn.fetchval(
        "SELECT materialization_hypertable_name FROM timescaledb_information.continuous_aggregates"
        " WHERE view_name = 'telemetry_1m'")
    row = await conn.fetchrow(MATERIALIZED.format(table=table))
    assert row is not None
    return row["buckets"], row["samples"]


async def _ingest(url: str, broker, devices, per_device: int, start: datetime) -> int:  # type: ignore[no-untyped-def]
    stream = telemetry_stream(devices, per_device=per_device, seed=3, start=start)
    await register(url, devices)
    ingester = Ingester(settings_for(url, broker))
    await ingester.start()
    try:
        await publish(broker.port, stream)
        await wait_for(lambda: _settled(ingester, len(stream)), 30)
    finally:
        await ingester.stop()
    return len(stream)


async def _settled(ingester: Ingester, n: int) -> bool:
    return ingester.totals["stored"] + ingester.totals["duplicates"] >= n


async def _due_then_run(conn: asyncpg.Connection, job_id: int, successes: int) -> None:
    """Make the job due now; wait until the running loop has run it to `successes`."""
    await conn.execute("UPDATE storage_jobs SET next_start = now() WHERE job_id = $1", job_id)

    async def ran() -> bool:
        return await conn.fetchval("SELECT total_successes FROM storage_jobs WHERE job_id = $1",
                                   job_id) == successes

    await wait_for(ran, 30)


@pytest.mark.timescale
async def test_policies_run_in_the_foreground_and_succeed(fresh_timescale_database) -> None:  # type: ignore[no-untyped-def]
    policies = StoragePolicies(fresh_timescale_database.url, tick_s=0.1,
                               backoff=db.Backoff(0.05, 0.2))
    other = StoragePolicies(fresh_timescale_database.url, tick_s=0.1)
    conn = await db.connect(fresh_timescale_database.url)
    try:
        jobs = await conn.fetch(
            "SELECT job_id, proc_name, hypertable_name, scheduled FROM "
            "timescaledb_information.jobs WHERE proc_name = ANY($1::text[])",
            [*POLICIES, HISTORY_RETENTION])
        # compression and retention of the three hypertables and of the aggregate, its
        # refresh, and TimescaleDB's pruning of its job history
        assert len(jobs) == 10
        assert not any(j["scheduled"] for j in jobs)  # TimescaleDB's workers do not run them
        await policies.start()

        async def all_recorded() -> list[asyncpg.Record]:
            rows = await conn.fetch("SELECT * FROM storage_jobs")
            return rows if len(rows) == len(jobs) else []

        rows = await wait_for(all_recorded, 30)
        assert {r["job_id"] for r in rows} == {j["job_id"] for j in jobs}
        assert all(r["last_status"] == "succeeded" and r["total_failures"] == 0
                   and r["last_error"] is None for r in rows), [dict(r) for r in rows]
        refresh = next(r for r in rows if r["name"] == "refresh telemetry_1m")
        assert refresh["next_start"] - refresh["last_start"] == timedelta(minutes=1)
        # a second process (another ingest worker) stands by: one runner per database
        assert await other.tick() is True
        assert policies.leader and not other.leader
        # the job comes round again at its schedule: make it due, it runs once more
        await _due_then_run(conn, refresh["job_id"], 2)
        # the runner's session ends (a restart, a network cut): it reconnects, takes the lock
        # again and runs the job when it is next due
        assert await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = 'firetower storage policies' AND datname = current_database()"
        ) == 2  # the runner's and the standby's
        await _due_then_run(conn, refresh["job_id"], 3)
        assert policies.leader
        lag = await policies.measure_lag(conn)
        assert set(lag) == {"telemetry_1m"}
    finally:
        await other.stop()
        await policies.stop()
        await conn.close()


@pytest.mark.timescale
async def test_a_failing_policy_is_recorded_as_failed(fresh_timescale_database) -> None:  # type: ignore[no-untyped-def]
    policies = StoragePolicies(fresh_timescale_database.url)
    conn = await db.connect(fresh_timescale_database.url)
    try:
        job = next(j for j in await policies.jobs(conn) if j.name == "retention telemetry")
        broken = job.__class__(**{**{f: getattr(job, f) for f in job.__slots__},
                                  "job_id": 2**31 - 1})  # no such job: run_job refuses it
        outcome = await policies.run(conn, broken)
        assert not outcome.ok and outcome.error
        row = await conn.fetchrow("SELECT * FROM storage_jobs WHERE job_id = $1", 2**31 - 1)
        assert row is not None
        assert row["last_status"] == "failed" and row["consecutive_failures"] == 1
        assert row["next_start"] - row["last_finish"] == min(job.retry, job.schedule)
    finally:
        await policies.stop()
        await conn.close()


@pytest.mark.timescale
async def test_late_rows_reach_the_aggregate(fresh_timescale_database, broker) -> None:  # type: ignore[no-untyped-def]
    """Rows 3 h late (beyond the refresh window's 2 h) after an outage, and rows 10 days late
    into a compressed chunk: the refresh job alone leaves them out, the centre's run does not."""
    url = fresh_timescale_database.url
    policies = StoragePolicies(url)
    conn = await db.connect(url)
    try:
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        await _ingest(url, broker, fleet(5), 3, now - timedelta(minutes=30))  # on time
        # a reading of 10 days ago, so that day's chunk exists, then compress every chunk
        await conn.execute("INSERT INTO telemetry (ts, received_at, device_id, seq) "
                           "VALUES ($1, $1, 'seed', 1)", now - timedelta(days=10))
        refresh = next(j for j in await policies.jobs(conn) if j.refresh)
        assert (await policies.run(conn, refresh)).ok
        await conn.execute("SELECT compress_chunk(c) FROM show_chunks('telemetry') c")

        late = [(f"late-{i}", kind) for i, (_, kind) in enumerate(fleet(4))]
        n = await _ingest(url, broker, late, 5, now - timedelta(hours=3))
        n_old = await _ingest(url, broker, [("late-old", "heat_detector")], 4,
                              now - timedelta(days=10))
        # TimescaleDB's refresh job covers its own window only
        await conn.execute(f"CALL run_job({refresh.job_id})")
        assert await _materialized(conn) == (0, 0)

        outcome = await policies.run(conn, refresh)
        assert outcome.ok
        assert await _materialized(conn) == (n + n_old, n + n_old)  # one reading per bucket
        # and the view answers with them (the API reads it)
        assert await conn.fetchval("SELECT sum(samples) FROM telemetry_1m "
                                   "WHERE device_id LIKE 'late-%'") == n + n_old
    finally:
        await policies.stop()
        await conn.close()


@pytest.mark.timescale
async def test_aggregate_is_compressed_and_kept_like_the_raw_data(fresh_timescale_database) -> None:  # type: ignore[no-untyped-def]
    policies = StoragePolicies(fresh_timescale_database.url)
    conn = await db.connect(fresh_timescale_database.url)
    try:
        jobs = {(j.proc, j.target): j.config for j in await policies.jobs(conn)}
        for proc, key in (("policy_compression", "compress_after"),
                          ("policy_retention", "drop_after")):
            assert jobs[(proc, "telemetry_1m")][key] == jobs[(proc, "telemetry")][key]
        segment = await conn.fetch(
            "SELECT s.attname FROM timescaledb_information.compression_settings s "
            "JOIN timescaledb_information.continuous_aggregates c "
            "ON s.hypertable_name = c.materialization_hypertable_name "
            "WHERE c.view_name = 'telemetry_1m' AND s.segmentby_column_index IS NOT NULL")
        assert [r["attname"] for r in segment] == ["device_id"]

        # readings from 9 to 6 days ago, every 10 minutes from 3 devices: the aggregate's
        # chunks older than 7 days are compressed by the centre's run of its policy
        start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=9)
        rows = [(start + timedelta(minutes=m), f"agg-{d}", m, 20.0 + d)
                for m in range(0, 3 * 1440, 10) for d in range(3)]
        await conn.copy_records_to_table(
            "telemetry", records=[(ts, ts, dev, seq, t) for ts, dev, seq, t in rows],
            columns=["ts", "received_at", "device_id", "seq", "temperature_c"])
        for job in await policies.jobs(conn):
            if job.target == "telemetry_1m":
                assert (await policies.run(conn, job)).ok, job.name
        chunks = await conn.fetch(
            "SELECT range_end, is_compressed FROM timescaledb_information.chunks c "
            "JOIN timescaledb_information.continuous_aggregates a "
            "ON c.hypertable_name = a.materialization_hypertable_name "
            "WHERE a.view_name = 'telemetry_1m'")
        cutoff = datetime.now(UTC) - timedelta(days=7)
        assert any(c["is_compressed"] for c in chunks)
        assert not all(c["is_compressed"] for c in chunks)
        assert all(c["is_compressed"] == (c["range_end"] <= cutoff) for c in chunks)
        assert await conn.fetchval("SELECT sum(samples) FROM telemetry_1m") == len(rows)
        assert await conn.fetchval("SELECT max(temperature_max) FROM telemetry_1m "
                                   "WHERE device_id = 'agg-2'") == 22.0
    finally:
        await policies.stop()
        await conn.close()


async def test_plain_path_has_nothing_to_run(clean_db) -> None:  # type: ignore[no-untyped-def]
    policies = StoragePolicies(clean_db.url)
    try:
        assert await policies.tick() is False  # the loop ends: nothing to schedule
        assert policies.plain and not policies.leader
    finally:
        await policies.stop()
    conn = await db.connect(clean_db.url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM storage_jobs") == 0
        assert "stored and kept as telemetry is" in await conn.fetchval(
            "SELECT obj_description('telemetry_1m'::regclass)")
    finally:
        await conn.close()
