-- Latency clocks on every alarm (docs/alarms.md, "Latency clocks"). With the columns of 0002
-- and 0004 an alarm carries, in order:
--   device_ts       the device's own time of the message that raised it
--   received_at     the ingester took the message off its broker connection
--   ingested_at     the rule engine had validated and evaluated it and decided (new)
--   stored_at       the alarm row was written
--   shown_at        first sent to an operator (live stream or board list) (new), shown_to = who
--   acknowledged_at, verdict_at
--   forwarded_at    the forward to the fire brigade was decided (0004)
--   delivered_at    the first downstream endpoint accepted its alarm.forwarded webhook (new)
-- The compliance view (GET /api/v1/stats/compliance) compares them with GB 50440 and NFPA 72.

ALTER TABLE alarms
    ADD COLUMN ingested_at  timestamptz,
    ADD COLUMN shown_at     timestamptz,
    ADD COLUMN shown_to     text,
    ADD COLUMN delivered_at timestamptz;

-- Compliance reports read fire alarms by raise time.
CREATE INDEX alarms_class_raised_idx ON alarms (class, raised_at);

-- The delivered clock is set by the database when the dispatcher records a delivery, so every
-- dispatcher (and every replica of it) keeps it without knowing about it.
CREATE FUNCTION alarm_delivered_clock() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE alarms a SET delivered_at = NEW.finished_at
      FROM webhook_events e
     WHERE e.id = NEW.event_id AND e.type = 'alarm.forwarded'
       AND a.id = e.alarm_id AND a.delivered_at IS NULL;
    RETURN NULL;
END $$;

CREATE TRIGGER webhook_deliveries_delivered_clock AFTER UPDATE OF status ON webhook_deliveries
    FOR EACH ROW WHEN (NEW.status = 'delivered' AND OLD.status IS DISTINCT FROM 'delivered')
    EXECUTE FUNCTION alarm_delivered_clock();
