-- Functions that write what many messages or writes of one transaction changed, one call each.

-- Recording the history of many writes at once (a batch of device messages: hundreds of
-- instances), set by set where burgo_record_history goes instance by instance: the missing
-- series created, then one statement inserts every instance (after those already at its time)
-- and adds them to the hourly and daily rollups, each bucket once with the sum of its
-- instances (readings of one device in one hour share it). Same rows as burgo_record_history.
-- Each instance finds its series through the series' unique index (a lateral look-up the planner
-- cannot turn into a join): a plan made once per connection, when the tenant had few series,
-- would otherwise scan all of them for every instance.
CREATE FUNCTION burgo_record_history_set(p_tenant text, p_rows json) RETURNS void
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $body$
BEGIN
    IF json_array_length(p_rows) < 8 THEN  -- a few instances (a PATCH): one by one is cheaper
        PERFORM burgo_record_history(p_tenant, p_rows);
        RETURN;
    END IF;
    INSERT INTO history_series (tenant, entity_id, attr, dataset_id, kind, mixed)
    SELECT DISTINCT ON (u.entity_id, u.attr, u.dataset_id)
        p_tenant, u.entity_id, u.attr, u.dataset_id, u.kind, u.mixed
    FROM ROWS FROM (json_to_recordset(p_rows) AS (entity_id text, attr text,
        dataset_id text, kind text, mixed boolean)) WITH ORDINALITY
        AS u(entity_id, attr, dataset_id, kind, mixed, ord)
    LEFT JOIN LATERAL (SELECT s.id FROM history_series s WHERE s.tenant = p_tenant
        AND s.entity_id = u.entity_id AND s.attr = u.attr AND s.dataset_id = u.dataset_id
        OFFSET 0) AS s ON true
    WHERE s.id IS NULL
    ORDER BY u.entity_id, u.attr, u.dataset_id, u.ord
    ON CONFLICT DO NOTHING;

    WITH r AS MATERIALIZED (
        SELECT s.id AS series, s.mixed AS was_mixed, u.*
        FROM ROWS FROM (json_to_recordset(p_rows) AS (entity_id text, attr text,
            dataset_id text, kind text, mixed boolean, t bigint, whole boolean, num float8,
            shape integer, doc text, rec bigint)) WITH ORDINALITY
            AS u(entity_id, attr, dataset_id, kind, mixed, t, whole, num, shape, doc, rec, ord)
        JOIN LATERAL (SELECT s.id, s.mixed FROM history_series s WHERE s.tenant = p_tenant
            AND s.entity_id = u.entity_id AND s.attr = u.attr AND s.dataset_id = u.dataset_id
            OFFSET 0) AS s ON true
    ), mixed AS (
        UPDATE history_series SET mixed = true WHERE tenant = p_tenant
            AND id = ANY(ARRAY(SELECT series FROM r WHERE r.mixed AND NOT r.was_mixed))
    ), added AS (
        INSERT INTO history (tenant, series, t, seq, whole, num, shape, doc, rec)
        SELECT p_tenant, r.series, r.t,
            coalesce((SELECT max(h.seq) + 1 FROM history h
                WHERE h.tenant = p_tenant AND h.series = r.series AND h.t = r.t), 0)
            + (row_number() OVER (PARTITION BY r.series, r.t ORDER BY r.ord))::integer - 1,
            r.whole, r.num, r.shape, r.doc, r.rec
        FROM r
    )
    INSERT INTO history_rollups AS x
        (tenant, series, grain, bucket, n, total, low, high, sumsq, whole)
    SELECT p_tenant, r.series, g.grain, r.t - ((r.t % g.grain) + g.grain) % g.grain,
        count(*), sum(r.num), min(r.num), max(r.num), sum(r.num * r.num), bool_and(r.whole)
    FROM r CROSS JOIN (VALUES (3600000), (86400000)) AS g(grain)
    WHERE r.num IS NOT NULL
    GROUP BY r.series, g.grain, 4
    ON CONFLICT (tenant, series, grain, bucket) DO UPDATE SET
        n = x.n + excluded.n, total = x.total + excluded.total,
        low = least(x.low, excluded.low), high = greatest(x.high, excluded.high),
        sumsq = x.sumsq + excluded.sumsq, whole = x.whole AND excluded.whole;
END
$body$;

-- The value-index rows of the entities a write block changed, in one call: for each entity
-- (entity_id, every: all its rows are stale, stale: the stale attributes, rows: the new rows as
-- burgo_replace_values takes them), its rows replaced by burgo_replace_values.
CREATE FUNCTION burgo_replace_values_set(p_tenant text, p_entities json) RETURNS void
LANGUAGE plpgsql AS $body$
DECLARE
    e record;
BEGIN
    FOR e IN
        SELECT * FROM json_to_recordset(p_entities)
            AS u(entity_id text, every boolean, stale text[], "rows" json)
    LOOP
        PERFORM burgo_replace_values(p_tenant, e.entity_id, e.every, e.stale, e."rows");
    END LOOP;
END
$body$;

-- The entities a write block changed, written back in one call: each row updated through the
-- primary key (one statement joining them all was planned as a scan of every entity). Each
-- document comes as a JSON text, cast as a single write's is: json_to_recordset refuses a
-- \u0000 inside a json column, which a document may hold.
CREATE FUNCTION burgo_update_entities(p_tenant text, p_rows json) RETURNS void
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $body$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT * FROM json_to_recordset(p_rows)
            AS u(id text, types text[], created_at text, modified_at text, doc text)
    LOOP
        UPDATE entities SET types = r.types, created_at = r.created_at,
            modified_at = r.modified_at, doc = r.doc::json
        WHERE tenant = p_tenant AND id = r.id;
    END LOOP;
END
$body$;
