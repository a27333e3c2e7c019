"""The attribute-value index of the q language (migration 0002), kept current by a change hook.

For each top-level attribute of an entity, ``attr_values`` holds an existence row (kind ``e``) and
one row per scalar value a q term compares, as the reference evaluator lists them
(:func:`burgo.ngsild.qmatch.attribute_candidates`): kind ``v`` for Property-like values, ``c``
for VocabProperty terms, ``r`` for Relationship objects; numbers in ``num``, strings in ``txt``.
:mod:`burgo.store.sqlite.qsql` answers the common terms from it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from burgo.ngsild.model import Attribute, AttrKind, Entity
from burgo.ngsild.qmatch import attribute_candidates
from burgo.store.sqlite.core import SqliteCore, StoredChange

Row = tuple[int, str, str, Any, Any]

# Entity keys per statement: well under SQLite's variable limit on every build.
_CHUNK = 500

_KIND_TAGS = {
    AttrKind.VOCAB_PROPERTY: "c",
    AttrKind.RELATIONSHIP: "r",
    AttrKind.LIST_RELATIONSHIP: "r",
}


class SqliteQIndex(SqliteCore):
    """Keeps the attribute-value index of the q language in step with the entities."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._state_hooks.append(index_attr_values)
        self._plain_forms[index_attr_values] = index_created_values


def attribute_rows(pk: int, name: str, instances: Iterable[Attribute]) -> set[Row]:
    """The index rows of one attribute of the entity with key ``pk``."""
    rows: set[Row] = set()
    _add_rows(rows, pk, name, instances)
    return rows


def entity_rows(pk: int, entity: Entity) -> set[Row]:
    """Every index row of an entity."""
    rows: set[Row] = set()
    for name, instances in entity.attrs.items():
        _add_rows(rows, pk, name, instances)
    return rows


def _add_rows(rows: set[Row], pk: int, name: str, instances: Iterable[Attribute]) -> None:
    for instance in instances:
        rows.add((pk, name, "e", None, None))
        tag = _KIND_TAGS.get(instance.kind, "v")
        value = instance.value
        kind = type(value)
        # A lone string or number (most values) is its own candidate; the rest as q compares them.
        for candidate in (value,) if kind in _SCALAR_TYPES else attribute_candidates(instance):
            kind = type(candidate)
            if kind is str or isinstance(candidate, str):
                rows.add((pk, name, tag, None, candidate))
            elif (
                kind is int
                or kind is float
                or (isinstance(candidate, int | float) and not isinstance(candidate, bool))
            ):
                rows.add((pk, name, tag, candidate, None))


_SCALAR_TYPES = frozenset({str, int, float})


def index_attr_values(conn: sqlite3.Connection, changes: Sequence[StoredChange]) -> None:
    """Batch hook: rewrite the index rows of the attributes whose indexed values changed."""
    created: list[int] = []
    stale: list[tuple[int, str]] = []
    rows: list[Row] = []
    for change in changes:
        after, pk = change.record.after, change.pk
        if after is None or pk is None:
            continue  # the rows go with the entity row (ON DELETE CASCADE)
        before = change.record.before
        if before is None:
            created.append(pk)
            rows.extend(entity_rows(pk, after))
            continue
        for name in dict.fromkeys([*before.attrs, *after.attrs]):
            old, new = before.attrs.get(name, ()), after.attrs.get(name, ())
            if old == new:
                continue
            new_rows = attribute_rows(pk, name, new)
            if new_rows != attribute_rows(pk, name, old):
                stale.append((pk, name))
                rows.extend(new_rows)
    for start in range(0, len(created), _CHUNK):
        # Defensive: a key reused after a delete made with foreign keys off must start clean.
        chunk = created[start : start + _CHUNK]
        conn.execute(
            f"DELETE FROM attr_values WHERE entity_pk IN ({','.join('?' * len(chunk))})",  # noqa: S608 - placeholders only
            chunk,
        )
    if stale:
        conn.executemany("DELETE FROM attr_values WHERE entity_pk = ? AND attr = ?", stale)
    if rows:
        conn.executemany(
            "INSERT INTO attr_values (entity_pk, attr, kind, num, txt) VALUES (?, ?, ?, ?, ?)",
            rows,
        )


# The rows entity_rows() gives, for plain entities (store/sqlite/plain.py): an existence row per
# attribute, and per instance each string or number of its value (or of its list's members).
_CREATED_VALUES = """
INSERT INTO attr_values (entity_pk, attr, kind, num, txt)
SELECT pk, attr, 'e', NULL, NULL FROM temp.plain_instances WHERE ik = 0
UNION ALL
SELECT pk, attr, CASE WHEN kind = 'Relationship' THEN 'r' ELSE 'v' END,
    CASE WHEN vtype IN ('integer', 'real') THEN atom END, CASE WHEN vtype = 'text' THEN atom END
FROM temp.plain_instances WHERE NOT multi AND vtype IN ('integer', 'real', 'text')
UNION ALL
-- Only values that may repeat (list members, instances of one attribute) are made distinct.
SELECT DISTINCT pk, attr, kind, num, txt FROM (
    SELECT pk, attr, CASE WHEN kind = 'Relationship' THEN 'r' ELSE 'v' END AS kind,
        CASE WHEN vtype IN ('integer', 'real') THEN atom END AS num,
        CASE WHEN vtype = 'text' THEN atom END AS txt
    FROM temp.plain_instances WHERE multi AND vtype IN ('integer', 'real', 'text')
    UNION ALL
    SELECT p.pk, p.attr, CASE WHEN p.kind = 'Relationship' THEN 'r' ELSE 'v' END,
        CASE WHEN c.type IN ('integer', 'real') THEN c.value END,
        CASE WHEN c.type = 'text' THEN c.value END
    FROM temp.plain_instances AS p, json_each(p.value) AS c
    WHERE p.vtype = 'array' AND c.type IN ('integer', 'real', 'text')
)
"""


def index_created_values(
    conn: sqlite3.Connection, keys: str, changes: Sequence[StoredChange]
) -> None:
    """The set-based form of :func:`index_attr_values` for plain entities just created."""
    # Defensive, as there: a key reused after a delete made with foreign keys off starts clean.
    conn.execute("DELETE FROM attr_values WHERE entity_pk IN (SELECT value FROM json_each(?))",
                 (keys,))  # fmt: skip
    conn.execute(_CREATED_VALUES)
