-- Attribute history (the temporal API), rollups and retention.
-- As on SQLite: one series per (tenant, entity, attribute, datasetId) with an integer id, and an
-- instance per row keyed by (tenant, series, time in epoch milliseconds, seq). The history table
-- is partitioned by month of that time; Burgo creates the partitions as instances arrive and
-- empties a whole month at once when every retention policy lets it go.
CREATE TABLE history_entities (
    tenant      text COLLATE "C" NOT NULL,
    id          text COLLATE "C" NOT NULL,
    types       text[] COLLATE "C" NOT NULL,
    created_at  bigint NOT NULL,
    deleted_at  bigint,
    PRIMARY KEY (tenant, id)
);

CREATE TABLE history_series (
    tenant      text COLLATE "C" NOT NULL,
    id          bigint GENERATED ALWAYS AS IDENTITY,
    entity_id   text COLLATE "C" NOT NULL,
    attr        text COLLATE "C" NOT NULL,
    dataset_id  text COLLATE "C" NOT NULL,
    kind        text NOT NULL,
    mixed       boolean NOT NULL DEFAULT false,
    PRIMARY KEY (tenant, id),
    UNIQUE (tenant, entity_id, attr, dataset_id)
);

-- The rest of a numeric instance (type, unitCode, ...), interned: most instances share one.
-- Rows are never deleted, so a worker may cache their ids.
CREATE TABLE history_shapes (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    doc         text NOT NULL UNIQUE
);

-- t: observedAt, or when recorded if the instance had none. seq tells apart instances at the same t.
-- num: the value when it is a number (whole: it was an integer). shape: history_shapes id (NULL:
-- a plain Property; -1: the record of a deletion). doc: the instance as JSON when num and shape
-- cannot hold it. rec: when recorded (NULL: equal to t, no observedAt).
CREATE TABLE history (
    tenant      text COLLATE "C" NOT NULL,
    series      bigint NOT NULL,
    t           bigint NOT NULL,
    seq         integer NOT NULL,
    whole       boolean NOT NULL DEFAULT false,
    num         double precision,
    shape       integer,
    doc         text,
    rec         bigint,
    PRIMARY KEY (tenant, series, t, seq)
) PARTITION BY RANGE (t);

-- Hourly (grain 3600000) and daily (grain 86400000) rollups of numeric instances by t.
CREATE TABLE history_rollups (
    tenant      text COLLATE "C" NOT NULL,
    series      bigint NOT NULL,
    grain       integer NOT NULL,
    bucket      bigint NOT NULL,
    n           bigint NOT NULL,
    total       double precision NOT NULL,
    low         double precision NOT NULL,
    high        double precision NOT NULL,
    sumsq       double precision NOT NULL,
    whole       boolean NOT NULL,
    PRIMARY KEY (tenant, series, grain, bucket)
);

-- Days of raw instances kept, per tenant and entity type ('' = the tenant's default).
CREATE TABLE history_retention (
    tenant      text COLLATE "C" NOT NULL,
    entity_type text COLLATE "C" NOT NULL,
    raw_days    integer NOT NULL,
    PRIMARY KEY (tenant, entity_type)
);

-- Entities stored before history was kept start their history now, with their creation time.
INSERT INTO history_entities (tenant, id, types, created_at)
SELECT tenant, id, types,
       CASE WHEN created_at = '' THEN 0
            ELSE (extract(epoch FROM created_at::timestamptz) * 1000)::bigint END
FROM entities;
