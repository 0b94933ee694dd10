-- Device clocks (docs/protocol.md "Timestamps"): a message with no `ts`, or one that names no
-- time (no offset, 2026-02-30, year 0, +25:00, a number), is accepted too, with the receive
-- time as `ts`, `device_ts` NULL, `clock` = 'invalid' and the value sent kept in extra.ts.
-- Its redelivery is found by (device_id, seq, clock 'invalid') and its content
-- (ingest/clock.py), through the partial indexes of 0007, which hold every row with a clock
-- mark: (device_id, seq) is their prefix and `device_ts IS NULL` an index condition, so no
-- new index. The plain flavour's CHECK constraints learn the new value (0008 .plain.sql).
COMMENT ON COLUMN telemetry.clock IS
    'NULL: ts is the device stamp; ahead | behind | reset: ts is the receive time, device_ts the stamp; invalid: no readable stamp (extra.ts keeps what was sent)';
COMMENT ON COLUMN events.clock IS
    'NULL: ts is the device stamp; ahead | behind | reset: ts is the receive time, device_ts the stamp; invalid: no readable stamp (extra.ts keeps what was sent)';
COMMENT ON COLUMN device_status.clock IS
    'NULL: ts is the device stamp; ahead | reset: ts is the receive time, device_ts the stamp; invalid: no readable stamp (extra.ts keeps what was sent)';
