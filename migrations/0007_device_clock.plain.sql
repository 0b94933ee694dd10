-- Plain PostgreSQL: the clock mark's values are checked (NOT VALID: no scan of the existing
-- rows, which are all NULL). Not on TimescaleDB, which limits new constraints on compressed
-- hypertables: there the ingester alone writes the column.
ALTER TABLE telemetry ADD CONSTRAINT telemetry_clock_check
    CHECK (clock IN ('ahead', 'behind', 'reset')) NOT VALID;
ALTER TABLE events ADD CONSTRAINT events_clock_check
    CHECK (clock IN ('ahead', 'behind', 'reset')) NOT VALID;
ALTER TABLE device_status ADD CONSTRAINT device_status_clock_check
    CHECK (clock IN ('ahead', 'behind', 'reset')) NOT VALID;
