-- Type index in id order, so that a query on a type walks its entities in the answer's order.
CREATE TABLE entity_type_ids (
    tenant      TEXT NOT NULL,
    type        TEXT NOT NULL,
    id          TEXT NOT NULL,
    entity_pk   INTEGER NOT NULL,
    PRIMARY KEY (tenant, type, id)
) WITHOUT ROWID;
INSERT INTO entity_type_ids (tenant, type, id, entity_pk)
SELECT t.tenant, t.type, e.id, e.pk FROM entity_types AS t JOIN entities AS e ON e.pk = t.entity_pk;
-- Geo index: one row per GeoProperty instance of each entity, its bounding box in an R*Tree.
-- Both kept up to date by the queries mixin's change hook; geo rows are found by (tenant, entity_id).
CREATE TABLE entity_geo (
    id          INTEGER PRIMARY KEY,
    tenant      TEXT NOT NULL,
    entity_id   TEXT NOT NULL,
    entity_pk   INTEGER NOT NULL,
    name        TEXT NOT NULL,
    geometry    TEXT NOT NULL
);
CREATE INDEX entity_geo_entity ON entity_geo (tenant, entity_id);
CREATE VIRTUAL TABLE entity_geo_box USING rtree (id, min_x, max_x, min_y, max_y);
-- Entities stored before this version: index their GeoProperties now.
INSERT INTO entity_geo (tenant, entity_id, entity_pk, name, geometry)
SELECT e.tenant, e.id, e.pk, a.key, json_extract(i.value, '$.value')
FROM entities AS e, json_each(e.doc, '$.attrs') AS a, json_each(a.value) AS i
WHERE json_extract(i.value, '$.type') = 'GeoProperty'
  AND json_type(i.value, '$.value') = 'object';
INSERT INTO entity_geo_box (id, min_x, max_x, min_y, max_y)
SELECT g.id,
       min(CASE WHEN t.key = 0 THEN t.atom END), max(CASE WHEN t.key = 0 THEN t.atom END),
       min(CASE WHEN t.key = 1 THEN t.atom END), max(CASE WHEN t.key = 1 THEN t.atom END)
FROM entity_geo AS g, json_tree(g.geometry) AS t
WHERE t.type IN ('integer', 'real') AND t.key IN (0, 1) AND t.path LIKE '%.coordinates%'
GROUP BY g.id
HAVING count(*) > 0
