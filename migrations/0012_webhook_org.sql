-- Webhook payloads carry the site's place in the city (the jurisdiction path, root first, and
-- its unit with the responsible person and manager), and a subscription's `jurisdictions`
-- filter matches a node's whole subtree: a district's code matches the alarms of every grid
-- under it (docs/webhooks.md). The rest of both functions is as in 0004.

CREATE OR REPLACE FUNCTION webhook_alarm_data(change alarm_events) RETURNS jsonb
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
                'longitude', s.longitude,
                -- the site's place in the city, root first (docs/organisation.md)
                'jurisdiction_path', (
                    SELECT jsonb_agg(jsonb_build_object('code', j.code, 'name', j.name,
                                                        'level', j.level)
                                     ORDER BY array_position(sj.path, j.id))
                      FROM jurisdictions sj JOIN jurisdictions j ON j.id = ANY (sj.path)
                     WHERE sj.id = s.jurisdiction_id),
                'unit', (SELECT jsonb_build_object(
                             'id', u.id, 'credit_code', u.credit_code, 'name', u.name,
                             'risk_class', u.risk_class, 'responsible_name', u.responsible_name,
                             'responsible_phone', u.responsible_phone,
                             'manager_name', u.manager_name, 'manager_phone', u.manager_phone)
                           FROM units u WHERE u.id = s.unit_id)) END,
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

CREATE OR REPLACE FUNCTION webhook_outbox_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
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
    -- `codes`: the codes of every node from the site's own up to the root, so that a filter
    -- naming a district matches the sites of all its townships and grids
    SELECT al.class, al.priority, al.site_id, al.mode, al.type, al.verdict,
           coalesce((SELECT array_agg(j.code) FROM jurisdictions sj
                       JOIN jurisdictions j ON j.id = ANY (sj.path)
                      WHERE sj.id = s.jurisdiction_id),
                    CASE WHEN s.jurisdiction IS NULL THEN '{}'::text[]
                         ELSE ARRAY[s.jurisdiction] END) AS codes
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
       AND (e.jurisdictions IS NULL OR a.codes && e.jurisdictions)
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
