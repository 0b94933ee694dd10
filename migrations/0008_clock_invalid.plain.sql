-- Plain PostgreSQL: the clock mark's CHECK constraints (0007) take 'invalid' too. Dropped and
-- added again NOT VALID, as in 0007: no scan of the existing rows.
ALTER TABLE telemetry DROP CONSTRAINT telemetry_clock_check;
ALTER TABLE telemetry ADD CONSTRAINT telemetry_clock_check
    CHECK (clock IN ('ahead', 'behind', 'reset', 'invalid')) NOT VALID;
ALTER TABLE events DROP CONSTRAINT events_clock_check;
ALTER TABLE events ADD CONSTRAINT events_clock_check
    CHECK (clock IN ('ahead', 'behind', 'reset', 'invalid')) NOT VALID;
ALTER TABLE device_status DROP CONSTRAINT device_status_clock_check;
ALTER TABLE device_status ADD CONSTRAINT device_status_clock_check
    CHECK (clock IN ('ahead', 'behind', 'reset', 'invalid')) NOT VALID;
