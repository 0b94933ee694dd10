-- The monthly situation briefings (月度形势分析简报, docs/assessment.md "Briefings"): one per
-- jurisdiction and month, regenerated on demand as a new version of the same row.
-- assessment/briefing_store.py is the only writer.

CREATE TABLE briefings (
    id              bigserial PRIMARY KEY,
    jurisdiction_id bigint NOT NULL REFERENCES jurisdictions (id) ON DELETE CASCADE,
    month           date NOT NULL CHECK (extract(day FROM month) = 1),   -- its first day
    timezone        text NOT NULL CHECK (length(timezone) BETWEEN 1 AND 64),
    version         integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    generated_at    timestamptz NOT NULL DEFAULT now(),
    -- 'schedule' (firetower loop) or 'user:<name>' (on demand)
    generated_by    text NOT NULL CHECK (length(generated_by) BETWEEN 1 AND 200),
    content         jsonb NOT NULL,    -- assessment.briefing.Briefing.to_json()
    charts          jsonb NOT NULL DEFAULT '{}',   -- chart name -> SVG text (the web page)
    pdf             bytea NOT NULL,
    UNIQUE (jurisdiction_id, month)
);
CREATE INDEX briefings_month_idx ON briefings (month);
