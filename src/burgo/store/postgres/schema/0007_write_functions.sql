-- Functions that entity writes call (history, the value index), each planned once per connection.

-- Recording history inside an entity write, in one call from Burgo: the instances arrive as a
-- JSON array; each finds or creates its series (marking it mixed when the instance is not a
-- number), goes into history (after the instances already at its time, if any) and into its
-- hourly and daily rollups. Nothing comes back, so the call travels with the write's other
-- statements in one round trip. Each statement is planned once per connection: its plan does
-- not depend on the values (index look-ups by key), and planning each call cost more than
-- running it.
CREATE FUNCTION burgo_record_history(p_tenant text, p_rows json) RETURNS void
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $body$
DECLARE
    r record;
    v_series bigint;
    v_mixed boolean;
BEGIN
    FOR r IN
        SELECT * FROM json_to_recordset(p_rows) AS u(entity_id text, attr text,
            dataset_id text, kind text, mixed boolean, t bigint, whole boolean, num float8,
            shape integer, doc text, rec bigint)
    LOOP
        SELECT s.id, s.mixed INTO v_series, v_mixed FROM history_series s
        WHERE s.tenant = p_tenant AND s.entity_id = r.entity_id AND s.attr = r.attr
            AND s.dataset_id = r.dataset_id;
        IF NOT FOUND THEN
            INSERT INTO history_series (tenant, entity_id, attr, dataset_id, kind, mixed)
            VALUES (p_tenant, r.entity_id, r.attr, r.dataset_id, r.kind, r.mixed)
            ON CONFLICT DO NOTHING RETURNING id, mixed INTO v_series, v_mixed;
            IF NOT FOUND THEN  -- another transaction created it meanwhile (and has committed)
                SELECT s.id, s.mixed INTO v_series, v_mixed FROM history_series s
                WHERE s.tenant = p_tenant AND s.entity_id = r.entity_id AND s.attr = r.attr
                    AND s.dataset_id = r.dataset_id;
            END IF;
        END IF;
        IF r.mixed AND NOT v_mixed THEN
            UPDATE history_series SET mixed = true WHERE tenant = p_tenant AND id = v_series;
        END IF;
        INSERT INTO history (tenant, series, t, seq, whole, num, shape, doc, rec)
        VALUES (p_tenant, v_series, r.t, 0, r.whole, r.num, r.shape, r.doc, r.rec)
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN  -- the series has an instance at this time already: this one follows
            INSERT INTO history (tenant, series, t, seq, whole, num, shape, doc, rec)
            SELECT p_tenant, v_series, r.t, max(h.seq) + 1, r.whole, r.num, r.shape, r.doc, r.rec
            FROM history h WHERE h.tenant = p_tenant AND h.series = v_series AND h.t = r.t;
        END IF;
        IF r.num IS NOT NULL THEN
            INSERT INTO history_rollups AS x
                (tenant, series, grain, bucket, n, total, low, high, sumsq, whole)
            SELECT p_tenant, v_series, g.grain, r.t - ((r.t % g.grain) + g.grain) % g.grain,
                1, r.num, r.num, r.num, r.num * r.num, r.whole
            FROM (VALUES (3600000), (86400000)) AS g(grain)
            ON CONFLICT (tenant, series, grain, bucket) DO UPDATE SET
                n = x.n + excluded.n, total = x.total + excluded.total,
                low = least(x.low, excluded.low), high = greatest(x.high, excluded.high),
                sumsq = x.sumsq + excluded.sumsq, whole = x.whole AND excluded.whole;
        END IF;
    END LOOP;
END
$body$;

-- The value-index rows of an entity write: those of the stale attributes (all of them when
-- p_all) deleted, the new ones (a JSON array of [attribute, kind, number, text]) inserted.
CREATE FUNCTION burgo_replace_values(p_tenant text, p_id text, p_all boolean, p_stale text[],
    p_rows json) RETURNS void
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $body$
BEGIN
    IF p_all THEN
        DELETE FROM entity_attr_values WHERE tenant = p_tenant AND entity_id = p_id;
    ELSIF cardinality(p_stale) > 0 THEN
        DELETE FROM entity_attr_values
        WHERE tenant = p_tenant AND entity_id = p_id AND attr = ANY(p_stale);
    END IF;
    INSERT INTO entity_attr_values (tenant, entity_id, attr, kind, num, txt)
    SELECT p_tenant, p_id, r->>0, r->>1, (r->>2)::float8, r->>3
    FROM json_array_elements(p_rows) AS r;
END
$body$;
