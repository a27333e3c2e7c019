"""The indexes of entity queries in PostgreSQL (migration 0005), kept current by a change hook.

``entity_attr_values`` holds, for each top-level attribute of an entity, an existence row (kind
``e``) and rows for the values a q term compares, as the reference evaluator lists them
(:func:`burgo.ngsild.qmatch.attribute_candidates`): numbers (in ``num``) and strings (in
``txt``) of kind ``v`` for Property-like values, ``c`` for VocabProperty terms, ``r`` for
Relationship objects; booleans as 0 and 1 (kind ``b``); and the sortable key
(:func:`burgo.ngsild.qmatch.temporal_key`) of every value that reads as a DateTime (``d``), a Date
(``a``) or a Time (``t``). Boolean and temporal rows of a Relationship's objects take an ``r``
before their kind: they compare with ``==`` only, never order.
``entity_geo`` holds one row per GeoProperty instance: its GeoJSON, bounding box, a Point's
position and, with PostGIS, its geometry; ``entity_type_ids`` lists each entity under each of
its types. :mod:`burgo.store.postgres.qsql` and :mod:`burgo.store.postgres.queries` read them.

Both are rewritten inside the transaction of each entity write; entities stored before the
indexes existed are indexed when the store next opens (:meth:`PostgresQIndex.open`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from burgo.ngsild.geoquery import geometry_box
from burgo.ngsild.model import Attribute, AttrKind, Entity, entity_from_storage
from burgo.ngsild.qmatch import LitKind, attribute_candidates, temporal_key
from burgo.store.base import EntityChangeRecord
from burgo.store.postgres.core import ROWS, Connection, PostgresCore, defer, defer_rows, text_array

AttrRow = tuple[str, str, str, str, float | None, str | None]
GeoRow = tuple[str, str, str, str, str, float | None, float | None]

_KIND_TAGS = {
    AttrKind.VOCAB_PROPERTY: "c",
    AttrKind.RELATIONSHIP: "r",
    AttrKind.LIST_RELATIONSHIP: "r",
}
TEMPORAL_KINDS = {LitKind.DATETIME: "d", LitKind.DATE: "a", LitKind.TIME: "t"}
# Entities indexed per transaction when filling the indexes of older entities.
_BACKFILL_BATCH = 1000
# Any fixed number: the key of the advisory lock under which one process folds the type counts.
_FOLD_LOCK = 0x6275_7267_6F02


def index_number(value: int | float) -> float:
    """A number as the index holds it: a double, integers beyond its range as infinities."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def attribute_rows(
    tenant: str, entity_id: str, name: str, instances: Iterable[Attribute]
) -> set[AttrRow]:
    """The value-index rows of one attribute of an entity."""
    rows: set[AttrRow] = set()
    for instance in instances:
        rows.add((tenant, entity_id, name, "e", None, None))
        tag = _KIND_TAGS.get(instance.kind, "v")
        prefix = "r" if tag == "r" else ""
        for value in attribute_candidates(instance):
            if isinstance(value, bool):
                rows.add((tenant, entity_id, name, prefix + "b", float(value), None))
            elif isinstance(value, str):
                rows.add((tenant, entity_id, name, tag, None, value))
            elif isinstance(value, int | float):
                rows.add((tenant, entity_id, name, tag, index_number(value), None))
            if isinstance(value, str | dict):
                for lit_kind, kind in TEMPORAL_KINDS.items():
                    key = temporal_key(lit_kind, value)
                    if key is not None:
                        rows.add((tenant, entity_id, name, prefix + kind, None, key))
    return rows


def geo_rows(tenant: str, entity: Entity | None) -> list[GeoRow]:
    """The geo-index rows of an entity: (tenant, id, attribute, GeoJSON, box, lon, lat)."""
    if entity is None:
        return []
    rows: list[GeoRow] = []
    for name, instances in entity.attrs.items():
        for instance in instances:
            if instance.kind != AttrKind.GEO_PROPERTY:
                continue
            geometry = instance.value
            box = geometry_box(geometry)
            if box is None:
                continue
            lon = lat = None
            if geometry.get("type") == "Point":
                lon, lat = float(geometry["coordinates"][0]), float(geometry["coordinates"][1])
            rows.append(
                (
                    tenant,
                    entity.id,
                    name,
                    orjson.dumps(geometry).decode(),
                    f"(({box[0]!r},{box[2]!r}),({box[1]!r},{box[3]!r}))",
                    lon,
                    lat,
                )
            )
    return rows


def _geo_instances(entity: Entity | None) -> list[tuple[str, Attribute]]:
    """An entity's GeoProperty instances, by attribute name."""
    if entity is None:
        return []
    return [
        (name, instance)
        for name, instances in entity.attrs.items()
        for instance in instances
        if instance.kind == AttrKind.GEO_PROPERTY
    ]


def same_json(a: Any, b: Any) -> bool:
    """Whether two JSON values are the same: of the same types (1, 1.0 and true differ), their
    members in the same order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same_json(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _same_values(old: Sequence[Attribute], new: Sequence[Attribute]) -> bool:
    """Whether the instances of an attribute have the same kinds and values, in order: their
    value-index rows, which come from these alone, are then the same (a value written again
    differs only in its timestamps)."""
    return len(old) == len(new) and all(
        a.kind == b.kind and same_json(a.value, b.value) for a, b in zip(old, new, strict=True)
    )


def _same_places(old: list[tuple[str, Attribute]], new: list[tuple[str, Attribute]]) -> bool:
    """Whether GeoProperty instances have the same names and values, in order: their geo-index
    rows, which come from these alone, are then the same."""
    return len(old) == len(new) and all(
        a[0] == b[0] and same_json(a[1].value, b[1].value) for a, b in zip(old, new, strict=True)
    )


def value_changes(record: EntityChangeRecord) -> tuple[list[str] | None, list[AttrRow]]:
    """What a write changes in the value index: the attributes whose rows go (None: all of
    them) and the rows that come."""
    tenant, entity_id, before, after = (
        record.tenant,
        record.entity_id,
        record.before,
        record.after,
    )
    rows: list[AttrRow] = []
    stale: list[str] | None = None  # None: every attribute of the entity
    if before is None or after is None:
        if after is not None:
            for name, instances in after.attrs.items():
                rows.extend(attribute_rows(tenant, entity_id, name, instances))
        if before is None:
            stale = []
    else:
        stale = []
        for name in dict.fromkeys([*before.attrs, *after.attrs]):
            old, new = before.attrs.get(name, ()), after.attrs.get(name, ())
            if old == new or _same_values(old, new):
                continue
            new_rows = attribute_rows(tenant, entity_id, name, new)
            if new_rows != attribute_rows(tenant, entity_id, name, old):
                stale.append(name)
                rows.extend(new_rows)
    return stale, rows


def geo_changes(record: EntityChangeRecord) -> list[GeoRow] | None:
    """The geo-index rows of the entity after a write, or None when they stay as they were."""
    before, after = _geo_instances(record.before), _geo_instances(record.after)
    if before == after or _same_places(before, after):
        return None
    rows = geo_rows(record.tenant, record.after)
    if record.before is not None and geo_rows(record.tenant, record.before) == rows:
        return None
    return rows


class PostgresQIndex(PostgresCore):
    """Keeps the query indexes in step with the entities, in each write's transaction."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._net_change_hooks.append(self._index_entity)
        self._set_based_hooks[self._index_entity] = self._index_entities
        self.postgis = False

    async def open(self) -> None:
        """Open the store, learn whether PostGIS serves geo-queries, index older entities."""
        await super().open()
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "SELECT EXISTS (SELECT 1 FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = 'entity_geo' "
                "AND column_name = 'shape')"
            )
            row = await cursor.fetchone()
            self.postgis = bool(row and row[0])
        async with self._transaction() as conn:
            await fold_type_counts(conn)
        await self._backfill()

    async def _index_entity(
        self, conn: Connection, record: EntityChangeRecord, count: bool = True
    ) -> None:
        """Change hook: rewrite the index rows of what changed in the entity (and, when
        ``count``, its type set's count)."""
        await self._index_values(conn, record)
        await self._index_geometry(conn, record)
        await _index_types(conn, record, count)

    async def _index_entities(
        self, conn: Connection, records: Sequence[EntityChangeRecord]
    ) -> None:
        """Set-based form of :meth:`_index_entity` for many entities (each at most once) of one
        tenant: a few statements for them all, deferred."""
        if not records:
            return
        tenant = records[0].tenant
        every: list[str] = []
        some: list[tuple[str, str]] = []
        values: list[AttrRow] = []
        regeo: list[str] = []
        places: list[GeoRow] = []
        retyped: list[dict[str, Any]] = []
        for record in records:
            stale, rows = value_changes(record)
            if stale is None:
                every.append(record.entity_id)
            else:
                some += [(record.entity_id, name) for name in stale]
            values += rows
            geo = geo_changes(record)
            if geo is not None:
                if record.before is not None:
                    regeo.append(record.entity_id)
                places += geo
            retype = _type_change(record)
            if retype is not None:
                retyped.append(retype)
        await _replace_many_values(conn, tenant, every, some, values)
        if regeo:
            await defer(
                conn,
                "DELETE FROM entity_geo WHERE tenant = %s AND entity_id = ANY(%s::text[])",
                (tenant, text_array(regeo)),
            )
        await self._insert_geometry(conn, tenant, places)
        if retyped:
            await defer(
                conn, _RETYPE_MANY, {"tenant": tenant, "rows": orjson.dumps(retyped).decode()}
            )

    async def _index_values(self, conn: Connection, record: EntityChangeRecord) -> None:
        stale, rows = value_changes(record)
        await _replace_values(conn, record.tenant, record.entity_id, stale, rows)

    async def _index_geometry(self, conn: Connection, record: EntityChangeRecord) -> None:
        after = geo_changes(record)
        if after is None:
            return
        if record.before is not None:
            await conn.execute(
                "DELETE FROM entity_geo WHERE tenant = %s AND entity_id = %s",
                (record.tenant, record.entity_id),
            )
        await self._insert_geometry(conn, record.tenant, after)

    async def _insert_geometry(self, conn: Connection, tenant: str, rows: list[GeoRow]) -> None:
        """Insert geo-index rows (of one tenant's entities) in one statement, deferred."""
        if not rows:
            return
        places = [dict(zip(_PLACE_FIELDS, row[1:], strict=True)) for row in rows]
        await defer(
            conn,
            _INSERT_PLACES_POSTGIS if self.postgis else _INSERT_PLACES,
            (tenant, orjson.dumps(places).decode()),
        )

    async def _backfill(self) -> None:
        """Index the entities stored before the query indexes existed (once, in batches)."""
        async with self._transaction() as conn:
            cursor = await conn.execute("SELECT 1 FROM burgo_backfill WHERE name = 'query_indexes'")
            if await cursor.fetchone() is None:
                return
        after: tuple[str, str] = ("", "")
        while True:
            async with self._transaction() as conn:
                # One worker fills at a time; the others wait here, then find nothing to do.
                await conn.execute("LOCK TABLE burgo_backfill IN EXCLUSIVE MODE")
                cursor = await conn.execute(
                    "SELECT 1 FROM burgo_backfill WHERE name = 'query_indexes'"
                )
                if await cursor.fetchone() is None:
                    return
                cursor = await conn.execute(
                    "SELECT tenant, id, doc FROM entities WHERE (tenant, id) > (%s, %s) "
                    "ORDER BY tenant, id LIMIT %s",
                    (*after, _BACKFILL_BATCH),
                )
                batch = await cursor.fetchall()
                if not batch:
                    await conn.execute("DELETE FROM burgo_backfill WHERE name = 'query_indexes'")
                    return
                # A fill interrupted earlier (or a write since) may have indexed some of these:
                # start them clean. Those whose types were indexed are counted already.
                span = (batch[0][0], batch[0][1], batch[-1][0], batch[-1][1])
                for table in ("entity_attr_values", "entity_geo"):
                    await conn.execute(
                        f"DELETE FROM {table} WHERE (tenant, entity_id) >= (%s, %s) "  # noqa: S608 - fixed names
                        "AND (tenant, entity_id) <= (%s, %s)",
                        span,
                    )
                cursor = await conn.execute(
                    "DELETE FROM entity_type_ids WHERE (tenant, id) >= (%s, %s) "
                    "AND (tenant, id) <= (%s, %s) RETURNING tenant, id",
                    span,
                )
                counted = set(await cursor.fetchall())
                for tenant, entity_id, doc in batch:
                    entity = entity_from_storage(doc)
                    await self._index_entity(
                        conn,
                        EntityChangeRecord(tenant, entity_id, None, entity, ""),
                        count=(tenant, entity_id) not in counted,
                    )
                after = (batch[-1][0], batch[-1][1])


def _type_change(record: EntityChangeRecord) -> dict[str, Any] | None:
    """How a write changes the entity's types, as ``_RETYPE_MANY`` takes it (None: it does
    not)."""
    before = set(record.before.types) if record.before is not None else set()
    after = set(record.after.types) if record.after is not None else set()
    if before == after:
        return None
    return {"id": record.entity_id, "old": sorted(before), "new": sorted(after),
            "removed": sorted(before - after), "added": sorted(after - before)}  # fmt: skip


# The type rows and counts of many entities' type changes, as _index_types writes each. An
# entity indexed has the rows of all its types, so one of its old types tells.
_RETYPE_MANY = (
    "WITH d AS MATERIALIZED (SELECT * FROM json_to_recordset(%(rows)s::json) AS d(id text, "
    "old text[], new text[], removed text[], added text[])), "
    "counted AS (INSERT INTO entity_type_counts AS c (tenant, types, slot, n) "
    "SELECT %(tenant)s, x.types, pg_backend_pid(), sum(x.n) FROM ("
    "SELECT d.old AS types, -1 AS n FROM d WHERE cardinality(d.old) > 0 AND EXISTS "
    "(SELECT 1 FROM entity_type_ids t WHERE t.tenant = %(tenant)s AND t.type = ANY(d.old) "
    "AND t.id = d.id) UNION ALL SELECT d.new, 1 FROM d WHERE cardinality(d.new) > 0) AS x "
    "GROUP BY x.types ON CONFLICT (tenant, types, slot) DO UPDATE SET n = c.n + excluded.n), "
    "removed AS (DELETE FROM entity_type_ids t USING d, unnest(d.removed) AS r(type) "
    "WHERE t.tenant = %(tenant)s AND t.type = r.type AND t.id = d.id) "
    "INSERT INTO entity_type_ids (tenant, type, id) SELECT %(tenant)s, a.type, d.id "
    "FROM d, unnest(d.added) AS a(type) ON CONFLICT DO NOTHING"
)
_PLACE_FIELDS = ("entity_id", "name", "geometry", "bounds", "lon", "lat")
_INSERT_PLACES = (
    "INSERT INTO entity_geo (tenant, entity_id, name, geometry, bounds, lon, lat) "
    "SELECT %s, u.entity_id, u.name, u.geometry::json, u.bounds::box, u.lon, u.lat "
    "FROM json_to_recordset(%s::json) AS u(entity_id text, name text, geometry text, "
    "bounds text, lon float8, lat float8)"
)
_INSERT_PLACES_POSTGIS = (
    "INSERT INTO entity_geo (tenant, entity_id, name, geometry, bounds, lon, lat, shape) "
    "SELECT %s, u.entity_id, u.name, u.geometry::json, u.bounds::box, u.lon, u.lat, "
    "burgo_shape(u.geometry) FROM json_to_recordset(%s::json) AS u(entity_id text, "
    "name text, geometry text, bounds text, lon float8, lat float8)"
)


async def _index_types(conn: Connection, record: EntityChangeRecord, count: bool) -> None:
    """The entity's rows of entity_type_ids and, when ``count``, its type set moved from one
    count to the other (both in rows of this session's own slot), in one statement. An entity
    is counted from when its types are indexed: one still waiting for the fill of older
    entities (no entity_type_ids rows yet) is not taken off any count."""
    change = _type_change(record)
    if change is None:
        return
    counted = (
        "WITH counted AS (INSERT INTO entity_type_counts AS c (tenant, types, slot, n) "
        "SELECT %(tenant)s, d.types, pg_backend_pid(), d.n FROM (VALUES (%(old)s::text[], -1), "
        "(%(new)s::text[], 1)) AS d(types, n) WHERE cardinality(d.types) > 0 AND (d.n > 0 OR "
        "EXISTS (SELECT 1 FROM entity_type_ids WHERE tenant = %(tenant)s AND id = %(id)s)) "
        "ON CONFLICT (tenant, types, slot) DO UPDATE SET n = c.n + excluded.n), "
        if count
        else "WITH "
    )
    await conn.execute(
        f"{counted}removed AS (DELETE FROM entity_type_ids WHERE tenant = %(tenant)s "  # noqa: S608 - fixed fragments
        "AND id = %(id)s AND type = ANY(%(removed)s::text[])) "
        "INSERT INTO entity_type_ids (tenant, type, id) "
        "SELECT %(tenant)s, type, %(id)s FROM unnest(%(added)s::text[]) AS type "
        "ON CONFLICT DO NOTHING",
        {"tenant": record.tenant, **change},
    )


async def fold_type_counts(conn: Connection) -> None:
    """Fold the count rows of database sessions that have ended into slot 0 (rows a session
    is writing are skipped, never waited for; one fold at a time)."""
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_FOLD_LOCK,))
    await conn.execute(
        "WITH gone AS (DELETE FROM entity_type_counts WHERE (tenant, types, slot) IN "
        "(SELECT tenant, types, slot FROM entity_type_counts WHERE slot <> 0 "
        "AND slot NOT IN (SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL) "
        "FOR UPDATE SKIP LOCKED) RETURNING tenant, types, n) "
        "INSERT INTO entity_type_counts AS c (tenant, types, slot, n) "
        "SELECT tenant, types, 0, sum(n) FROM gone GROUP BY 1, 2 "
        "ON CONFLICT (tenant, types, slot) DO UPDATE SET n = c.n + excluded.n"
    )
    await conn.execute("DELETE FROM entity_type_counts WHERE slot = 0 AND n = 0")


# burgo_replace_values_set (migration 0011) calls burgo_replace_values (migration 0007), planned
# once per connection, for each entity a write block changed. Each entity's rows come as one
# JSON array of [attribute, kind, number, text]: binding one text costs Burgo less than four
# arrays.
_REPLACE_VALUES = "SELECT burgo_replace_values_set(%s, %s::json)"


def _number_json(value: float | None) -> float | str | None:
    """A number as JSON holds it for ``(r->>2)::float8``: infinities as text."""
    if value is None or math.isfinite(value):
        return value
    return "Infinity" if value > 0 else "-Infinity"


async def _replace_many_values(
    conn: Connection,
    tenant: str,
    every: list[str],
    some: list[tuple[str, str]],
    rows: list[AttrRow],
) -> None:
    """Delete the value rows of the entities ``every`` and of the (entity, attribute) pairs
    ``some``, and insert ``rows`` (of any entities): three statements at most, deferred."""
    if every:
        await defer(
            conn,
            "DELETE FROM entity_attr_values WHERE tenant = %s AND entity_id = ANY(%s::text[])",
            (tenant, text_array(every)),
        )
    if some:
        await defer(
            conn,
            "DELETE FROM entity_attr_values v USING unnest(%s::text[], %s::text[]) AS s(id, attr) "
            "WHERE v.tenant = %s AND v.entity_id = s.id AND v.attr = s.attr",
            (text_array(e for e, _ in some), text_array(a for _, a in some), tenant),
        )
    if rows:
        rows_json = orjson.dumps([(r[1], r[2], r[3], _number_json(r[4]), r[5]) for r in rows])
        await defer(
            conn,
            "INSERT INTO entity_attr_values (tenant, entity_id, attr, kind, num, txt) "
            "SELECT %s, r->>0, r->>1, r->>2, (r->>3)::float8, r->>4 "
            "FROM json_array_elements(%s::json) AS r",
            (tenant, rows_json.decode()),
        )


async def _replace_values(
    conn: Connection, tenant: str, entity_id: str, stale: list[str] | None, rows: list[AttrRow]
) -> None:
    """Delete an entity's value rows of the ``stale`` attributes (None: of all of them) and
    insert ``rows`` of that entity (in a write block, together with the other entities')."""
    if not rows and stale == []:
        return
    entity = {
        "entity_id": entity_id,
        "every": stale is None,
        "stale": stale or [],
        "rows": [(r[2], r[3], _number_json(r[4]), r[5]) for r in rows],
    }
    await defer_rows(conn, _REPLACE_VALUES, (tenant, ROWS), [entity])
