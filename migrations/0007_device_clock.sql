-- Device clocks (docs/protocol.md "Timestamps", docs/alarms.md "Device clock").
-- A message whose own stamp is not believed (ahead of the centre, before 2000, or older than
-- anything the broker may hold; firetower/device_clock.py) is accepted, not refused: `ts` is
-- then the receive time, `device_ts` keeps the device's stamp and `clock` says why
-- ('ahead', 'behind', 'reset'). Both are NULL when the stamp was used: the usual row pays
-- nothing. One statement per column: TimescaleDB adds nullable columns to compressed
-- hypertables one at a time.
ALTER TABLE telemetry ADD COLUMN device_ts timestamptz;
ALTER TABLE telemetry ADD COLUMN clock text;
ALTER TABLE events ADD COLUMN device_ts timestamptz;
ALTER TABLE events ADD COLUMN clock text;
ALTER TABLE device_status ADD COLUMN device_ts timestamptz;
ALTER TABLE device_status ADD COLUMN clock text;

-- A redelivery of a re-stamped message finds its first copy through these (ingest/clock.py),
-- so it is stored once although its receive time differs. Only re-stamped rows are indexed.
CREATE INDEX telemetry_restamped_idx ON telemetry (device_id, seq, device_ts)
    WHERE clock IS NOT NULL;
CREATE INDEX events_restamped_idx ON events (device_id, seq, device_ts)
    WHERE clock IS NOT NULL;
CREATE INDEX device_status_restamped_idx ON device_status (device_id, seq, device_ts)
    WHERE clock IS NOT NULL;

-- The device's clock offset (centre receive time minus device time, seconds; positive = the
-- device is behind): the smallest seen in the current window, which started at
-- clock_window_at, so a late delivery (a broker backlog) does not pass for a wrong clock.
-- Written by the ingester from telemetry (ingest/clock.py), shown by GET /devices.
ALTER TABLE devices ADD COLUMN clock_offset_s double precision;
ALTER TABLE devices ADD COLUMN clock_window_at timestamptz;
ALTER TABLE devices ADD COLUMN clock_checked_at timestamptz;
