"""The type and geo indexes of entity queries (migration 0006), kept current by a batch hook.

``entity_type_ids`` lists each entity under each of its types in id order; ``entity_geo`` holds
one row per GeoProperty instance with its bounding box in the ``entity_geo_box`` R*Tree.
:mod:`burgo.store.sqlite.queries` reads both.
"""

# ruff: noqa: S608 - SQL is assembled from "?" placeholders only

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from burgo.ngsild.geoquery import geometry_box
from burgo.ngsild.model import AttrKind, Entity
from burgo.store.sqlite.core import SqliteCore, StoredChange

# Entity ids per statement: well under SQLite's variable limit on every build.
_CHUNK = 500


class SqliteGeoIndex(SqliteCore):
    """Keeps the type and geo indexes of entity queries in step with the entities."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._state_hooks.append(index_entities)
        self._plain_forms[index_entities] = index_created_entities


def geo_instances(entity: Entity | None) -> list[tuple[str, Any]]:
    """The (attribute name, geometry) of every GeoProperty instance of an entity."""
    if entity is None:
        return []
    return [
        (name, instance.value)
        for name, instances in entity.attrs.items()
        for instance in instances
        if instance.kind == AttrKind.GEO_PROPERTY
    ]


def index_entities(conn: sqlite3.Connection, changes: Sequence[StoredChange]) -> None:
    """Batch hook: bring the entities' rows of the (type, id) and geo indexes up to date."""
    _index_types(conn, changes)
    _index_geometry(conn, changes)


def _index_types(conn: sqlite3.Connection, changes: Sequence[StoredChange]) -> None:
    gone: list[tuple[str, str, str]] = []
    added: list[tuple[str, str, str, int]] = []
    for change in changes:
        record = change.record
        before = record.before.types if record.before is not None else ()
        after = record.after.types if record.after is not None else ()
        if before == after:
            continue
        gone += [(record.tenant, t, record.entity_id) for t in before]
        if after and change.pk is not None:
            added += [(record.tenant, t, record.entity_id, change.pk) for t in dict.fromkeys(after)]
    if gone:
        conn.executemany(
            "DELETE FROM entity_type_ids WHERE tenant = ? AND type = ? AND id = ?", gone
        )
    if added:
        conn.executemany(
            "INSERT OR REPLACE INTO entity_type_ids (tenant, type, id, entity_pk) "
            "VALUES (?, ?, ?, ?)",
            added,
        )


def _index_geometry(conn: sqlite3.Connection, changes: Sequence[StoredChange]) -> None:
    cleared: dict[str, list[str]] = {}
    new: list[tuple[str, str, int, str, Any]] = []
    for change in changes:
        record = change.record
        after = geo_instances(record.after)
        if record.before is not None and geo_instances(record.before) == after:
            continue
        if record.before is not None or after:
            cleared.setdefault(record.tenant, []).append(record.entity_id)
        if after and change.pk is not None:
            new += [(record.tenant, record.entity_id, change.pk, n, g) for n, g in after]
    for tenant, entity_ids in cleared.items():
        for start in range(0, len(entity_ids), _CHUNK):
            chunk = entity_ids[start : start + _CHUNK]
            old = conn.execute(
                f"SELECT id FROM entity_geo WHERE tenant = ? AND entity_id IN "
                f"({','.join('?' * len(chunk))})",
                (tenant, *chunk),
            ).fetchall()
            if old:
                conn.executemany("DELETE FROM entity_geo_box WHERE id = ?", old)
                conn.executemany("DELETE FROM entity_geo WHERE id = ?", old)
    rows: list[tuple[str, str, int, str, str]] = []
    boxes: list[tuple[float, float, float, float]] = []
    for tenant, entity_id, pk, name, geometry in new:
        box = geometry_box(geometry)
        if box is not None:
            rows.append((tenant, entity_id, pk, name, orjson.dumps(geometry).decode()))
            boxes.append(box)
    if not rows:
        return
    (high,) = conn.execute("SELECT coalesce(max(id), 0) FROM entity_geo").fetchone()
    ids = range(high + 1, high + 1 + len(rows))
    conn.executemany(
        "INSERT INTO entity_geo (id, tenant, entity_id, entity_pk, name, geometry) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [(i, *row) for i, row in zip(ids, rows, strict=True)],
    )
    conn.executemany(
        "INSERT INTO entity_geo_box (id, min_x, max_x, min_y, max_y) VALUES (?, ?, ?, ?, ?)",
        [(i, *box) for i, box in zip(ids, boxes, strict=True)],
    )


# The set-based form for plain entities just created (store/sqlite/plain.py), whose GeoProperties
# are Points: the rows _index_types and _index_geometry write, in the same order.
_CREATED_TYPES = """
INSERT OR REPLACE INTO entity_type_ids (tenant, type, id, entity_pk)
SELECT e.tenant, t.value, e.id, e.pk
FROM json_each(?1) AS b JOIN entities AS e ON e.pk = b.value, json_each(e.types) AS t
ORDER BY b.key, t.key
"""
_CREATED_STALE = """
SELECT g.id FROM json_each(?1) AS b JOIN entities AS e ON e.pk = b.value
JOIN entity_geo AS g ON g.tenant = e.tenant AND g.entity_id = e.id
"""
_CREATED_GEO = """
INSERT INTO entity_geo (tenant, entity_id, entity_pk, name, geometry)
SELECT tenant, entity_id, pk, attr, value FROM temp.plain_instances
WHERE kind = 'GeoProperty'
ORDER BY n, aid, iid
"""
_CREATED_BOXES = """
INSERT INTO entity_geo_box (id, min_x, max_x, min_y, max_y)
SELECT id, geometry ->> '$.coordinates[0]', geometry ->> '$.coordinates[0]',
    geometry ->> '$.coordinates[1]', geometry ->> '$.coordinates[1]'
FROM entity_geo WHERE id > ?
"""


def index_created_entities(
    conn: sqlite3.Connection, keys: str, changes: Sequence[StoredChange]
) -> None:
    """The set-based form of :func:`index_entities` for plain entities just created."""
    conn.execute(_CREATED_TYPES, (keys,))
    old = conn.execute(_CREATED_STALE, (keys,)).fetchall()
    if old:
        conn.executemany("DELETE FROM entity_geo_box WHERE id = ?", old)
        conn.executemany("DELETE FROM entity_geo WHERE id = ?", old)
    (high,) = conn.execute("SELECT coalesce(max(id), 0) FROM entity_geo").fetchone()
    if conn.execute(_CREATED_GEO).rowcount:
        conn.execute(_CREATED_BOXES, (high,))
