-- Patrols (巡查) and double-random inspections (双随机), docs/patrols-and-inspections.md.
-- hazards/patrol_store.py is the only writer of these tables. A failed checklist item becomes
-- a hazard through hazards/store.py, in the same transaction as its check-in or result.

-- A grid's patrol plan: which checkpoints, how often, which checklist.
CREATE TABLE patrol_plans (
    id              bigserial PRIMARY KEY,
    jurisdiction_id bigint NOT NULL REFERENCES jurisdictions (id) ON DELETE RESTRICT,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    every           integer NOT NULL CHECK (every BETWEEN 1 AND 1000),
    unit            text NOT NULL CHECK (unit IN ('hours', 'days', 'weeks')),
    -- periods are counted in this IANA zone (hazards/patrols.py)
    time_zone       text NOT NULL DEFAULT 'UTC' CHECK (length(time_zone) BETWEEN 1 AND 64),
    starts_on       date NOT NULL,
    ends_on         date,
    -- [{id, text, category, legal_basis}], at most 50 items
    checklist       jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(checklist) = 'array'
                        AND jsonb_array_length(checklist) <= 50
                        AND length(checklist::text) <= 100000),
    active          boolean NOT NULL DEFAULT true,
    created_by      text NOT NULL CHECK (length(created_by) BETWEEN 1 AND 200),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_on IS NULL OR ends_on >= starts_on)
);
CREATE INDEX patrol_plans_jurisdiction_idx ON patrol_plans (jurisdiction_id);

-- A QR/NFC checkpoint at a site. Only the SHA-256 of its token is kept: the token (32 random
-- bytes) is shown when the checkpoint is made or its token replaced, and a copy of the
-- database cannot forge a visit.
CREATE TABLE patrol_checkpoints (
    id              bigserial PRIMARY KEY,
    plan_id         bigint NOT NULL REFERENCES patrol_plans (id) ON DELETE CASCADE,
    site_id         text NOT NULL REFERENCES sites (id) ON DELETE RESTRICT,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    location        text NOT NULL DEFAULT '' CHECK (length(location) <= 500),
    token_sha256    bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    token_set_at    timestamptz NOT NULL DEFAULT now(),
    active          boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX patrol_checkpoints_plan_idx ON patrol_checkpoints (plan_id);
CREATE INDEX patrol_checkpoints_site_idx ON patrol_checkpoints (site_id);

-- A visit. Append-only: never changed, never deleted (a plan with visits cannot be deleted).
CREATE TABLE patrol_checkins (
    id              bigserial PRIMARY KEY,
    checkpoint_id   bigint NOT NULL REFERENCES patrol_checkpoints (id) ON DELETE RESTRICT,
    plan_id         bigint NOT NULL REFERENCES patrol_plans (id) ON DELETE RESTRICT,
    at              timestamptz NOT NULL,              -- the centre's clock, not the phone's
    period_start    timestamptz NOT NULL,
    period_end      timestamptz NOT NULL,
    actor           text NOT NULL CHECK (length(actor) BETWEEN 1 AND 200),
    -- the phone's idempotency key: a retried check-in answers the first one
    client_ref      text NOT NULL DEFAULT '' CHECK (length(client_ref) <= 64),
    lat             double precision CHECK (lat BETWEEN -90 AND 90),
    lon             double precision CHECK (lon BETWEEN -180 AND 180),
    accuracy_m      double precision CHECK (accuracy_m BETWEEN 0 AND 1000000),
    distance_m      double precision CHECK (distance_m >= 0),
    photos          text[] NOT NULL DEFAULT '{}' CHECK (cardinality(photos) <= 20
                        AND length(array_to_string(photos, ',')) <= 20 * 65),
    -- [{item_id, passed, note}]
    results         jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(results) = 'array'
                        AND jsonb_array_length(results) <= 50
                        AND length(results::text) <= 200000),
    note            text NOT NULL DEFAULT '' CHECK (length(note) <= 2000),
    flags           text[] NOT NULL DEFAULT '{}' CHECK (flags <@ ARRAY['gps_far', 'before_start',
                        'after_end', 'plan_inactive', 'repeat']::text[]),
    CHECK ((lat IS NULL) = (lon IS NULL)),
    CHECK (period_end > period_start)
);
CREATE UNIQUE INDEX patrol_checkins_client_ref ON patrol_checkins (checkpoint_id, actor, client_ref)
    WHERE client_ref <> '';
CREATE INDEX patrol_checkins_checkpoint_idx ON patrol_checkins (checkpoint_id, at);
CREATE INDEX patrol_checkins_plan_idx ON patrol_checkins (plan_id, at);

-- The qualified inspector pool (执法资格): who may be drawn, where, until when, and the units
-- each must not inspect (declared conflicts of interest).
CREATE TABLE inspectors (
    id              bigserial PRIMARY KEY,
    jurisdiction_id bigint NOT NULL REFERENCES jurisdictions (id) ON DELETE RESTRICT,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    user_id         bigint REFERENCES users (id) ON DELETE SET NULL,
    certificate_no  text NOT NULL DEFAULT '' CHECK (length(certificate_no) <= 64),
    qualified_until date,
    tied_unit_ids   bigint[] NOT NULL DEFAULT '{}' CHECK (cardinality(tied_unit_ids) <= 1000),
    active          boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inspectors_jurisdiction_idx ON inspectors (jurisdiction_id);

-- A draw, as recorded: enough to run it again (hazards/inspections.py). Append-only.
CREATE TABLE inspection_draws (
    id              bigserial PRIMARY KEY,
    jurisdiction_id bigint NOT NULL REFERENCES jurisdictions (id) ON DELETE RESTRICT,
    title           text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    algorithm       text NOT NULL CHECK (length(algorithm) BETWEEN 1 AND 32),
    seed            text NOT NULL CHECK (length(seed) BETWEEN 1 AND 200),
    -- targets, per_target, max_per_inspector, risk_weights, history window, checklist
    parameters      jsonb NOT NULL,
    candidates      jsonb NOT NULL,     -- each with its counts, weight and key
    inspectors      jsonb NOT NULL,     -- the pool, with ties
    result          jsonb NOT NULL,     -- [{target, inspectors}] in the order drawn
    drawn_by        text NOT NULL CHECK (length(drawn_by) BETWEEN 1 AND 200),
    drawn_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inspection_draws_jurisdiction_idx ON inspection_draws (jurisdiction_id, drawn_at);

-- One drawn unit's inspection: its inspectors, its results and whether they are public.
CREATE TABLE inspection_tasks (
    id              bigserial PRIMARY KEY,
    draw_id         bigint NOT NULL REFERENCES inspection_draws (id) ON DELETE RESTRICT,
    position        integer NOT NULL CHECK (position >= 1),
    unit_id         bigint NOT NULL REFERENCES units (id) ON DELETE RESTRICT,
    inspector_ids   bigint[] NOT NULL,
    state           text NOT NULL DEFAULT 'assigned' CHECK (state IN ('assigned', 'done')),
    -- [{item_id, passed, note, site_id}]
    results         jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(results) = 'array'
                        AND jsonb_array_length(results) <= 50
                        AND length(results::text) <= 200000),
    findings        text NOT NULL DEFAULT '' CHECK (length(findings) <= 4000),
    photos          text[] NOT NULL DEFAULT '{}' CHECK (cardinality(photos) <= 20
                        AND length(array_to_string(photos, ',')) <= 20 * 65),
    inspected_at    timestamptz,
    recorded_by     text CHECK (length(recorded_by) <= 200),
    published       boolean NOT NULL DEFAULT false,
    -- what the public sees: written for it at publication, never the internal findings
    public_summary  text NOT NULL DEFAULT '' CHECK (length(public_summary) <= 2000),
    published_at    timestamptz,
    published_by    text CHECK (length(published_by) <= 200),
    UNIQUE (draw_id, unit_id),
    UNIQUE (draw_id, position),
    CHECK (NOT published OR state = 'done'),
    CHECK (state = 'assigned' OR inspected_at IS NOT NULL)
);
CREATE INDEX inspection_tasks_published_idx ON inspection_tasks (published_at DESC)
    WHERE published;
CREATE INDEX inspection_tasks_unit_idx ON inspection_tasks (unit_id);

CREATE FUNCTION patrols_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only (% refused)', TG_TABLE_NAME, TG_OP;
END $$;
CREATE TRIGGER patrol_checkins_no_change BEFORE UPDATE OR DELETE ON patrol_checkins
    FOR EACH ROW EXECUTE FUNCTION patrols_append_only();
CREATE TRIGGER inspection_draws_no_change BEFORE UPDATE OR DELETE ON inspection_draws
    FOR EACH ROW EXECUTE FUNCTION patrols_append_only();
