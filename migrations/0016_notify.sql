-- Notifications, escalation, duty rosters and heightened watch (docs/notifications.md).
--
-- Writers: notify/config_store.py (contacts, policies, escalation chains), notify/duty_store.py
-- (rosters, shifts, the duty log, hand-overs), notify/watch_store.py (watch windows, work
-- prompts and their receipts), notify/outbox.py (jobs, messages, attempts, escalation state),
-- notify/link_store.py (links). The jobs are written by a trigger on alarm_events, so every process that raises an
-- alarm through the one write path enqueues its notification in the alarm's transaction.

-- Where a person is reached. `recipient` names whose contact this is, `ref_id` the row it
-- belongs to: unit_responsible / unit_manager -> units.id, grid_member -> grid_members.id,
-- maintenance_company -> maintenance_companies.id, township_station -> jurisdictions.id,
-- user -> users.id (centre staff on duty rosters). The address is sealed at rest (robot
-- webhook URLs and Apprise URLs carry tokens).
CREATE TABLE notify_contacts (
    id          bigserial PRIMARY KEY,
    recipient   text NOT NULL CHECK (recipient IN ('unit_responsible', 'unit_manager',
                    'grid_member', 'maintenance_company', 'township_station', 'user')),
    ref_id      bigint NOT NULL,
    name        text NOT NULL DEFAULT '' CHECK (length(name) <= 100),
    channel     text NOT NULL CHECK (channel IN ('email', 'sms', 'voice', 'dingtalk', 'wecom',
                    'feishu', 'apprise')),
    address     bytea NOT NULL,          -- sealed (firetower/webhooks/secretbox.py)
    secret      bytea,                   -- sealed robot signing secret (DingTalk, Feishu)
    shown       text NOT NULL DEFAULT '' CHECK (length(shown) <= 200),  -- redacted address
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notify_contacts_ref_idx ON notify_contacts (recipient, ref_id);

-- Who gets what: alarm classes and priority, for a jurisdiction subtree or a unit (NULL both =
-- the whole city), the recipients by their role in the organisation, the channels to use
-- (NULL = every channel the recipient has), quiet hours (never for fire) and the grouping
-- window for floods of faults and offline devices (never for fire).
CREATE TABLE notify_policies (
    id              bigserial PRIMARY KEY,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    enabled         boolean NOT NULL DEFAULT true,
    classes         text[] NOT NULL,
    max_priority    smallint NOT NULL DEFAULT 5 CHECK (max_priority BETWEEN 1 AND 5),
    jurisdiction_id bigint REFERENCES jurisdictions (id) ON DELETE CASCADE,
    unit_id         bigint REFERENCES units (id) ON DELETE CASCADE,
    recipients      text[] NOT NULL,
    channels        text[],
    quiet_start     time,
    quiet_end       time,
    timezone        text NOT NULL DEFAULT 'Asia/Shanghai',
    group_window_s  integer NOT NULL DEFAULT 0 CHECK (group_window_s BETWEEN 0 AND 3600),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Escalation per alarm class (optionally for a jurisdiction subtree, the most specific wins):
-- steps [{"after_s": 60, "recipients": ["duty_leader"]}, ...] measured from the raise, and the
-- last step repeated every repeat_s until the alarm is acknowledged.
CREATE TABLE escalation_chains (
    id              bigserial PRIMARY KEY,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    class           text NOT NULL,
    jurisdiction_id bigint REFERENCES jurisdictions (id) ON DELETE CASCADE,
    steps           jsonb NOT NULL,
    repeat_s        integer NOT NULL DEFAULT 300 CHECK (repeat_s BETWEEN 10 AND 86400),
    enabled         boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX escalation_chains_scope_idx
    ON escalation_chains (class, coalesce(jurisdiction_id, 0));

-- Duty rosters (值班表) of the centre at a jurisdiction level, or of a unit's control room.
CREATE TABLE duty_rosters (
    id              bigserial PRIMARY KEY,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    jurisdiction_id bigint REFERENCES jurisdictions (id) ON DELETE CASCADE,
    unit_id         bigint REFERENCES units (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((jurisdiction_id IS NULL) <> (unit_id IS NULL))
);

CREATE TABLE duty_shifts (
    id          bigserial PRIMARY KEY,
    roster_id   bigint NOT NULL REFERENCES duty_rosters (id) ON DELETE CASCADE,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    position    text NOT NULL CHECK (position IN ('operator', 'leader', 'officer')),
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at AND ends_at - starts_at <= interval '7 days')
);
CREATE INDEX duty_shifts_time_idx ON duty_shifts (roster_id, starts_at, ends_at);

-- The duty log (值班记录) and shift hand-overs (交接班): append-only.
CREATE TABLE duty_log (
    id          bigserial PRIMARY KEY,
    roster_id   bigint NOT NULL REFERENCES duty_rosters (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('note', 'handover')),
    text        text NOT NULL DEFAULT '' CHECK (length(text) <= 4000)
);
CREATE INDEX duty_log_roster_idx ON duty_log (roster_id, at DESC);

CREATE TABLE shift_handovers (
    id              bigserial PRIMARY KEY,
    roster_id       bigint NOT NULL REFERENCES duty_rosters (id) ON DELETE CASCADE,
    at              timestamptz NOT NULL DEFAULT now(),
    from_user_id    bigint NOT NULL REFERENCES users (id),
    to_user_id      bigint NOT NULL REFERENCES users (id),
    open_alarms     jsonb NOT NULL,      -- the open alarms at the hand-over, as listed
    note            text NOT NULL DEFAULT '' CHECK (length(note) <= 4000),
    CHECK (from_user_id <> to_user_id)
);
CREATE INDEX shift_handovers_roster_idx ON shift_handovers (roster_id, at DESC);

-- Heightened watch (重大活动 / 节日 安保): a time-bounded overlay of tighter settings on a
-- jurisdiction subtree or a list of sites. The rule engine reads the windows that have not
-- ended and switches at their bounds; notify/ records when each was applied and reverted.
CREATE TABLE watch_windows (
    id              bigserial PRIMARY KEY,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    reason          text NOT NULL DEFAULT '' CHECK (length(reason) <= 2000),
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL,
    jurisdiction_id bigint REFERENCES jurisdictions (id) ON DELETE CASCADE,
    site_ids        text[],
    settings        jsonb NOT NULL,
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    cancelled_at    timestamptz,
    cancelled_by    text,
    applied_at      timestamptz,
    reverted_at     timestamptz,
    CHECK (ends_at > starts_at AND ends_at - starts_at <= interval '31 days'),
    CHECK ((jurisdiction_id IS NULL) <> (site_ids IS NULL))
);
CREATE INDEX watch_windows_open_idx ON watch_windows (ends_at) WHERE cancelled_at IS NULL;

-- Work prompts (工作提示) broadcast to units and grid members, with read receipts.
CREATE TABLE work_prompts (
    id              bigserial PRIMARY KEY,
    title           text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    body            text NOT NULL CHECK (length(body) BETWEEN 1 AND 4000),
    jurisdiction_id bigint NOT NULL REFERENCES jurisdictions (id) ON DELETE CASCADE,
    watch_id        bigint REFERENCES watch_windows (id) ON DELETE SET NULL,
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE prompt_receipts (
    id          bigserial PRIMARY KEY,
    prompt_id   bigint NOT NULL REFERENCES work_prompts (id) ON DELETE CASCADE,
    recipient   text NOT NULL CHECK (recipient IN ('unit_responsible', 'grid_member')),
    ref_id      bigint NOT NULL,
    name        text NOT NULL DEFAULT '',
    read_at     timestamptz,
    read_via    text,
    UNIQUE (prompt_id, recipient, ref_id)
);

-- The notification outbox. A job per raised alarm (by the trigger below), per escalation
-- step and per work prompt; the notifier resolves it to one message per recipient and
-- channel, in one transaction, and marks the job done.
CREATE TABLE notify_jobs (
    id              bigserial PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('alarm', 'escalation', 'prompt')),
    alarm_id        bigint REFERENCES alarms (id),
    prompt_id       bigint REFERENCES work_prompts (id) ON DELETE CASCADE,
    step            integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    attempts        integer NOT NULL DEFAULT 0,
    retry_at        timestamptz,            -- a job that failed is tried again then
    done_at         timestamptz,
    error           text
);
CREATE INDEX notify_jobs_pending_idx ON notify_jobs (id) WHERE done_at IS NULL;

CREATE TABLE notify_messages (
    id              bigserial PRIMARY KEY,
    job_id          bigint NOT NULL REFERENCES notify_jobs (id),
    alarm_id        bigint REFERENCES alarms (id),
    prompt_id       bigint REFERENCES work_prompts (id) ON DELETE CASCADE,
    site_id         text,
    recipient       text NOT NULL,          -- the role it was resolved from
    ref_id          bigint,
    name            text NOT NULL DEFAULT '',
    contact_id      bigint REFERENCES notify_contacts (id) ON DELETE SET NULL,
    channel         text NOT NULL,
    address         bytea NOT NULL,             -- sealed, as resolved when the job was done
    secret          bytea,                      -- sealed robot signing secret
    shown           text NOT NULL DEFAULT '',   -- redacted address
    priority        smallint NOT NULL DEFAULT 5,  -- fire (1) is sent first
    step            integer NOT NULL DEFAULT 0,
    subject         text NOT NULL,
    body            text NOT NULL,
    -- grouping: messages of one group_key are sent as one once the window ends
    group_key       text,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN
                        ('pending', 'sent', 'dead', 'grouped')),
    grouped_into    bigint REFERENCES notify_messages (id),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    sent_at         timestamptz,
    last_error      text
);
CREATE INDEX notify_messages_pending_idx ON notify_messages (priority, next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX notify_messages_group_idx ON notify_messages (group_key) WHERE status = 'pending';
CREATE INDEX notify_messages_alarm_idx ON notify_messages (alarm_id, id);
CREATE INDEX notify_messages_created_idx ON notify_messages (created_at DESC);

CREATE TABLE notify_attempts (
    id           bigserial PRIMARY KEY,
    message_id   bigint NOT NULL REFERENCES notify_messages (id) ON DELETE CASCADE,
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    duration_ms  real NOT NULL,
    outcome      text NOT NULL CHECK (outcome IN ('sent', 'retry', 'dead')),
    error        text
);
CREATE INDEX notify_attempts_message_idx ON notify_attempts (message_id, id);

-- Escalation state per alarm: the next step and when it is due; stopped on acknowledgement.
CREATE TABLE alarm_escalations (
    alarm_id        bigint PRIMARY KEY REFERENCES alarms (id),
    chain_id        bigint REFERENCES escalation_chains (id) ON DELETE SET NULL,
    next_step       integer NOT NULL,
    next_at         timestamptz NOT NULL,
    stopped_at      timestamptz,
    stopped_reason  text
);
CREATE INDEX alarm_escalations_due_idx ON alarm_escalations (next_at) WHERE stopped_at IS NULL;

-- Signed one-time links (acknowledge an alarm, confirm reading a prompt). The token carries
-- the id and an HMAC; only its hash is kept, and used_at makes it one-time.
CREATE TABLE notify_links (
    id          bigserial PRIMARY KEY,
    purpose     text NOT NULL CHECK (purpose IN ('ack', 'read')),
    token_hash  bytea NOT NULL UNIQUE,
    message_id  bigint REFERENCES notify_messages (id) ON DELETE CASCADE,
    alarm_id    bigint REFERENCES alarms (id),
    receipt_id  bigint REFERENCES prompt_receipts (id) ON DELETE CASCADE,
    channel     text NOT NULL,
    name        text NOT NULL DEFAULT '',
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);

-- A raised alarm (normal mode) enqueues its notification job in the same transaction.
CREATE FUNCTION notify_alarm_raised() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.kind = 'raise' AND NEW.alarm_id IS NOT NULL THEN
        INSERT INTO notify_jobs (kind, alarm_id) VALUES ('alarm', NEW.alarm_id);
        PERFORM pg_notify('firetower_notify', 'job');
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER alarm_events_notify AFTER INSERT ON alarm_events
    FOR EACH ROW EXECUTE FUNCTION notify_alarm_raised();
