-- TimescaleDB: hypertables, compression segmented by device, retention, 1-minute rollup.
SELECT create_hypertable('telemetry', 'ts', chunk_time_interval => INTERVAL '1 day',
                         migrate_data => true);
SELECT create_hypertable('events', 'ts', chunk_time_interval => INTERVAL '7 days',
                         migrate_data => true);
SELECT create_hypertable('device_status', 'ts', chunk_time_interval => INTERVAL '7 days',
                         migrate_data => true);

ALTER TABLE telemetry SET (timescaledb.compress, timescaledb.compress_segmentby = 'device_id',
                           timescaledb.compress_orderby = 'ts DESC, seq');
ALTER TABLE events SET (timescaledb.compress, timescaledb.compress_segmentby = 'device_id',
                        timescaledb.compress_orderby = 'ts DESC, seq');
ALTER TABLE device_status SET (timescaledb.compress,
                               timescaledb.compress_segmentby = 'device_id',
                               timescaledb.compress_orderby = 'ts DESC, seq');
SELECT add_compression_policy('telemetry', INTERVAL '7 days');
SELECT add_compression_policy('events', INTERVAL '30 days');
SELECT add_compression_policy('device_status', INTERVAL '30 days');

-- GB 50440 asks for at least one year of records; keep raw telemetry 400 days, events longer.
SELECT add_retention_policy('telemetry', INTERVAL '400 days');
SELECT add_retention_policy('device_status', INTERVAL '400 days');
SELECT add_retention_policy('events', INTERVAL '1100 days');

CREATE MATERIALIZED VIEW telemetry_1m WITH (timescaledb.continuous) AS
SELECT time_bucket('1 minute', ts) AS bucket,
       device_id,
       count(*)                         AS samples,
       avg(obscuration_pct_per_m)       AS obscuration_avg,
       max(obscuration_pct_per_m)       AS obscuration_max,
       avg(temperature_c)               AS temperature_avg,
       max(temperature_c)               AS temperature_max,
       avg(co_ppm)                      AS co_avg,
       min(battery_v)                   AS battery_min,
       avg(pressure_kpa)                AS pressure_avg,
       min(pressure_kpa)                AS pressure_min,
       max(pressure_kpa)                AS pressure_max,
       max(flow_lps)                    AS flow_max
FROM telemetry
GROUP BY 1, 2
WITH NO DATA;
ALTER MATERIALIZED VIEW telemetry_1m SET (timescaledb.materialized_only = false);
SELECT add_continuous_aggregate_policy('telemetry_1m',
    start_offset => INTERVAL '2 hours', end_offset => INTERVAL '1 minute',
    schedule_interval => INTERVAL '1 minute');
