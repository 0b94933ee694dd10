-- Plain PostgreSQL: the 1-minute rollup is a view with the same columns as the
-- TimescaleDB continuous aggregate, so the same queries work on both.
CREATE INDEX telemetry_ts_idx ON telemetry (ts DESC);
CREATE INDEX events_ts_idx ON events (ts DESC);

CREATE VIEW telemetry_1m AS
SELECT date_bin('1 minute', ts, TIMESTAMPTZ '2000-01-01') AS bucket,
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
GROUP BY 1, 2;
