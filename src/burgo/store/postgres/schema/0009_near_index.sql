-- The box index of entity_geo carries what a near-query reads of each row (the tenant, the
-- attribute, the entity, a Point's position), so a near-query finds and measures its candidates
-- from the index alone (an index-only scan), without visiting a table page per candidate: with
-- a million entities, 500 m around a point holds some ten thousand.
CREATE INDEX entity_geo_near ON entity_geo USING gist (bounds) INCLUDE (tenant, name, entity_id, lon, lat);
DROP INDEX entity_geo_bounds;
