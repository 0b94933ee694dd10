-- The storage policies the centre runs itself (ingest/storage.py, docs/storage.md): one row per
-- TimescaleDB policy job with the outcome of its last foreground run and its totals, so that
-- monitoring reads what really happened. On plain PostgreSQL there are no policies and the
-- table stays empty.
CREATE TABLE storage_jobs (
    job_id                integer PRIMARY KEY,         -- TimescaleDB's job id
    name                  text NOT NULL,               -- e.g. 'refresh telemetry_1m'
    next_start            timestamptz NOT NULL,
    last_start            timestamptz NOT NULL,
    last_finish           timestamptz NOT NULL,
    last_success          timestamptz,
    last_status           text NOT NULL CHECK (last_status IN ('succeeded', 'failed')),
    last_error            text,
    total_runs            bigint NOT NULL DEFAULT 0,
    total_successes       bigint NOT NULL DEFAULT 0,
    total_failures        bigint NOT NULL DEFAULT 0,
    consecutive_failures  integer NOT NULL DEFAULT 0
);
