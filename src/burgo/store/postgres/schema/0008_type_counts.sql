-- How many entities of each tenant hold each set of types (sorted, each once), so that counting
-- the entities of a type expression (`type=A,B&count=true`) adds up a few rows instead of
-- reading every entity. Each database session adds to rows of its own (slot: its server
-- process id), so concurrent writes never wait on one another; rows of sessions that have ended
-- are folded into slot 0 when a store opens (store/postgres/qindex.py). An entity counts from
-- when its types are indexed (entity_type_ids): entities still waiting for the fill of older
-- entities (migration 0005) are counted by that fill.
CREATE TABLE entity_type_counts (
    tenant      text COLLATE "C" NOT NULL,
    types       text[] COLLATE "C" NOT NULL,
    slot        integer NOT NULL,
    n           bigint NOT NULL,
    PRIMARY KEY (tenant, types, slot)
);

INSERT INTO entity_type_counts (tenant, types, slot, n)
SELECT tenant, ARRAY(SELECT DISTINCT t FROM unnest(types) AS t ORDER BY t), 0, count(*)
FROM entities AS e
WHERE EXISTS (SELECT 1 FROM entity_type_ids AS t WHERE t.tenant = e.tenant AND t.id = e.id)
GROUP BY 1, 2;
