-- Tenants, entities (document as json, its types as an array) and JSON-LD @contexts.
-- Every key starts with the tenant, so the tables can later be distributed by tenant.
-- Keys compare byte-wise (COLLATE "C"): pages are ordered by entity id as on SQLite.
CREATE TABLE tenants (
    name        text COLLATE "C" PRIMARY KEY,
    created_at  text NOT NULL
);

CREATE TABLE entities (
    tenant      text COLLATE "C" NOT NULL,
    id          text COLLATE "C" NOT NULL,
    types       text[] COLLATE "C" NOT NULL,
    created_at  text NOT NULL,
    modified_at text NOT NULL,
    doc         json NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX entities_types ON entities USING gin (types);

CREATE TABLE jsonld_contexts (
    id          text COLLATE "C" PRIMARY KEY,
    url         text NOT NULL,
    kind        text NOT NULL,
    document    json NOT NULL,
    created_at  text NOT NULL,
    last_usage  text,
    hits        bigint NOT NULL DEFAULT 0
);
CREATE INDEX jsonld_contexts_url ON jsonld_contexts (url);
