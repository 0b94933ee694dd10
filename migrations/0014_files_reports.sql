-- Files (photos, PDFs) and public reports (举报), docs/hazards-files-and-reports.md.
-- hazards/file_records.py is the only writer of files; hazards/report_store.py of
-- public_reports and public_report_events.

-- One row per upload. The content lives in the storage backend under storage_key (its
-- SHA-256: the same content is stored once, however often it is uploaded).
CREATE TABLE files (
    id              text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{22}$'),
    sha256          text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size            bigint NOT NULL CHECK (size BETWEEN 1 AND 1073741824),
    content_type    text NOT NULL CHECK (content_type IN
                        ('image/jpeg', 'image/png', 'image/webp', 'application/pdf')),
    storage_key     text NOT NULL CHECK (length(storage_key) BETWEEN 1 AND 200),
    original_name   text NOT NULL DEFAULT '' CHECK (length(original_name) <= 200),
    -- the site the file documents; none for a public report's photo until it becomes a
    -- hazard of a site
    site_id         text REFERENCES sites (id) ON DELETE RESTRICT,
    uploaded_by     text NOT NULL CHECK (length(uploaded_by) BETWEEN 1 AND 100),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX files_site_idx ON files (site_id, created_at DESC);
CREATE INDEX files_sha256_idx ON files (sha256);

-- Public reports: a citizen's report through the web form, a 12345 hotline system or another
-- API client. The reporter's contact is sealed (AES-256-GCM under the centre's secret key,
-- firetower/webhooks/secretbox.py): the database never holds it in clear.
CREATE TABLE public_reports (
    id              bigserial PRIMARY KEY,
    tracking_code   text NOT NULL UNIQUE CHECK (tracking_code ~ '^[0-9A-HJKMNP-TV-Y]{12}$'),
    channel         text NOT NULL CHECK (channel IN ('web', 'hotline', 'api')),
    -- the hotline system's own ticket number: a retried submission finds its first report
    external_ref    text NOT NULL DEFAULT '' CHECK (length(external_ref) <= 64),
    category        text NOT NULL CHECK (category IN ('blocked_exit', 'fire_lane',
                        'fire_equipment', 'electrical', 'ebike_charging', 'flammables',
                        'other')),
    description     text NOT NULL CHECK (length(description) BETWEEN 1 AND 2000),
    address         text NOT NULL DEFAULT '' CHECK (length(address) <= 300),
    latitude        double precision CHECK (latitude BETWEEN -90 AND 90),
    longitude       double precision CHECK (longitude BETWEEN -180 AND 180),
    node_code       text NOT NULL DEFAULT '' CHECK (length(node_code) <= 32),
    -- matched at intake: the node by node_code, else the nearest site's node; the site
    -- within reach of the location (hazards/reports.py, SITE_MATCH_M)
    jurisdiction_id bigint REFERENCES jurisdictions (id) ON DELETE SET NULL,
    site_id         text REFERENCES sites (id) ON DELETE SET NULL,
    contact_sealed  bytea CHECK (octet_length(contact_sealed) <= 1024),
    photos          text[] NOT NULL DEFAULT '{}' CHECK (cardinality(photos) <= 10),
    status          text NOT NULL DEFAULT 'received' CHECK (status IN
                        ('received', 'merged', 'dismissed', 'converted')),
    merged_into     bigint REFERENCES public_reports (id),
    duplicates      integer NOT NULL DEFAULT 0 CHECK (duplicates >= 0),
    dismiss_reason  text NOT NULL DEFAULT '' CHECK (length(dismiss_reason) <= 1000),
    hazard_id       bigint REFERENCES hazards (id),
    reward_status   text NOT NULL DEFAULT 'none' CHECK (reward_status IN
                        ('none', 'eligible', 'granted', 'refused')),
    reward_amount   numeric(10, 2) CHECK (reward_amount > 0 AND reward_amount <= 1000000),
    reward_note     text NOT NULL DEFAULT '' CHECK (length(reward_note) <= 1000),
    received_at     timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((latitude IS NULL) = (longitude IS NULL)),
    CHECK ((status = 'merged') = (merged_into IS NOT NULL)),
    CHECK (merged_into IS DISTINCT FROM id),
    CHECK ((status = 'converted') = (hazard_id IS NOT NULL)),
    CHECK (status <> 'dismissed' OR dismiss_reason <> ''),
    CHECK ((reward_status = 'granted') = (reward_amount IS NOT NULL))
);
CREATE UNIQUE INDEX public_reports_external_ref ON public_reports (channel, external_ref)
    WHERE external_ref <> '';
-- duplicate candidates: open reports of a category, recent first
CREATE INDEX public_reports_open_idx ON public_reports (category, received_at DESC)
    WHERE status IN ('received', 'converted');
CREATE INDEX public_reports_jurisdiction_idx ON public_reports (jurisdiction_id, received_at DESC);
CREATE INDEX public_reports_site_idx ON public_reports (site_id, received_at DESC);
CREATE INDEX public_reports_photos_idx ON public_reports USING gin (photos);
CREATE INDEX public_reports_merged_idx ON public_reports (merged_into) WHERE merged_into IS NOT NULL;

-- Append-only: every step of every report (received, merged, dismissed, converted, reward).
CREATE TABLE public_report_events (
    id          bigserial PRIMARY KEY,
    report_id   bigint NOT NULL REFERENCES public_reports (id),
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind        text NOT NULL CHECK (kind IN ('received', 'merged', 'dismissed', 'converted',
                    'reward')),
    actor       text NOT NULL CHECK (length(actor) BETWEEN 1 AND 100),  -- 'public', 'user:<name>'
    note        text NOT NULL DEFAULT '' CHECK (length(note) <= 2000),
    details     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX public_report_events_report_idx ON public_report_events (report_id, id);

CREATE FUNCTION public_report_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only (% refused)', TG_TABLE_NAME, TG_OP;
END $$;
CREATE TRIGGER public_report_events_no_change BEFORE UPDATE OR DELETE ON public_report_events
    FOR EACH ROW EXECUTE FUNCTION public_report_events_append_only();
