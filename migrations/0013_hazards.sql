-- The hazard loop (隐患闭环) and maintenance work orders (维保工单), docs/hazards.md.
-- hazards/store.py is the only writer of hazards and hazard_events; hazards/workorder_store.py
-- of work_orders, work_order_events and maintenance_records.

ALTER TABLE users DROP CONSTRAINT IF EXISTS users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check CHECK (role IN
    ('admin', 'operator', 'installer', 'site_manager', 'supervisor', 'integration', 'grid_member'));
ALTER TABLE users DROP CONSTRAINT IF EXISTS users_scoped_roles;
ALTER TABLE users ADD CONSTRAINT users_scoped_roles
    CHECK (role NOT IN ('installer', 'site_manager', 'grid_member')
           OR site_ids IS NOT NULL OR scope_kind IS NOT NULL);

CREATE TABLE hazards (
    id                  bigserial PRIMARY KEY,
    source              text NOT NULL CHECK (source IN ('alarm', 'rule', 'patrol', 'inspection',
                            'public_report', 'department', 'manual')),
    source_ref          text NOT NULL DEFAULT '' CHECK (length(source_ref) <= 200),
    title               text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description         text NOT NULL DEFAULT '' CHECK (length(description) <= 4000),
    category            text NOT NULL DEFAULT '' CHECK (length(category) <= 100),
    legal_basis         text NOT NULL DEFAULT '' CHECK (length(legal_basis) <= 500),
    severity            text NOT NULL CHECK (severity IN ('general', 'major')),
    state               text NOT NULL CHECK (state IN
                            ('found', 'notified', 'rectifying', 'submitted', 'verified', 'closed')),
    site_id             text REFERENCES sites (id) ON DELETE RESTRICT,
    unit_id             bigint REFERENCES units (id) ON DELETE RESTRICT,
    -- where it was found (a grid, else the site's node) and the level that owns it now:
    -- escalation moves owner_id up the tree, never down
    jurisdiction_id     bigint REFERENCES jurisdictions (id) ON DELETE RESTRICT,
    owner_id            bigint REFERENCES jurisdictions (id) ON DELETE RESTRICT,
    responsible_name    text NOT NULL DEFAULT '' CHECK (length(responsible_name) <= 100),
    responsible_phone   text NOT NULL DEFAULT '' CHECK (length(responsible_phone) <= 32),
    campaign            text NOT NULL DEFAULT '' CHECK (length(campaign) <= 100),
    deadline            timestamptz,
    -- the deadline an escalation last fired for: one escalation per deadline
    escalated_for       timestamptz,
    escalations         integer NOT NULL DEFAULT 0,
    listed              boolean NOT NULL DEFAULT false,   -- 挂牌督办
    listed_by_id        bigint REFERENCES jurisdictions (id) ON DELETE RESTRICT,
    files_before        text[] NOT NULL DEFAULT '{}',
    files_after         text[] NOT NULL DEFAULT '{}',
    found_by            text NOT NULL DEFAULT '',
    submitted_by        text,
    found_at            timestamptz NOT NULL DEFAULT now(),
    notified_at         timestamptz,
    receipt_at          timestamptz,
    submitted_at        timestamptz,
    verified_at         timestamptz,
    closed_at           timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (state <> 'closed' OR verified_at IS NOT NULL)     -- closed means verified
);
-- recording is idempotent per (source, source_ref) when a reference is given
CREATE UNIQUE INDEX hazards_source_ref ON hazards (source, source_ref) WHERE source_ref <> '';
CREATE INDEX hazards_open_deadline_idx ON hazards (deadline) WHERE state <> 'closed';
CREATE INDEX hazards_site_idx ON hazards (site_id, found_at DESC);
CREATE INDEX hazards_owner_idx ON hazards (owner_id, state);
CREATE INDEX hazards_jurisdiction_idx ON hazards (jurisdiction_id, state);

-- Append-only: every step of every hazard, with who, when and why.
CREATE TABLE hazard_events (
    id          bigserial PRIMARY KEY,
    hazard_id   bigint NOT NULL REFERENCES hazards (id),
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind        text NOT NULL,      -- found, notify, receipt, submit, fix_on_spot, verify,
                                    -- reject, close, escalate, list, deadline
    from_state  text,
    to_state    text,
    actor       text NOT NULL,      -- 'user:<name>' or 'rule:<rule>' or 'public'
    note        text NOT NULL DEFAULT '' CHECK (length(note) <= 4000),
    details     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX hazard_events_hazard_idx ON hazard_events (hazard_id, id);

CREATE FUNCTION hazard_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'hazard_events is append-only (% refused)', TG_OP;
END $$;
CREATE TRIGGER hazard_events_no_change BEFORE UPDATE OR DELETE ON hazard_events
    FOR EACH ROW EXECUTE FUNCTION hazard_events_append_only();

-- Maintenance work orders: one per alarm that needs a repair, for the site's contracted company.
CREATE TABLE work_orders (
    id              bigserial PRIMARY KEY,
    alarm_id        bigint UNIQUE REFERENCES alarms (id),
    hazard_id       bigint REFERENCES hazards (id),
    device_id       text,
    site_id         text REFERENCES sites (id) ON DELETE RESTRICT,
    company_id      bigint REFERENCES maintenance_companies (id) ON DELETE RESTRICT,
    alarm_class     text NOT NULL CHECK (alarm_class IN
                        ('supervisory', 'fault', 'offline', 'early_warning', 'hazard')),
    title           text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    state           text NOT NULL CHECK (state IN
                        ('open', 'responded', 'repaired', 'closed')),
    -- the earlier order of the same device this one repeats (a repeat fault), if any
    repeat_of       bigint REFERENCES work_orders (id),
    respond_by      timestamptz NOT NULL,
    repair_by       timestamptz NOT NULL,
    opened_at       timestamptz NOT NULL DEFAULT now(),
    responded_at    timestamptz,
    responded_by    text,
    repaired_at     timestamptz,
    repaired_by     text,
    closed_at       timestamptz,
    closed_by       text,       -- 'device' when the device reported normal, else who decided
    close_reason    text NOT NULL DEFAULT '' CHECK (length(close_reason) <= 2000),
    files           text[] NOT NULL DEFAULT '{}',
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX work_orders_open_idx ON work_orders (company_id, state) WHERE state <> 'closed';
CREATE INDEX work_orders_device_idx ON work_orders (device_id, opened_at DESC);

CREATE TABLE work_order_events (
    id              bigserial PRIMARY KEY,
    work_order_id   bigint NOT NULL REFERENCES work_orders (id),
    at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind            text NOT NULL,     -- open, respond, repair, close, reopen
    from_state      text,
    to_state        text,
    actor           text NOT NULL,
    note            text NOT NULL DEFAULT '' CHECK (length(note) <= 2000),
    details         jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX work_order_events_order_idx ON work_order_events (work_order_id, id);
CREATE TRIGGER work_order_events_no_change BEFORE UPDATE OR DELETE ON work_order_events
    FOR EACH ROW EXECUTE FUNCTION hazard_events_append_only();

-- Maintenance records (GB 25201): monthly checks and the yearly full test of a site.
CREATE TABLE maintenance_records (
    id          bigserial PRIMARY KEY,
    site_id     text NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    company_id  bigint REFERENCES maintenance_companies (id) ON DELETE RESTRICT,
    kind        text NOT NULL CHECK (kind IN ('monthly_check', 'yearly_test')),
    done_on     date NOT NULL,
    result      text NOT NULL CHECK (result IN ('pass', 'fail')),
    note        text NOT NULL DEFAULT '' CHECK (length(note) <= 4000),
    files       text[] NOT NULL DEFAULT '{}',
    recorded_by text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX maintenance_records_site_idx ON maintenance_records (site_id, done_on DESC);
