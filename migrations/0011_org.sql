-- The city's organisation (docs/organisation.md): the jurisdiction tree down to the grid,
-- supervising departments, units (社会单位) and their sites, maintenance companies and their
-- contracts, users scoped to any of them, and an append-only audit log of every change.
-- org/store.py is the only writer of these tables; org/scope.py the one scope rule.

CREATE EXTENSION IF NOT EXISTS btree_gist;  -- contracts: no two at once for one site

CREATE TABLE jurisdictions (
    id          bigserial PRIMARY KEY,
    parent_id   bigint REFERENCES jurisdictions (id) ON DELETE RESTRICT,
    -- the import key: the GB/T 2260 / GB/T 10114 code where the level has one, else the
    -- centre's own (grids)
    code        text NOT NULL UNIQUE CHECK (code ~ '^[A-Za-z0-9_.-]{1,64}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    level       text NOT NULL CHECK (level IN
                    ('province', 'city', 'district', 'township', 'community', 'grid')),
    -- ids from the root to this node (itself last): a subtree is `path @> ARRAY[id]`
    path        bigint[] NOT NULL,
    boundary    jsonb,     -- GeoJSON Polygon or MultiPolygon, WGS 84
    center_lat  double precision CHECK (center_lat BETWEEN -90 AND 90),
    center_lon  double precision CHECK (center_lon BETWEEN -180 AND 180),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (parent_id IS DISTINCT FROM id),
    CHECK (path[cardinality(path)] = id)
);
CREATE INDEX jurisdictions_path_idx ON jurisdictions USING gin (path);
CREATE INDEX jurisdictions_parent_idx ON jurisdictions (parent_id);

-- Grid workers (网格员) of a grid; a member may also be a user of the centre.
CREATE TABLE grid_members (
    id          bigserial PRIMARY KEY,
    grid_id     bigint NOT NULL REFERENCES jurisdictions (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    phone       text NOT NULL DEFAULT '' CHECK (length(phone) <= 32),
    user_id     bigint REFERENCES users (id) ON DELETE SET NULL,
    UNIQUE (grid_id, name, phone)
);

-- Supervising departments (行业主管部门), each for one or more industries.
CREATE TABLE departments (
    id          bigserial PRIMARY KEY,
    code        text NOT NULL UNIQUE CHECK (code ~ '^[A-Za-z0-9_.-]{1,64}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    industries  text[] NOT NULL DEFAULT '{}'
);

CREATE TABLE units (
    id                  bigserial PRIMARY KEY,
    -- unified social credit code (GB 32100, checked by org/codes.py); NULL only for the
    -- default unit that holds sites created before units existed
    credit_code         text UNIQUE CHECK (credit_code ~ '^[0-9A-HJ-NPQRTUWXY]{18}$'),
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    industry            text NOT NULL DEFAULT '' CHECK (length(industry) <= 100),
    department_id       bigint REFERENCES departments (id) ON DELETE RESTRICT,
    risk_class          text NOT NULL DEFAULT 'general' CHECK (risk_class IN
                            ('key', 'crowded', 'general', 'small')),
    nine_small          boolean NOT NULL DEFAULT false,  -- 九小场所
    responsible_name    text NOT NULL DEFAULT '' CHECK (length(responsible_name) <= 100),
    responsible_phone   text NOT NULL DEFAULT '' CHECK (length(responsible_phone) <= 32),
    manager_name        text NOT NULL DEFAULT '' CHECK (length(manager_name) <= 100),
    manager_phone       text NOT NULL DEFAULT '' CHECK (length(manager_phone) <= 32),
    address             text NOT NULL DEFAULT '' CHECK (length(address) <= 500),
    grid_id             bigint REFERENCES jurisdictions (id) ON DELETE RESTRICT,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX units_grid_idx ON units (grid_id);
CREATE INDEX units_department_idx ON units (department_id);

CREATE TABLE maintenance_companies (
    id                  bigserial PRIMARY KEY,
    credit_code         text NOT NULL UNIQUE CHECK (credit_code ~ '^[0-9A-HJ-NPQRTUWXY]{18}$'),
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    licence_no          text NOT NULL DEFAULT '' CHECK (length(licence_no) <= 100),
    licence_level       text NOT NULL DEFAULT '' CHECK (length(licence_level) <= 50),
    licence_valid_until date,
    phone               text NOT NULL DEFAULT '' CHECK (length(phone) <= 32),
    address             text NOT NULL DEFAULT '' CHECK (length(address) <= 500),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE sites ADD COLUMN unit_id bigint REFERENCES units (id) ON DELETE RESTRICT;
ALTER TABLE sites ADD COLUMN jurisdiction_id bigint REFERENCES jurisdictions (id)
    ON DELETE RESTRICT;
CREATE INDEX sites_unit_idx ON sites (unit_id);
CREATE INDEX sites_jurisdiction_idx ON sites (jurisdiction_id);

-- Maintenance contracts: who maintains a site, when, for what. Periods of one site never
-- overlap, so "the site's company today" has one answer.
CREATE TABLE contracts (
    id          bigserial PRIMARY KEY,
    company_id  bigint NOT NULL REFERENCES maintenance_companies (id) ON DELETE RESTRICT,
    site_id     text NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    starts_on   date NOT NULL,
    ends_on     date NOT NULL,
    scope       text NOT NULL DEFAULT '' CHECK (length(scope) <= 1000),
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_on >= starts_on),
    EXCLUDE USING gist (site_id WITH =, daterange(starts_on, ends_on, '[]') WITH &&)
);
CREATE INDEX contracts_company_idx ON contracts (company_id, starts_on, ends_on);

-- A user may be scoped to a node of the tree (and sees its subtree), a department (its units),
-- a unit (its sites) or a maintenance company (the sites under a running contract). The
-- older `site_ids` list stays for users scoped to named sites.
ALTER TABLE users ADD COLUMN scope_kind text
    CHECK (scope_kind IN ('jurisdiction', 'department', 'unit', 'company'));
ALTER TABLE users ADD COLUMN scope_id bigint;
ALTER TABLE users ADD CONSTRAINT users_scope_pair CHECK ((scope_kind IS NULL) = (scope_id IS NULL));
ALTER TABLE users DROP CONSTRAINT IF EXISTS users_check;
ALTER TABLE users ADD CONSTRAINT users_scoped_roles
    CHECK (role NOT IN ('installer', 'site_manager') OR site_ids IS NOT NULL OR scope_kind IS NOT NULL);

-- Append-only: who changed what, when, before and after.
CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor_id    bigint,
    actor_name  text NOT NULL DEFAULT '',
    action      text NOT NULL,            -- create, update, move, delete, import
    entity      text NOT NULL,            -- jurisdiction, unit, site, company, contract, ...
    entity_id   text NOT NULL,
    before      jsonb,
    after       jsonb
);
CREATE INDEX audit_log_entity_idx ON audit_log (entity, entity_id, id);
CREATE INDEX audit_log_at_idx ON audit_log (at);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

-- Sites created before units existed move into a default jurisdiction and unit: nothing lost.
DO $$
DECLARE
    j bigint;
    u bigint;
BEGIN
    IF EXISTS (SELECT 1 FROM sites) THEN
        INSERT INTO jurisdictions (id, code, name, level, path)
        VALUES (nextval('jurisdictions_id_seq'), 'default', 'Default jurisdiction', 'city',
                ARRAY[currval('jurisdictions_id_seq')])
        RETURNING id INTO j;
        INSERT INTO units (name, grid_id) VALUES ('Default unit', NULL) RETURNING id INTO u;
        UPDATE sites SET jurisdiction_id = j, unit_id = u;
        INSERT INTO audit_log (actor_name, action, entity, entity_id, after)
        VALUES ('migration 0011', 'import', 'site', '*',
                jsonb_build_object('sites', (SELECT count(*) FROM sites),
                                   'jurisdiction', 'default', 'unit', u));
    END IF;
END $$;
