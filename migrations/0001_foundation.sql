-- Foundation: device registry, telemetry, events, status, rejects and unregistered devices.
-- Portable part: runs on plain PostgreSQL and on TimescaleDB alike.

CREATE TABLE sites (
    id          text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_.-]{1,64}$'),
    name        text NOT NULL,
    address     text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE devices (
    id              text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_.-]{1,64}$'),
    kind            text NOT NULL CHECK (kind IN
                        ('smoke_detector', 'heat_detector', 'sprinkler_pressure', 'alarm_panel')),
    site_id         text REFERENCES sites (id),
    parent_id       text REFERENCES devices (id),  -- the panel a detector hangs off, if any
    zone            integer,
    location        text NOT NULL DEFAULT '',
    lifecycle       text NOT NULL DEFAULT 'registered' CHECK (lifecycle IN
                        ('registered', 'commissioned', 'in_service', 'decommissioned')),
    registered_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz,
    online          boolean
);
CREATE INDEX devices_site_idx ON devices (site_id);
CREATE INDEX devices_parent_idx ON devices (parent_id) WHERE parent_id IS NOT NULL;

-- Tell ingesters that the registry changed, so their in-memory copy stays fresh.
CREATE FUNCTION notify_device_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('firetower_devices', OLD.id);
    ELSE
        PERFORM pg_notify('firetower_devices', NEW.id);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER devices_notify AFTER INSERT OR UPDATE OF kind, lifecycle OR DELETE ON devices
    FOR EACH ROW EXECUTE FUNCTION notify_device_change();

-- One row per accepted telemetry message. Column per metric (fixed units, see docs/protocol.md);
-- fields the protocol does not name are kept in `extra`.
CREATE TABLE telemetry (
    ts                      timestamptz NOT NULL,   -- device time
    received_at             timestamptz NOT NULL,   -- centre time
    device_id               text NOT NULL,
    seq                     bigint NOT NULL,
    obscuration_pct_per_m   real,
    temperature_c           real,
    co_ppm                  real,
    battery_v               real,
    pressure_kpa            real,
    flow_lps                real,
    mains_ok                boolean,
    battery_ok              boolean,
    extra                   jsonb,
    -- one row per (device, seq, ts); in this column order the same index also serves
    -- "one device over a time range", so inserts maintain one index fewer
    CONSTRAINT telemetry_once UNIQUE (device_id, ts, seq)
);

CREATE TABLE events (
    ts              timestamptz NOT NULL,
    received_at     timestamptz NOT NULL,
    device_id       text NOT NULL,
    seq             bigint NOT NULL,
    category        text NOT NULL,
    active          boolean NOT NULL,
    zone            integer NOT NULL DEFAULT 0,
    point           integer NOT NULL DEFAULT 0,
    component       text,
    location        text,
    extra           jsonb,
    CONSTRAINT events_once UNIQUE (device_id, ts, seq)
);
CREATE INDEX events_category_ts_idx ON events (category, ts DESC);

CREATE TABLE device_status (
    ts              timestamptz NOT NULL,
    received_at     timestamptz NOT NULL,
    device_id       text NOT NULL,
    seq             bigint NOT NULL,
    online          boolean NOT NULL,
    extra           jsonb,
    CONSTRAINT device_status_once UNIQUE (device_id, ts, seq)
);

-- Messages the ingester refused, with the reason. Raw bytes are capped (see settings).
CREATE TABLE rejects (
    id              bigserial PRIMARY KEY,
    received_at     timestamptz NOT NULL,
    topic           text NOT NULL,
    payload         bytea NOT NULL,
    payload_size    integer NOT NULL,
    reason          text NOT NULL,
    detail          text NOT NULL
);
CREATE INDEX rejects_received_idx ON rejects (received_at DESC);
CREATE INDEX rejects_reason_idx ON rejects (reason, received_at DESC);

-- Well-formed messages from ids that are not in the registry, so an installer can claim them.
CREATE TABLE unregistered_devices (
    device_id       text PRIMARY KEY,
    first_seen_at   timestamptz NOT NULL,
    last_seen_at    timestamptz NOT NULL,
    message_count   bigint NOT NULL,
    last_topic      text NOT NULL
);
