-- The attribute-value index of the q language: for each top-level attribute of an entity, one
-- existence row (kind 'e'), and one row per scalar value a q term compares (kind 'v' for values
-- of Properties, GeoProperties, List/Json/LanguageProperties; 'c' for VocabProperties; 'r' for
-- Relationship objects), with numbers in num and strings in txt. Kept current by a change hook
-- (store/sqlite/qindex.py); rows of a deleted entity go with it (ON DELETE CASCADE).
CREATE TABLE attr_values (
    entity_pk   INTEGER NOT NULL REFERENCES entities (pk) ON DELETE CASCADE,
    attr        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    num,
    txt         TEXT
);
CREATE INDEX attr_values_entity ON attr_values (entity_pk, attr);
CREATE INDEX attr_values_num ON attr_values (attr, num, kind, entity_pk) WHERE num IS NOT NULL;
CREATE INDEX attr_values_txt ON attr_values (attr, txt, kind, entity_pk) WHERE txt IS NOT NULL;
CREATE INDEX attr_values_exists ON attr_values (attr, entity_pk) WHERE kind = 'e';

-- Backfill the entities written before this migration, with the same rules as the hook.
INSERT INTO attr_values (entity_pk, attr, kind)
SELECT e.pk, a.key, 'e' FROM entities AS e, json_each(e.doc, '$.attrs') AS a
WHERE json_array_length(a.value) > 0;

INSERT INTO attr_values (entity_pk, attr, kind, num, txt)
SELECT DISTINCT pk, attr, kind,
    CASE WHEN ctype IN ('integer', 'real') THEN cvalue END,
    CASE WHEN ctype = 'text' THEN cvalue END
FROM (
    SELECT e.pk AS pk, a.key AS attr,
        CASE json_extract(i.value, '$.type')
            WHEN 'VocabProperty' THEN 'c' WHEN 'Relationship' THEN 'r' ELSE 'v' END AS kind,
        c.type AS ctype, c.value AS cvalue
    FROM entities AS e, json_each(e.doc, '$.attrs') AS a, json_each(a.value) AS i,
        json_each(i.value, CASE json_extract(i.value, '$.type')
            WHEN 'Property' THEN '$.value' WHEN 'GeoProperty' THEN '$.value'
            WHEN 'ListProperty' THEN '$.valueList' WHEN 'JsonProperty' THEN '$.json'
            WHEN 'VocabProperty' THEN '$.vocab' WHEN 'Relationship' THEN '$.object' END) AS c
    WHERE json_type(i.value, CASE json_extract(i.value, '$.type')
            WHEN 'Property' THEN '$.value' WHEN 'GeoProperty' THEN '$.value'
            WHEN 'ListProperty' THEN '$.valueList' WHEN 'JsonProperty' THEN '$.json'
            WHEN 'VocabProperty' THEN '$.vocab' WHEN 'Relationship' THEN '$.object' END)
        <> 'object'
    UNION ALL
    SELECT e.pk, a.key, 'v', c.type, c.value
    FROM entities AS e, json_each(e.doc, '$.attrs') AS a, json_each(a.value) AS i,
        json_each(i.value, '$.languageMap') AS m,
        json_each(CASE WHEN m.type = 'array' THEN m.value
            WHEN m.type IN ('text', 'integer', 'real') THEN json_array(m.value) ELSE '[]' END) AS c
    WHERE json_extract(i.value, '$.type') = 'LanguageProperty'
    UNION ALL
    SELECT e.pk, a.key, 'r', json_type(o.value, '$.object'), json_extract(o.value, '$.object')
    FROM entities AS e, json_each(e.doc, '$.attrs') AS a, json_each(a.value) AS i,
        json_each(i.value, '$.objectList') AS o
    WHERE json_extract(i.value, '$.type') = 'ListRelationship' AND o.type = 'object'
)
WHERE ctype IN ('integer', 'real', 'text');
