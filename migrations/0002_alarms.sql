-- Alarms: the current alarm per (device, point, type), an append-only event log of every
-- occurrence and transition, rule overrides, modes (test / disabled / maintenance) and the rule
-- engine's persisted state. Written only through firetower/alarm_store.py (and, for modes and
-- overrides, by the API). See docs/alarms.md.

CREATE TABLE alarms (
    id              bigserial PRIMARY KEY,
    device_id       text NOT NULL,
    site_id         text,
    point           text NOT NULL DEFAULT '',      -- '' = the device itself; 'z3/p12' on a panel
    zone            integer,
    type            text NOT NULL,                 -- the rule id: 'smoke.threshold', 'panel.fire'
    class           text NOT NULL CHECK (class IN
                        ('fire', 'supervisory', 'fault', 'offline', 'early_warning')),
    priority        smallint NOT NULL,             -- 1 = fire ... 5 = early warning
    state           text NOT NULL CHECK (state IN
                        ('active', 'acknowledged', 'verified', 'cleared_unack', 'cleared',
                         'closed')),
    verdict         text CHECK (verdict IN ('true_fire', 'false_alarm', 'test', 'nuisance')),
    confidence      real NOT NULL DEFAULT 1.0 CHECK (confidence BETWEEN 0 AND 1),
    evidence        jsonb NOT NULL DEFAULT '{}',
    mode            text NOT NULL DEFAULT 'normal' CHECK (mode IN
                        ('normal', 'test', 'disabled', 'maintenance')),
    inhibited_by    text,                          -- e.g. 'offline:pnl-1' when the panel is down
    group_key       text,                          -- floods of faults / offline are grouped by it
    count           integer NOT NULL DEFAULT 1,    -- occurrences while open
    raised_at       timestamptz NOT NULL,          -- condition time (device clock for readings)
    last_at         timestamptz NOT NULL,          -- last occurrence
    last_seq        bigint,                        -- seq of the message of the last occurrence
    device_ts       timestamptz,                   -- latency clock: the message's device time
    received_at     timestamptz,                   -- latency clock: the centre received it
    stored_at       timestamptz NOT NULL DEFAULT clock_timestamp(),  -- committed here
    acknowledged_at timestamptz,
    acknowledged_by text,
    verdict_at      timestamptz,
    verdict_by      text,
    cleared_at      timestamptz,
    closed_at       timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- Exactly one open alarm per (device, point, type): what makes racing writers create one alarm
-- (INSERT ... ON CONFLICT on this index). The predicate is firetower.alarms.OPEN_STATES_SQL.
CREATE UNIQUE INDEX alarms_one_open ON alarms (device_id, point, type)
    WHERE state IN ('active', 'acknowledged', 'verified');
CREATE INDEX alarms_unfinished_idx ON alarms (priority, raised_at) WHERE state <> 'closed';
CREATE INDEX alarms_device_idx ON alarms (device_id, raised_at DESC);
CREATE INDEX alarms_site_idx ON alarms (site_id, raised_at DESC);

-- Append-only: every occurrence and every transition, with who, when and why.
CREATE TABLE alarm_events (
    id          bigserial PRIMARY KEY,
    alarm_id    bigint REFERENCES alarms (id),     -- NULL for mode changes not tied to an alarm
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind        text NOT NULL,                     -- raise, recur, update, acknowledge, verdict,
                                                   -- clear, close, mode
    from_state  text,
    to_state    text,
    actor       text NOT NULL,                     -- 'engine' or 'operator:<name>'
    reason      text NOT NULL DEFAULT '',
    details     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX alarm_events_alarm_idx ON alarm_events (alarm_id, id);

CREATE FUNCTION alarm_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'alarm_events is append-only (% refused)', TG_OP;
END $$;
CREATE TRIGGER alarm_events_no_change BEFORE UPDATE OR DELETE ON alarm_events
    FOR EACH ROW EXECUTE FUNCTION alarm_events_append_only();
-- TRUNCATE is left to the database owner (test fixtures empty every table between tests);
-- production roles get no TRUNCATE privilege on it.

-- Rule parameters overriding the defaults: per device kind, then per site, then per device.
CREATE TABLE rule_overrides (
    id          bigserial PRIMARY KEY,
    scope       text NOT NULL CHECK (scope IN ('kind', 'site', 'device')),
    target      text NOT NULL,                     -- the kind, site id or device id
    rule        text NOT NULL,                     -- 'smoke', 'heat', 'sprinkler', ...
    params      jsonb NOT NULL,
    updated_by  text NOT NULL DEFAULT '',
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (scope, target, rule)
);

-- Test, disabled (屏蔽) and maintenance windows. Signals during them are recorded with the mode.
CREATE TABLE modes (
    id          bigserial PRIMARY KEY,
    scope       text NOT NULL CHECK (scope IN ('device', 'site')),
    target      text NOT NULL,                     -- device id or site id
    point       text,                              -- NULL = the whole device; or one panel point
    mode        text NOT NULL CHECK (mode IN ('test', 'disabled', 'maintenance')),
    owner       text NOT NULL,
    reason      text NOT NULL,
    starts_at   timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,                       -- NULL only for modes a panel reported
    ended_at    timestamptz,
    CHECK (expires_at IS NULL OR expires_at > starts_at)
);
CREATE INDEX modes_current_idx ON modes (scope, target) WHERE ended_at IS NULL;

-- The rule engine's per-device state (pending durations, windows), for restart safety.
CREATE TABLE rule_state (
    device_id   text PRIMARY KEY,
    state       bytea NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Tell the rule engine to reload overrides or modes when someone changes them.
CREATE FUNCTION notify_alerting_config() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('firetower_alerting_config', TG_TABLE_NAME);
    RETURN NULL;
END $$;
CREATE TRIGGER rule_overrides_notify AFTER INSERT OR UPDATE OR DELETE ON rule_overrides
    FOR EACH STATEMENT EXECUTE FUNCTION notify_alerting_config();
CREATE TRIGGER modes_notify AFTER INSERT OR UPDATE OR DELETE ON modes
    FOR EACH STATEMENT EXECUTE FUNCTION notify_alerting_config();
