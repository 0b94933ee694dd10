-- API: users, API keys, site details (coordinates, contacts, fire plan, floors with plans),
-- device placement and per-device MQTT credentials, commissioning test requests.

CREATE TABLE users (
    id              bigserial PRIMARY KEY,
    name            text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9_.@-]{1,64}$'),
    role            text NOT NULL CHECK (role IN
                        ('admin', 'operator', 'installer', 'site_manager', 'supervisor',
                         'integration')),
    -- NULL: every site. Otherwise the user sees only these sites' devices and alarms.
    site_ids        text[],
    password_hash   text,          -- argon2id; NULL for integration accounts (API keys only)
    active          boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (role NOT IN ('installer', 'site_manager') OR site_ids IS NOT NULL)
);

-- API keys for machine access: `ftk_<prefix>_<secret>`; only the SHA-256 of the whole key is
-- kept (the key has 256 bits of entropy, so a fast hash is enough and keeps requests cheap).
CREATE TABLE api_keys (
    id              bigserial PRIMARY KEY,
    prefix          text NOT NULL UNIQUE,
    key_sha256      bytea NOT NULL,
    user_id         bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name            text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz,
    revoked_at      timestamptz
);

ALTER TABLE sites
    ADD COLUMN latitude     double precision CHECK (latitude BETWEEN -90 AND 90),
    ADD COLUMN longitude    double precision CHECK (longitude BETWEEN -180 AND 180),
    ADD COLUMN contacts     jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN fire_plan    jsonb NOT NULL DEFAULT '{}';

CREATE TABLE floors (
    site_id         text NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    id              text NOT NULL CHECK (id ~ '^[A-Za-z0-9_.-]{1,32}$'),
    name            text NOT NULL,
    level           integer NOT NULL DEFAULT 0,
    plan_image      bytea,
    plan_type       text,
    PRIMARY KEY (site_id, id)
);

-- Placement on the floor plan: x/y are fractions of the plan's width/height (0..1), so they
-- survive a re-scaled image. mqtt_password_hash is a Mosquitto `$7$` PBKDF2-SHA512 entry.
ALTER TABLE devices
    ADD COLUMN floor_id             text,
    ADD COLUMN x                    double precision CHECK (x BETWEEN 0 AND 1),
    ADD COLUMN y                    double precision CHECK (y BETWEEN 0 AND 1),
    ADD COLUMN mqtt_password_hash   text,
    ADD COLUMN commissioned_at      timestamptz,
    ADD COLUMN in_service_at        timestamptz,
    ADD COLUMN decommissioned_at    timestamptz,
    ADD CONSTRAINT devices_floor_fk FOREIGN KEY (site_id, floor_id)
        REFERENCES floors (site_id, id);

-- An installer asks a device for a test signal; the first event or status from the device
-- received after `requested_at` answers it.
CREATE TABLE device_tests (
    id              bigserial PRIMARY KEY,
    device_id       text NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    requested_by    bigint REFERENCES users (id) ON DELETE SET NULL,
    requested_at    timestamptz NOT NULL DEFAULT now(),
    arrived_at      timestamptz,
    signal          text
);
CREATE INDEX device_tests_device_idx ON device_tests (device_id, requested_at DESC);
