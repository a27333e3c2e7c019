"""Entities whose index and history rows SQLite derives from their stored documents.

A batch create hands the change hooks thousands of new entities. For the common shapes (every
instance a Property, Relationship or GeoProperty Point, no sub-attributes, no objectType, times
in canonical form), each hook has a set-based form: one ``INSERT ... SELECT`` over
``json_each`` of the rows just written, which yields exactly the rows its Python form would
bind one by one. SQLite runs those statements without holding the GIL, so the writer thread does
that work beside the threads parsing the next requests. Anything else takes the Python form.
"""

from __future__ import annotations

import sqlite3

from burgo.ngsild.model import AttrKind, Entity

# The JSON operators and unixepoch() the set-based forms use came with SQLite 3.38.
ENABLED = sqlite3.sqlite_version_info >= (3, 38, 0)

_KINDS = frozenset({AttrKind.PROPERTY, AttrKind.RELATIONSHIP, AttrKind.GEO_PROPERTY})

# The epoch milliseconds of a canonical DateTime (``YYYY-MM-DDTHH:MM:SS.mmmZ``) held in ``{}``.
MILLIS_SQL = "(unixepoch(substr({0}, 1, 19)) * 1000 + CAST(substr({0}, 21, 3) AS INTEGER))"


def _canonical(text: str | None) -> bool:
    return (
        text is not None
        and len(text) == 24
        and text[19] == "."
        and text[23] == "Z"
        and text[4] == "-"
        and text[10] == "T"
    )


def is_plain(entity: Entity) -> bool:
    """Whether the set-based forms of the hooks cover every instance of ``entity``."""
    if not ENABLED or not _canonical(entity.created_at):
        return False
    for instances in entity.attrs.values():
        for attr in instances:
            if attr.kind not in _KINDS or attr.sub or attr.object_type is not None:
                return False
            observed = attr.observed_at
            if observed is not None and not _canonical(observed):
                return False
            if attr.kind is AttrKind.GEO_PROPERTY:
                value = attr.value
                if type(value) is not dict or value.get("type") != "Point":
                    return False
    return True


# One row per instance of the plain entities being created, filled once per batch from their
# stored documents (?1: the JSON array of their keys, in batch order) so that each hook's form
# reads columns instead of parsing every document again. No column has an affinity: values keep
# the SQL type JSON gave them. value and unit hold JSON text as stored; t and rec are the
# epoch milliseconds of the history row (observedAt, else the creation; rec: the creation when
# observed); numeric: a Property whose value is a number; ik: the instance's place in its
# attribute; multi: whether the attribute may have several instances (its text joins two).
_TABLE = """
CREATE TEMP TABLE IF NOT EXISTS plain_instances (
    n, pk, tenant, entity_id, attr, aid, iid, kind, dataset_id, vtype, atom, value, unit, t, rec,
    numeric, ik, multi
)
"""
# Cheap tests on the stored text before a JSON function parses it: an instance's document starts
# with its type (model.attribute_to_storage writes it first), and a member is looked up only when
# its name appears in the text at all (the store writes JSON with orjson, which never escapes a
# letter, so an absent name is an absent member).
_KIND = """CASE
    WHEN substr(i.value, 1, 19) = '{"type":"Property",' THEN 'Property'
    WHEN substr(i.value, 1, 22) = '{"type":"GeoProperty",' THEN 'GeoProperty'
    ELSE i.value ->> '$.type' END"""
_MEMBER = "CASE WHEN instr(i.value, '\"{0}\":') THEN i.value {1} '$.{0}' END"
# The JSON type of a value from its first character (numbers as orjson writes them: a float
# always with a point or an exponent).
_VTYPE = """CASE substr(value, 1, 1)
    WHEN '"' THEN 'text' WHEN '[' THEN 'array' WHEN '{{' THEN 'object' WHEN 't' THEN 'true'
    WHEN 'f' THEN 'false' WHEN 'n' THEN 'null'
    ELSE CASE WHEN value GLOB '*[.eE]*' THEN 'real' ELSE 'integer' END END"""
_FILL = f"""
INSERT INTO temp.plain_instances
SELECT n, pk, tenant, entity_id, attr, aid, iid, kind, dataset_id, vtype,
    CASE vtype WHEN 'text' THEN value ->> '$' WHEN 'integer' THEN CAST(value AS INTEGER)
        WHEN 'real' THEN CAST(value AS REAL) END,
    value, unit,
    CASE WHEN observed IS NULL THEN at ELSE {MILLIS_SQL.format("observed")} END,
    CASE WHEN observed IS NULL THEN NULL ELSE at END,
    kind = 'Property' AND vtype IN ('integer', 'real'), ik, multi
FROM (
    SELECT n, pk, tenant, entity_id, at, attr, aid, iid, kind, dataset_id, value, unit, observed,
        ik, multi, {_VTYPE.replace("{{", "{")} AS vtype
    FROM (
        SELECT b.key AS n, e.pk AS pk, e.tenant AS tenant, e.id AS entity_id,
            {MILLIS_SQL.format("e.created_at")} AS at, a.key AS attr, a.id AS aid, i.id AS iid,
            {_KIND} AS kind,
            coalesce({_MEMBER.format("datasetId", "->>")}, '') AS dataset_id,
            CASE WHEN substr(i.value, 1, 23) = '{{"type":"Relationship",'
                THEN i.value -> '$.object' ELSE i.value -> '$.value' END AS value,
            {_MEMBER.format("unitCode", "->")} AS unit,
            {_MEMBER.format("observedAt", "->>")} AS observed,
            i.key AS ik, instr(a.value, '}},{{"type":') > 0 AS multi
        FROM json_each(?1) AS b
            JOIN entities AS e ON e.pk = b.value,
            json_each(e.doc, '$.attrs') AS a,
            json_each(a.value) AS i
        LIMIT -1
    )
    LIMIT -1
)
"""  # noqa: S608 - fixed fragments


def fill_instances(conn: sqlite3.Connection, keys: str) -> None:
    """List the instances of the plain entities whose keys are the JSON array ``keys``."""
    conn.execute(_TABLE)
    conn.execute("DELETE FROM temp.plain_instances")
    conn.execute(_FILL, (keys,))


def clear_instances(conn: sqlite3.Connection) -> None:
    """Empty the list once every hook has read it."""
    conn.execute("DELETE FROM temp.plain_instances")
