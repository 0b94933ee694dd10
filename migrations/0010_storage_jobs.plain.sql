-- Plain PostgreSQL: telemetry_1m is a view of telemetry, so it is stored and kept exactly as
-- the raw rows are; nothing runs on a schedule.
COMMENT ON VIEW telemetry_1m IS
    'Per device and minute; a view of telemetry, so stored and kept as telemetry is';
