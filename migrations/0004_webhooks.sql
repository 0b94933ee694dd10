-- Webhooks: subscriptions (endpoints with filters and signing secrets), the durable outbox
-- (one event per alarm change, one delivery per matching endpoint), the delivery log, and the
-- forwarding columns of alarms (verification deadline). See docs/webhooks.md.
--
-- The outbox is written by a trigger on alarm_events, so every process that changes alarms
-- through the one write path (rule engine, API, dispatcher) enqueues webhooks in the same
-- transaction without configuration. NOTIFY firetower_webhooks <endpoint id> wakes the
-- dispatcher, delivered only when the transaction commits.

-- Forwarding to the fire brigade (119): when, and on what basis. NULL = not forwarded.
ALTER TABLE alarms
    ADD COLUMN forwarded_at  timestamptz,
    ADD COLUMN forward_basis text CHECK (forward_basis IN ('operator', 'coincidence', 'deadline'));
-- The fire alarms the dispatcher's forwarder still has to decide on (kept tiny: a fire leaves
-- it when forwarded or when a verdict other than true_fire arrives).
CREATE INDEX alarms_forward_pending_idx ON alarms (id)
    WHERE class = 'fire' AND forwarded_at IS NULL AND mode = 'normal'
      AND (verdict IS NULL OR verdict = 'true_fire');

-- Subscriptions may filter by jurisdiction (the fire authority / district a site belongs to).
ALTER TABLE sites ADD COLUMN IF NOT EXISTS jurisdiction text;

CREATE TABLE webhook_endpoints (
    id                   bigserial PRIMARY KEY,
    name                 text NOT NULL DEFAULT '',
    url                  text NOT NULL CHECK (url ~ '^https?://'),
    enabled              boolean NOT NULL DEFAULT true,
    -- Filters; NULL = no restriction on that field.
    event_types          text[],
    classes              text[],
    max_priority         smallint CHECK (max_priority BETWEEN 1 AND 5),  -- severity: 1 = fire
    site_ids             text[],
    jurisdictions        text[],
    verdicts             text[],                     -- restricts alarm.verdict events only
    modes                text[] NOT NULL DEFAULT '{normal}',
    owner_id             bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    -- Health, kept by the dispatcher.
    consecutive_failures integer NOT NULL DEFAULT 0,
    failing_since        timestamptz,
    last_success_at      timestamptz,
    last_error           text
);

-- Signing secrets, encrypted at rest (dispatch/secretbox.py). Several are active during a
-- rotation: each delivery carries one signature per active secret.
CREATE TABLE webhook_secrets (
    id          bigserial PRIMARY KEY,
    endpoint_id bigint NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    sealed      bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz
);
CREATE INDEX webhook_secrets_endpoint_idx ON webhook_secrets (endpoint_id);

-- One row per event (shared by every endpoint it goes to). `uid` is the webhook-id.
CREATE TABLE webhook_events (
    id              bigserial PRIMARY KEY,
    uid             uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    type            text NOT NULL,
    alarm_id        bigint REFERENCES alarms (id),
    alarm_event_id  bigint REFERENCES alarm_events (id),
    occurred_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    data            jsonb NOT NULL
);

-- The outbox proper: one row per (endpoint, event), delivered in id order per endpoint.
CREATE TABLE webhook_deliveries (
    id              bigserial PRIMARY KEY,
    endpoint_id     bigint NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id        bigint NOT NULL REFERENCES webhook_events (id),
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN
                        ('pending', 'delivered', 'rejected', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at     timestamptz,
    last_status     integer,
    last_error      text,
    replay_of       bigint REFERENCES webhook_deliveries (id) ON DELETE SET NULL
);
CREATE INDEX webhook_deliveries_pending_idx ON webhook_deliveries (endpoint_id, id)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, id DESC);
CREATE INDEX webhook_deliveries_event_idx ON webhook_deliveries (event_id);
CREATE INDEX webhook_deliveries_finished_idx ON webhook_deliveries (finished_at)
    WHERE status <> 'pending';

-- The delivery log: every attempt with its outcome.
CREATE TABLE webhook_attempts (
    id           bigserial PRIMARY KEY,
    delivery_id  bigint NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    duration_ms  real NOT NULL,
    status_code  integer,
    error        text,
    outcome      text NOT NULL CHECK (outcome IN ('delivered', 'retry', 'rejected', 'dead'))
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, id);

-- The payload's `data`: the alarm as it is in this transaction, with site, device and the change.
CREATE FUNCTION webhook_alarm_data(change alarm_events) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'alarm', jsonb_build_object(
            'id', a.id, 'type', a.type, 'class', a.class, 'priority', a.priority,
            'state', a.state, 'verdict', a.verdict, 'mode', a.mode,
            'confidence', a.confidence, 'evidence', a.evidence, 'count', a.count,
            'raised_at', a.raised_at, 'received_at', a.received_at,
            'acknowledged_at', a.acknowledged_at, 'acknowledged_by', a.acknowledged_by,
            'verdict_at', a.verdict_at, 'verdict_by', a.verdict_by,
            'cleared_at', a.cleared_at, 'closed_at', a.closed_at,
            'forwarded_at', a.forwarded_at, 'forward_basis', a.forward_basis,
            'verified', CASE WHEN a.forward_basis IS NULL THEN a.verdict = 'true_fire'
                             ELSE a.forward_basis <> 'deadline' END,
            'site', CASE WHEN s.id IS NULL THEN NULL ELSE jsonb_build_object(
                'id', s.id, 'name', s.name, 'address', s.address,
                'jurisdiction', s.jurisdiction, 'latitude', s.latitude,
                'longitude', s.longitude) END,
            'device', jsonb_build_object(
                'id', a.device_id, 'kind', d.kind, 'point', a.point,
                'zone', coalesce(a.zone, d.zone), 'location', d.location,
                'floor_id', d.floor_id, 'x', d.x, 'y', d.y)),
        'change', jsonb_build_object(
            'id', change.id, 'kind', change.kind, 'at', change.at,
            'from_state', change.from_state, 'to_state', change.to_state,
            'actor', change.actor, 'reason', change.reason, 'details', change.details))
    FROM alarms a
    LEFT JOIN sites s ON s.id = a.site_id
    LEFT JOIN devices d ON d.id = a.device_id
    WHERE a.id = change.alarm_id
$$;

CREATE FUNCTION webhook_outbox_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ev_type   text;
    a         record;
    targets   bigint[];
    ev_id     bigint;
BEGIN
    ev_type := CASE NEW.kind
        WHEN 'raise' THEN 'alarm.raised'
        WHEN 'acknowledge' THEN 'alarm.acknowledged'
        WHEN 'verdict' THEN 'alarm.verdict'
        WHEN 'forward' THEN 'alarm.forwarded'
        WHEN 'clear' THEN 'alarm.cleared'
    END;
    SELECT al.class, al.priority, al.site_id, al.mode, al.type, al.verdict, s.jurisdiction
      INTO a
      FROM alarms al LEFT JOIN sites s ON s.id = al.site_id
     WHERE al.id = NEW.alarm_id;
    -- The dispatcher's own "endpoint failing" alarms are not sent to endpoints (no feedback).
    IF a.type = 'webhook.failing' THEN
        RETURN NULL;
    END IF;
    SELECT array_agg(e.id ORDER BY e.id) INTO targets
      FROM webhook_endpoints e
     WHERE e.enabled
       AND (e.event_types IS NULL OR ev_type = ANY (e.event_types))
       AND (e.classes IS NULL OR a.class = ANY (e.classes))
       AND (e.max_priority IS NULL OR a.priority <= e.max_priority)
       AND (e.site_ids IS NULL OR a.site_id = ANY (e.site_ids))
       AND (e.jurisdictions IS NULL OR a.jurisdiction = ANY (e.jurisdictions))
       AND (e.verdicts IS NULL OR ev_type <> 'alarm.verdict' OR a.verdict = ANY (e.verdicts))
       AND a.mode = ANY (e.modes);
    IF targets IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO webhook_events (type, alarm_id, alarm_event_id, occurred_at, data)
    VALUES (ev_type, NEW.alarm_id, NEW.id, NEW.at, webhook_alarm_data(NEW))
    RETURNING id INTO ev_id;
    INSERT INTO webhook_deliveries (endpoint_id, event_id)
    SELECT t, ev_id FROM unnest(targets) AS t;
    PERFORM pg_notify('firetower_webhooks', t::text) FROM unnest(targets) AS t;
    RETURN NULL;
END $$;

CREATE TRIGGER alarm_events_webhooks AFTER INSERT ON alarm_events
    FOR EACH ROW
    WHEN (NEW.alarm_id IS NOT NULL
          AND NEW.kind IN ('raise', 'acknowledge', 'verdict', 'forward', 'clear'))
    EXECUTE FUNCTION webhook_outbox_enqueue();

-- Tell the dispatcher that subscriptions changed (reload endpoints, secrets, filters).
CREATE FUNCTION notify_webhook_config() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('firetower_webhooks', 'config');
    RETURN NULL;
END $$;
CREATE TRIGGER webhook_endpoints_notify
    AFTER INSERT OR UPDATE OF url, enabled OR DELETE ON webhook_endpoints
    FOR EACH STATEMENT EXECUTE FUNCTION notify_webhook_config();
CREATE TRIGGER webhook_secrets_notify AFTER INSERT OR UPDATE OR DELETE ON webhook_secrets
    FOR EACH STATEMENT EXECUTE FUNCTION notify_webhook_config();

