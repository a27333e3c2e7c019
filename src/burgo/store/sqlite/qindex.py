"""The attribute-value index of the q language (migration 0002), kept current by a change hook.

For each top-level attribute of an entity, ``attr_values`` holds an existence row (kind ``e``) and
one row per scalar value a q term compares, as the reference evaluator lists them
(:func:`burgo.ngsild.qmatch.attribute_candidates`): kind ``v`` for Property-like values, ``c``
for VocabProperty terms, ``r`` for Relationship objects; numbers in ``num``, strings in ``txt``.
:mod:`burgo.store.sqlite.qsql` answers the common terms from it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from burgo.ngsild.model import Attribute, AttrKind, Entity
from burgo.ngsild.qmatch import attribute_candidates
from burgo.store.base import EntityChangeRecord
from burgo.store.sqlite.core import SqliteCore

Row = tuple[int, str, str, Any, Any]

_KIND_TAGS = {
    AttrKind.VOCAB_PROPERTY: "c",
    AttrKind.RELATIONSHIP: "r",
    AttrKind.LIST_RELATIONSHIP: "r",
}


class SqliteQIndex(SqliteCore):
    """Keeps the attribute-value index of the q language in step with the entities."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._change_hooks.append(index_attr_values)


def attribute_rows(pk: int, name: str, instances: Iterable[Attribute]) -> set[Row]:
    """The index rows of one attribute of the entity with key ``pk``."""
    rows: set[Row] = set()
    for instance in instances:
        rows.add((pk, name, "e", None, None))
        tag = _KIND_TAGS.get(instance.kind, "v")
        for value in attribute_candidates(instance):
            if isinstance(value, str):
                rows.add((pk, name, tag, None, value))
            elif isinstance(value, int | float) and not isinstance(value, bool):
                rows.add((pk, name, tag, value, None))
    return rows


def entity_rows(pk: int, entity: Entity) -> set[Row]:
    """Every index row of an entity."""
    rows: set[Row] = set()
    for name, instances in entity.attrs.items():
        rows |= attribute_rows(pk, name, instances)
    return rows


def index_attr_values(conn: sqlite3.Connection, record: EntityChangeRecord) -> None:
    """Change hook: rewrite the index rows of the attributes that changed."""
    after = record.after
    if after is None:
        return  # the rows go with the entity row (ON DELETE CASCADE)
    before = record.before
    row = conn.execute(
        "SELECT pk FROM entities WHERE tenant = ? AND id = ?", (record.tenant, record.entity_id)
    ).fetchone()
    if row is None:
        return
    pk = int(row[0])
    if before is None:
        changed = list(after.attrs)
        # Defensive: a key reused after a delete made with foreign keys off must start clean.
        conn.execute("DELETE FROM attr_values WHERE entity_pk = ?", (pk,))
    else:
        names = dict.fromkeys([*before.attrs, *after.attrs])
        changed = [n for n in names if before.attrs.get(n) != after.attrs.get(n)]
        if not changed:
            return
        conn.executemany(
            "DELETE FROM attr_values WHERE entity_pk = ? AND attr = ?",
            [(pk, name) for name in changed],
        )
    rows: set[Row] = set()
    for name in changed:
        rows |= attribute_rows(pk, name, after.attrs.get(name, ()))
    if rows:
        conn.executemany(
            "INSERT INTO attr_values (entity_pk, attr, kind, num, txt) VALUES (?, ?, ?, ?, ?)",
            rows,
        )
