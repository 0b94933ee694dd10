-- telemetry_1m at one reading a minute holds as many rows as the raw table: store it like the
-- raw data (compressed by device after 7 days, kept 400 days) in chunks of a day, as the raw
-- telemetry is chunked, so a chunk compresses 7 days after its last bucket, not 70.
ALTER MATERIALIZED VIEW telemetry_1m SET (timescaledb.compress = true,
    timescaledb.compress_segmentby = 'device_id', timescaledb.compress_orderby = 'bucket DESC');
SELECT set_chunk_time_interval('telemetry_1m', INTERVAL '1 day');
SELECT add_compression_policy('telemetry_1m', compress_after => INTERVAL '7 days');
SELECT add_retention_policy('telemetry_1m', drop_after => INTERVAL '400 days');
COMMENT ON VIEW telemetry_1m IS  -- a continuous aggregate is a view to PostgreSQL
    'Per device and minute; compressed after 7 days and kept 400 days, as telemetry is';

-- TimescaleDB's background workers record every policy run as failed on PostgreSQL 15.20
-- (SQLSTATE 24000 after the work is done) and back off: the centre runs the policies in the
-- foreground instead (ingest/storage.py), so their scheduled runs are switched off.
-- TimescaleDB's own pruning of its job history (job 3) fails the same way and is run there too.
SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs
WHERE (hypertable_schema = 'public' AND proc_name IN
        ('policy_compression', 'policy_retention', 'policy_refresh_continuous_aggregate'))
   OR proc_name = 'policy_job_stat_history_retention';
