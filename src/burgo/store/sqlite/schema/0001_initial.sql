-- Tenants, entities (with their types for type queries) and JSON-LD @contexts.
CREATE TABLE tenants (
    name        TEXT PRIMARY KEY,
    created_at  TEXT NOT NULL
);

CREATE TABLE entities (
    pk          INTEGER PRIMARY KEY,
    tenant      TEXT NOT NULL,
    id          TEXT NOT NULL,
    types       TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    modified_at TEXT NOT NULL,
    doc         TEXT NOT NULL
);
CREATE UNIQUE INDEX entities_tenant_id ON entities (tenant, id);

CREATE TABLE entity_types (
    entity_pk   INTEGER NOT NULL REFERENCES entities (pk) ON DELETE CASCADE,
    tenant      TEXT NOT NULL,
    type        TEXT NOT NULL,
    PRIMARY KEY (tenant, type, entity_pk)
) WITHOUT ROWID;
CREATE INDEX entity_types_entity ON entity_types (entity_pk);

CREATE TABLE jsonld_contexts (
    id          TEXT PRIMARY KEY,
    url         TEXT NOT NULL,
    kind        TEXT NOT NULL,
    document    TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    last_usage  TEXT,
    hits        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX jsonld_contexts_url ON jsonld_contexts (url);
