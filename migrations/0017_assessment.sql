-- Assessment (考核, docs/assessment.md): the yearly targets of each jurisdiction, one value per
-- indicator (assessment/indicators.py names the keys). assessment/targets.py is the only writer,
-- with an audit_log row beside every change.

CREATE TABLE assessment_targets (
    jurisdiction_id bigint NOT NULL REFERENCES jurisdictions (id) ON DELETE CASCADE,
    year            integer NOT NULL CHECK (year BETWEEN 2000 AND 2100),
    indicator       text NOT NULL CHECK (indicator ~ '^[a-z0-9_]{1,64}$'),
    target          double precision NOT NULL CHECK (target >= 0 AND target < 'Infinity'),
    set_by          text NOT NULL DEFAULT '' CHECK (length(set_by) <= 200),
    set_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (jurisdiction_id, year, indicator)
);
