"""The TimescaleDB storage policies, run by the centre itself in the foreground
(docs/storage.md).

TimescaleDB 2.28 on PostgreSQL 15.20 does every policy's work in its background workers and
then records the run as failed (SQLSTATE 24000, "cannot drop portal "" while it is being set
up"), backs off, and shows every job failing. Called in an ordinary session (`CALL
run_job(id)`) the same policies succeed. So migration 0010 switches the scheduled runs off and
`StoragePolicies` runs them: each policy job at its own schedule_interval (from TimescaleDB's
job table, which stays the one place that configures a policy), one job at a time, with each
outcome recorded in `storage_jobs`, in the log and in metrics.

After a continuous aggregate's refresh job it also refreshes from the beginning up to the
job's window end (`refresh_late`): TimescaleDB logs rows written below the refreshed horizon
as invalidations, but its policy only ever refreshes its own window, so rows that arrive more
than `start_offset` late (a gateway or a broker coming back after an outage) would never be
materialized. That refresh touches only the invalidated buckets (about a millisecond when
there are none). TimescaleDB's own pruning of its job history fails like the policies and is
run here too; its telemetry reporter is the one job left to its workers.

One process of the centre runs the policies: the one holding a session advisory lock (the
others, e.g. further ingest workers, stand by and take over when its connection goes). A
transient database error (`db.is_transient`) drops the connection and retries with backoff;
the job stays due. On plain PostgreSQL there is nothing to run and the loop ends at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from prometheus_client import Counter, Gauge, Histogram

from firetower import db

log = logging.getLogger(__name__)

POLICIES = ("policy_refresh_continuous_aggregate", "policy_compression", "policy_retention")
# TimescaleDB's own job of each database: it prunes the job history (no table of ours)
HISTORY_RETENTION = "policy_job_stat_history_retention"
# One runner per database: pg_try_advisory_lock(bigint) on this key.
LOCK_KEY = zlib.crc32(b"firetower-storage-policies")

JOB_RUNS = Counter("firetower_storage_job_runs_total",
                   "Storage policy runs by the centre's scheduler", ["job", "outcome"])
JOB_SECONDS = Histogram("firetower_storage_job_seconds", "Duration of one storage policy run",
                        ["job"], buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600))
AGGREGATE_LAG = Gauge("firetower_storage_aggregate_lag_seconds",
                      "Now minus the continuous aggregate's materialized horizon (watermark)",
                      ["aggregate"])

_JOBS_SQL = """
SELECT j.job_id, j.proc_name, j.hypertable_name, j.schedule_interval, j.retry_period,
       j.scheduled, j.config, s.next_start
FROM timescaledb_information.jobs j LEFT JOIN storage_jobs s USING (job_id)
WHERE (j.hypertable_schema = 'public' AND j.proc_name = ANY($1::text[]))
   OR j.proc_name = $2
ORDER BY array_position($1::text[], j.proc_name::text) NULLS LAST, j.job_id
"""
_RECORD_SQL = """
INSERT INTO storage_jobs AS s (job_id, name, next_start, last_start, last_finish, last_success,
    last_status, last_error, total_runs, total_successes, total_failures, consecutive_failures)
VALUES ($1::int, $2::text, $3::timestamptz, $4::timestamptz, $5::timestamptz,
        CASE WHEN $6::bool THEN $5::timestamptz END,
        CASE WHEN $6::bool THEN 'succeeded' ELSE 'failed' END, $7::text, 1, $6::bool::int,
        (NOT $6::bool)::int, (NOT $6::bool)::int)
ON CONFLICT (job_id) DO UPDATE SET
    name = EXCLUDED.name, next_start = EXCLUDED.next_start, last_start = EXCLUDED.last_start,
    last_finish = EXCLUDED.last_finish,
    last_success = coalesce(EXCLUDED.last_success, s.last_success),
    last_status = EXCLUDED.last_status, last_error = EXCLUDED.last_error,
    total_runs = s.total_runs + 1,
    total_successes = s.total_successes + EXCLUDED.total_successes,
    total_failures = s.total_failures + EXCLUDED.total_failures,
    consecutive_failures = CASE WHEN $6 THEN 0 ELSE s.consecutive_failures + 1 END
"""


@dataclass(frozen=True, slots=True)
class Job:
    """One TimescaleDB policy job, as its job table configures it."""

    job_id: int
    proc: str
    target: str  # the hypertable or continuous aggregate (schema public); "" for none
    schedule: timedelta
    retry: timedelta
    config: dict[str, Any]
    scheduled: bool  # TimescaleDB's own workers would run it too
    next_start: datetime | None  # from storage_jobs; None: never run by the centre

    @property
    def name(self) -> str:
        if self.proc == HISTORY_RETENTION:
            return "job history retention"
        kind = {"policy_refresh_continuous_aggregate": "refresh",
                "policy_compression": "compression",
                "policy_retention": "retention"}.get(self.proc, self.proc)
        return f"{kind} {self.target}"

    @property
    def refresh(self) -> bool:
        return self.proc == "policy_refresh_continuous_aggregate"


@dataclass(frozen=True, slots=True)
class Outcome:
    job: Job
    ok: bool
    seconds: float
    error: str | None = None


def _job(row: asyncpg.Record) -> Job:
    config = row["config"]
    if isinstance(config, str):
        config = json.loads(config)
    return Job(job_id=row["job_id"], proc=row["proc_name"], target=row["hypertable_name"] or "",
               schedule=row["schedule_interval"], retry=row["retry_period"],
               config=dict(config or {}), scheduled=row["scheduled"],
               next_start=row["next_start"])


class StoragePolicies:
    """Runs the TimescaleDB policy jobs in the foreground, each when due (see the module)."""

    def __init__(self, url: str, *, tick_s: float = 5.0, backoff: db.Backoff | None = None,
                 application_name: str = "firetower storage policies") -> None:
        self.url = url
        self.tick_s = tick_s
        self.backoff = backoff or db.Backoff(1.0, 60.0)
        self.application_name = application_name
        self.leader = False  # holds the lock: this process runs the policies
        self.plain = False  # plain PostgreSQL: nothing to run
        self.outcomes: dict[str, Outcome] = {}  # the last outcome of each job, by name
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="storage-policies")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._close()

    # -- the loop ----------------------------------------------------------------------------
    async def _loop(self) -> None:
        while True:
            try:
                if not await self.tick():
                    log.info("plain PostgreSQL: no storage policies to run")
                    await self._close()
                    return
                self.backoff.reset()
            except Exception as exc:  # any error: drop the session, retry later
                await self._close()
                delay = self.backoff.next()
                if db.is_transient(exc):
                    log.warning("storage policies: database unavailable (%s: %s); retrying in "
                                "%.1f s", type(exc).__name__, exc, delay)
                else:
                    log.error("storage policies: %s: %s; retrying in %.1f s",
                              type(exc).__name__, exc, delay, exc_info=exc)
                await asyncio.sleep(delay)
                continue
            await asyncio.sleep(self.tick_s)

    async def tick(self) -> bool:
        """One round: connect and take the lock if needed, run the due jobs, update the lag
        gauges. False on plain PostgreSQL (nothing to do, ever)."""
        conn = await self._connection()
        if self.plain:
            return False
        if not self.leader:
            self.leader = bool(await conn.fetchval("SELECT pg_try_advisory_lock($1::bigint)",
                                                   LOCK_KEY))
            if not self.leader:
                return True  # another process runs them; stand by
            log.info("running the TimescaleDB storage policies in the foreground")
        await self.run_due(conn)
        await self.measure_lag(conn)
        return True

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self.leader = False
            self._conn = await asyncpg.connect(self.url, server_settings={
                "application_name": self.application_name,
                # a dead peer drops the session, and with it the lock, within about 25 s
                "tcp_keepalives_idle": "10", "tcp_keepalives_interval": "5",
                "tcp_keepalives_count": "3"})
            self.plain = await db.storage_flavour(self._conn) != "timescale"
        return self._conn

    async def _close(self) -> None:
        conn, self._conn, self.leader = self._conn, None, False
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 5)
        if conn is not None and not conn.is_closed():
            conn.terminate()

    # -- the jobs ----------------------------------------------------------------------------
    async def jobs(self, conn: asyncpg.Connection) -> list[Job]:
        """The policy jobs on the project's tables, refreshes first, and TimescaleDB's job
        history retention; any still scheduled for
        TimescaleDB's workers (a policy added by hand) is switched over to this runner."""
        found = [_job(r) for r in await conn.fetch(_JOBS_SQL, list(POLICIES), HISTORY_RETENTION)]
        for job in found:
            if job.scheduled:
                await conn.execute("SELECT alter_job($1, scheduled => false)", job.job_id)
                log.info("storage policy %s (job %d): scheduled runs switched off, run here",
                         job.name, job.job_id)
        return found

    async def run_due(self, conn: asyncpg.Connection) -> list[Outcome]:
        """Run every job whose next start has come (never run: now), one at a time."""
        now = await conn.fetchval("SELECT now()")
        done = []
        for job in await self.jobs(conn):
            if job.next_start is None or job.next_start <= now:
                done.append(await self.run(conn, job))
        return done

    async def run(self, conn: asyncpg.Connection, job: Job) -> Outcome:
        """Run one job now and record its outcome. A transient error is raised (the job stays
        due, the loop reconnects); any other error is recorded as a failure and the job is
        tried again after its retry period."""
        started_at = await conn.fetchval("SELECT clock_timestamp()")
        t0 = time.perf_counter()
        error: str | None = None
        try:
            await conn.execute(f"CALL run_job({int(job.job_id)})")
            if job.refresh:
                await self.refresh_late(conn, job)
        except Exception as exc:
            if db.is_transient(exc) or conn.is_closed():
                JOB_RUNS.labels(job.name, "failed").inc()
                raise
            error = f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - t0
        ok = error is None
        finished_at = await conn.fetchval("SELECT clock_timestamp()")
        next_start = started_at + job.schedule if ok else finished_at + min(job.retry,
                                                                            job.schedule)
        await conn.execute(_RECORD_SQL, job.job_id, job.name, next_start, started_at,
                           finished_at, ok, error)
        JOB_RUNS.labels(job.name, "succeeded" if ok else "failed").inc()
        JOB_SECONDS.labels(job.name).observe(seconds)
        if ok:
            log.debug("storage policy %s (job %d) succeeded in %.3f s", job.name, job.job_id,
                      seconds)
        else:
            log.error("storage policy %s (job %d) failed after %.3f s: %s; next try at %s",
                      job.name, job.job_id, seconds, error, next_start.isoformat())
        outcome = Outcome(job, ok, seconds, error)
        self.outcomes[job.name] = outcome
        return outcome

    async def refresh_late(self, conn: asyncpg.Connection, job: Job) -> None:
        """Materialize whatever is invalidated below the refresh job's end (late rows): the
        job itself refreshes only [now - start_offset, now - end_offset], and TimescaleDB
        refreshes only the invalidated buckets of a range, so this costs little when there are
        none. It ends where the job's window ends, not where it starts: both windows are
        rounded inwards to whole buckets, so the two would leave a bucket between them."""
        if job.config.get("start_offset") is None:  # the window is open downwards already
            return
        end_offset = job.config.get("end_offset")
        end = "now()" if end_offset is None else "now() - $2::text::interval"
        args = [f"public.{job.target}"] + ([] if end_offset is None else [str(end_offset)])
        await conn.execute(f"CALL refresh_continuous_aggregate($1::regclass, "
                           f"NULL::timestamptz, {end})", *args)

    async def measure_lag(self, conn: asyncpg.Connection) -> dict[str, float]:
        """Seconds between now and each continuous aggregate's materialized horizon."""
        # nothing materialized yet: the horizon is the lowest time there is; no figure then
        rows = await conn.fetch(
            "SELECT view_name, CASE WHEN horizon > '2000-01-01' "
            "THEN extract(epoch FROM now() - horizon)::float8 END AS lag FROM ("
            "SELECT view_name, _timescaledb_functions.to_timestamp("
            "_timescaledb_functions.cagg_watermark(h.id)) AS horizon "
            "FROM timescaledb_information.continuous_aggregates c "
            "JOIN _timescaledb_catalog.hypertable h "
            "ON h.schema_name = c.materialization_hypertable_schema "
            "AND h.table_name = c.materialization_hypertable_name "
            "WHERE c.view_schema = 'public') w")
        lags = {r["view_name"]: float("nan") if r["lag"] is None else r["lag"] for r in rows}
        for name, lag in lags.items():
            AGGREGATE_LAG.labels(name).set(lag)
        return lags
