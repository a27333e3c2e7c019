-- Attribute history (the temporal API), rollups and retention.
-- One series per (tenant, entity, attribute, datasetId) with an integer id; instances keyed by
-- (series, time in epoch milliseconds, seq) in a WITHOUT ROWID table, so a numeric instance costs
-- a few dozen bytes with its index.
CREATE TABLE history_entities (
    tenant      TEXT NOT NULL,
    id          TEXT NOT NULL,
    types       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    deleted_at  INTEGER,
    PRIMARY KEY (tenant, id)
) WITHOUT ROWID;

CREATE TABLE history_series (
    id          INTEGER PRIMARY KEY,
    tenant      TEXT NOT NULL,
    entity_id   TEXT NOT NULL,
    attr        TEXT NOT NULL,
    dataset_id  TEXT NOT NULL,
    kind        TEXT NOT NULL,
    mixed       INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX history_series_key ON history_series (tenant, entity_id, attr, dataset_id);

-- The rest of a numeric instance (type, unitCode, ...), interned: most instances share one.
CREATE TABLE history_shapes (
    id          INTEGER PRIMARY KEY,
    doc         TEXT NOT NULL UNIQUE
);

-- t: observedAt, or when recorded if the instance had none. seq tells apart instances at the same t.
-- num: the value when it is a number. shape: history_shapes id (NULL: a plain Property; -1: the
-- record of a deletion). doc: the instance as JSON when num and shape cannot hold it. rec: when
-- recorded (NULL: equal to t, no observedAt).
CREATE TABLE history (
    series      INTEGER NOT NULL,
    t           INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    num,
    shape       INTEGER,
    doc         TEXT,
    rec         INTEGER,
    PRIMARY KEY (series, t, seq)
) WITHOUT ROWID;

-- Hourly (grain 3600000) and daily (grain 86400000) rollups of numeric instances by t.
CREATE TABLE history_rollups (
    series      INTEGER NOT NULL,
    grain       INTEGER NOT NULL,
    bucket      INTEGER NOT NULL,
    n           INTEGER NOT NULL,
    total       REAL NOT NULL,
    low         NOT NULL,
    high        NOT NULL,
    sumsq       REAL NOT NULL,
    PRIMARY KEY (series, grain, bucket)
) WITHOUT ROWID;

-- Days of raw instances kept, per tenant and entity type ('' = the tenant's default).
CREATE TABLE history_retention (
    tenant      TEXT NOT NULL,
    entity_type TEXT NOT NULL,
    raw_days    INTEGER NOT NULL,
    PRIMARY KEY (tenant, entity_type)
) WITHOUT ROWID
