-- The assessment summary (docs/assessment.md "Speed"): the alarm indicators of a year read
-- per site and calendar month (UTC) from two tables kept by a trigger on `alarms` in the same
-- transaction as every write, instead of from the alarms themselves. assessment/queries.py
-- reads whole months here and the partial months at a period's edges from `alarms`.
--
-- Only normal-mode alarms with a site enter (test, disabled and maintenance mode never
-- count). A row is a sum of contributions: the trigger subtracts what the old row contributed
-- and adds what the new one does, so a late verdict, a mode change, a reopening or a move to
-- another month all keep the sums equal to a recount (tests/assessment/test_summary.py).

-- What the response-time indicators need: a value rounded to a fixed ladder of buckets
-- (1 s below an hour, 1 min below a day, 1 h beyond); assessment/queries.py rounds the raw
-- values of the edges the same way, so a percentile does not depend on how a period splits.
CREATE FUNCTION assessment_bucket(s double precision) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN abs(s) < 3600 THEN round(s)
                WHEN abs(s) < 86400 THEN round(s / 60) * 60
                ELSE round(s / 3600) * 3600 END
$$;

-- Counts per (month, site, class, verdict ('' = none)); the limits of GB 50440 / NFPA 72 for
-- fire alarms: met (end - start <= limit), over (end - start > limit), open (start set, end not:
-- missed or pending depending on now, which the query settles).
CREATE TABLE alarm_month_counts (
    month       timestamptz NOT NULL,
    site_id     text NOT NULL,
    class       text NOT NULL,
    verdict     text NOT NULL,
    n           bigint NOT NULL DEFAULT 0,
    gd_met bigint NOT NULL DEFAULT 0, gd_over bigint NOT NULL DEFAULT 0,
    gd_open bigint NOT NULL DEFAULT 0,
    nd_met bigint NOT NULL DEFAULT 0, nd_over bigint NOT NULL DEFAULT 0,
    nd_open bigint NOT NULL DEFAULT 0,
    gf_met bigint NOT NULL DEFAULT 0, gf_over bigint NOT NULL DEFAULT 0,
    gf_open bigint NOT NULL DEFAULT 0,
    nr_met bigint NOT NULL DEFAULT 0, nr_over bigint NOT NULL DEFAULT 0,
    nr_open bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (site_id, month, class, verdict)
);

-- Histograms of the times: kind ack / verdict (from received_at, else stored_at) and repair
-- (fault alarms: cleared_at - raised_at), per (month, site, class, bucket).
CREATE TABLE alarm_month_times (
    month       timestamptz NOT NULL,
    site_id     text NOT NULL,
    class       text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('ack', 'verdict', 'repair')),
    bucket      double precision NOT NULL,
    n           bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (site_id, month, kind, class, bucket)
);

CREATE FUNCTION assessment_summary_add(r alarms, sign integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    m timestamptz;
    origin timestamptz;
    confirmed timestamptz;
    fwd boolean;
    recv timestamptz;
    fire boolean;
    lim int[] := ARRAY[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
BEGIN
    IF r.mode <> 'normal' OR r.site_id IS NULL THEN
        RETURN;
    END IF;
    m := date_trunc('month', r.raised_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    recv := coalesce(r.received_at, r.stored_at);
    fire := r.class = 'fire';
    IF fire THEN
        origin := coalesce(r.device_ts, r.received_at);
        confirmed := CASE WHEN r.forward_basis = 'operator'
                               OR (r.forward_basis IS NULL AND r.verdict = 'true_fire')
                          THEN r.verdict_at ELSE r.forwarded_at END;
        fwd := r.forwarded_at IS NOT NULL OR r.verdict IS NOT DISTINCT FROM 'true_fire';
        -- gb50440_display_20s, nfpa72_display_90s: origin -> shown_at
        IF origin IS NOT NULL THEN
            IF r.shown_at IS NULL THEN lim[3] := 1; lim[6] := 1;
            ELSE
                IF r.shown_at - origin <= interval '20 s' THEN lim[1] := 1; ELSE lim[2] := 1; END IF;
                IF r.shown_at - origin <= interval '90 s' THEN lim[4] := 1; ELSE lim[5] := 1; END IF;
            END IF;
        END IF;
        -- gb50440_forward_3s: confirmed -> delivered_at, forwarded or true fires only
        IF fwd AND confirmed IS NOT NULL THEN
            IF r.delivered_at IS NULL THEN lim[9] := 1;
            ELSIF r.delivered_at - confirmed <= interval '3 s' THEN lim[7] := 1;
            ELSE lim[8] := 1; END IF;
        END IF;
        -- nfpa72_retransmit_90s: received_at -> delivered_at
        IF fwd AND r.received_at IS NOT NULL THEN
            IF r.delivered_at IS NULL THEN lim[12] := 1;
            ELSIF r.delivered_at - r.received_at <= interval '90 s' THEN lim[10] := 1;
            ELSE lim[11] := 1; END IF;
        END IF;
    END IF;
    INSERT INTO alarm_month_counts AS c (month, site_id, class, verdict, n,
        gd_met, gd_over, gd_open, nd_met, nd_over, nd_open,
        gf_met, gf_over, gf_open, nr_met, nr_over, nr_open)
    VALUES (m, r.site_id, r.class, coalesce(r.verdict, ''), sign,
        sign * lim[1], sign * lim[2], sign * lim[3], sign * lim[4], sign * lim[5], sign * lim[6],
        sign * lim[7], sign * lim[8], sign * lim[9], sign * lim[10], sign * lim[11],
        sign * lim[12])
    ON CONFLICT (site_id, month, class, verdict) DO UPDATE SET
        n = c.n + EXCLUDED.n,
        gd_met = c.gd_met + EXCLUDED.gd_met, gd_over = c.gd_over + EXCLUDED.gd_over,
        gd_open = c.gd_open + EXCLUDED.gd_open,
        nd_met = c.nd_met + EXCLUDED.nd_met, nd_over = c.nd_over + EXCLUDED.nd_over,
        nd_open = c.nd_open + EXCLUDED.nd_open,
        gf_met = c.gf_met + EXCLUDED.gf_met, gf_over = c.gf_over + EXCLUDED.gf_over,
        gf_open = c.gf_open + EXCLUDED.gf_open,
        nr_met = c.nr_met + EXCLUDED.nr_met, nr_over = c.nr_over + EXCLUDED.nr_over,
        nr_open = c.nr_open + EXCLUDED.nr_open;
    INSERT INTO alarm_month_times AS t (month, site_id, class, kind, bucket, n)
    SELECT m, r.site_id, r.class, k, assessment_bucket(extract(epoch FROM v)::float8), sign
    FROM (VALUES ('ack', r.acknowledged_at - recv), ('verdict', r.verdict_at - recv),
                 ('repair', CASE WHEN r.class = 'fault' THEN r.cleared_at - r.raised_at END)) x (k, v)
    WHERE v IS NOT NULL
    ON CONFLICT (site_id, month, kind, class, bucket) DO UPDATE SET n = t.n + EXCLUDED.n;
END
$$;

CREATE FUNCTION assessment_summary_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM assessment_summary_add(OLD, -1);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        PERFORM assessment_summary_add(NEW, 1);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER alarms_summary_insert AFTER INSERT OR DELETE ON alarms
    FOR EACH ROW EXECUTE FUNCTION assessment_summary_trigger();
-- only the writes that change a figure (not each recurrence's last_at, count, evidence)
CREATE TRIGGER alarms_summary_update AFTER UPDATE ON alarms FOR EACH ROW
    WHEN ((OLD.site_id, OLD.class, OLD.mode, OLD.verdict, OLD.raised_at, OLD.received_at,
           OLD.stored_at, OLD.acknowledged_at, OLD.verdict_at, OLD.cleared_at, OLD.device_ts,
           OLD.shown_at, OLD.delivered_at, OLD.forwarded_at, OLD.forward_basis)
          IS DISTINCT FROM
          (NEW.site_id, NEW.class, NEW.mode, NEW.verdict, NEW.raised_at, NEW.received_at,
           NEW.stored_at, NEW.acknowledged_at, NEW.verdict_at, NEW.cleared_at, NEW.device_ts,
           NEW.shown_at, NEW.delivered_at, NEW.forwarded_at, NEW.forward_basis))
    EXECUTE FUNCTION assessment_summary_trigger();

-- the alarms there already
SELECT assessment_summary_add(a, 1) FROM alarms a WHERE a.mode = 'normal' AND a.site_id IS NOT NULL;

-- What the queries read from `alarms` itself: the GB 50440 days (equipment false alarms per
-- unit and local day), and the fire alarms whose open clock may still be pending (a start
-- clock in the last limit's span).
CREATE INDEX alarms_equipment_false_idx ON alarms (raised_at) INCLUDE (site_id)
    WHERE mode = 'normal' AND verdict = 'false_alarm';
CREATE INDEX alarms_fire_clock_idx ON alarms ((greatest(device_ts, received_at, verdict_at,
                                                        forwarded_at)))
    WHERE class = 'fire' AND mode = 'normal';
CREATE INDEX alarms_period_idx ON alarms (raised_at) INCLUDE (site_id) WHERE mode = 'normal';
