-- The indexes of entity queries, kept current inside each write transaction
-- (store/postgres/qindex.py) and filled for entities stored before this version when the store
-- next opens (the row of burgo_backfill says so).
--
-- entity_attr_values: for each top-level attribute of an entity, an existence row (kind 'e')
-- and one row per scalar value a q term compares: kind 'v' for Property-like values, 'c' for
-- VocabProperty terms, 'r' for Relationship objects; numbers in num, strings in txt.
CREATE TABLE entity_attr_values (
    tenant      text COLLATE "C" NOT NULL,
    entity_id   text COLLATE "C" NOT NULL,
    attr        text COLLATE "C" NOT NULL,
    kind        text NOT NULL,
    num         double precision,
    txt         text COLLATE "C"
);
CREATE INDEX entity_attr_values_entity ON entity_attr_values (tenant, entity_id, attr);
CREATE INDEX entity_attr_values_exists ON entity_attr_values (tenant, attr, entity_id)
    WHERE kind = 'e';
CREATE INDEX entity_attr_values_num ON entity_attr_values (tenant, attr, num, entity_id)
    WHERE num IS NOT NULL;
CREATE INDEX entity_attr_values_txt ON entity_attr_values (tenant, attr, txt, entity_id)
    WHERE txt IS NOT NULL;
-- An attribute's values depend on the attribute: statistics of the pairs let the planner see
-- that status == "ok" is common while fillingLevel > 0.99 is rare.
CREATE STATISTICS entity_attr_values_txt_stats (mcv, dependencies)
    ON attr, txt FROM entity_attr_values;
CREATE STATISTICS entity_attr_values_num_stats (dependencies) ON attr, num FROM entity_attr_values;

-- Pages walk the entities in id order: with the types in the index, the walk and the counts
-- of a type skip the documents (index-only scans).
CREATE INDEX entities_type_walk ON entities (tenant, id) INCLUDE (types);

-- entity_type_ids: each entity under each of its types, in id order: a page of one type walks
-- that type alone.
CREATE TABLE entity_type_ids (
    tenant      text COLLATE "C" NOT NULL,
    type        text COLLATE "C" NOT NULL,
    id          text COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, type, id)
);

-- entity_geo: one row per GeoProperty instance, its bounding box in a GiST index (the box type
-- of PostgreSQL itself), a Point's position in lon and lat, and with PostGIS the geometry.
CREATE TABLE entity_geo (
    tenant      text COLLATE "C" NOT NULL,
    entity_id   text COLLATE "C" NOT NULL,
    name        text COLLATE "C" NOT NULL,
    geometry    json NOT NULL,
    bounds      box NOT NULL,
    lon         double precision,
    lat         double precision
);
CREATE INDEX entity_geo_entity ON entity_geo (tenant, entity_id);
CREATE INDEX entity_geo_bounds ON entity_geo USING gist (bounds);

-- PostGIS when the server has it and this role may install it (a superuser, or the extension
-- already there); without it, geo-queries narrow by the box index alone.
DO $body$
BEGIN
    CREATE EXTENSION IF NOT EXISTS postgis;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'PostGIS is not available; geo-queries use the box index';
END
$body$;

DO $body$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'postgis') THEN
        EXECUTE 'ALTER TABLE entity_geo ADD COLUMN shape geometry';
        EXECUTE 'CREATE INDEX entity_geo_shape ON entity_geo USING gist (shape)';
        -- The geometry of a GeoJSON text; NULL for one PostGIS cannot read or that is not
        -- valid (the exact check of Burgo decides for those), never an error.
        EXECUTE $fn$
            CREATE FUNCTION burgo_shape(geojson text) RETURNS geometry
            LANGUAGE plpgsql IMMUTABLE AS $inner$
            DECLARE
                shape geometry;
            BEGIN
                shape := ST_GeomFromGeoJSON(geojson);
                IF shape IS NULL OR NOT ST_IsValid(shape) THEN
                    RETURN NULL;
                END IF;
                RETURN shape;
            EXCEPTION WHEN OTHERS THEN
                RETURN NULL;
            END
            $inner$
        $fn$;
    END IF;
END
$body$;

CREATE TABLE burgo_backfill (
    name        text PRIMARY KEY
);
INSERT INTO burgo_backfill (name) VALUES ('query_indexes');
