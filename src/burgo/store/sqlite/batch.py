"""Batch writes in SQLite: a whole batch in one writer job, a savepoint per entity."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import orjson

from burgo.ngsild.errors import AlreadyExists, NgsiLdError, NonexistentTenant, ResourceNotFound
from burgo.ngsild.model import Entity, entity_from_storage, entity_to_storage
from burgo.store.base import EntityChangeRecord
from burgo.store.batch import EntityWrite, WriteOutcome
from burgo.store.sqlite.core import SqliteCore

# Ids looked up per statement: well under SQLite's variable limit on every build.
_CHUNK = 500


@dataclass(slots=True)
class _Row:
    """A stored entity as the batch sees it: its key, and its document decoded on demand."""

    pk: int
    raw: str | None
    entity: Entity | None = None

    def current(self) -> Entity:
        if self.entity is None:
            assert self.raw is not None
            self.entity = entity_from_storage(orjson.loads(self.raw))
        return self.entity


class SqliteBatch(SqliteCore):
    """Create, change and delete many entities in one transaction."""

    async def write_entities(
        self, tenant: str, writes: Sequence[EntityWrite]
    ) -> list[WriteOutcome]:
        """Apply each write in order, each in a savepoint of its own."""
        if tenant not in self._tenants and not any(w.create is not None for w in writes):
            raise NonexistentTenant(f"Tenant {tenant!r} does not exist")
        if not writes:
            return []
        created_any = False

        def job(conn: sqlite3.Connection) -> list[WriteOutcome]:
            nonlocal created_any
            need_docs = any(w.change is not None for w in writes)
            rows = _existing(conn, tenant, [w.entity_id for w in writes], need_docs)
            outcomes = []
            for write in writes:
                outcome = self._apply(conn, tenant, write, rows)
                created_any = created_any or outcome.created
                outcomes.append(outcome)
            return outcomes

        outcomes = await self._write(job)
        if created_any:
            self._tenants.add(tenant)
        return outcomes

    def _apply(
        self,
        conn: sqlite3.Connection,
        tenant: str,
        write: EntityWrite,
        rows: dict[str, _Row | None],
    ) -> WriteOutcome:
        entity_id = write.entity_id
        row = rows.get(entity_id)
        try:
            if row is None:
                if write.create is None:
                    raise ResourceNotFound(f"Entity {entity_id} was not found")
                new: Entity | None = write.create
                current = None
                result = None
            else:
                if write.change is None:
                    raise AlreadyExists(f"Entity {entity_id} already exists")
                current = row.current()
                new, result = write.change(current)
                if new is current:
                    return WriteOutcome(entity_id, result=result)
        except NgsiLdError as exc:
            return WriteOutcome(entity_id, error=exc)
        conn.execute("SAVEPOINT entity")
        try:
            if current is None:
                assert new is not None
                self._ensure_tenant(conn, tenant, new.created_at or "")
                rows[entity_id] = _Row(_insert(conn, tenant, new), None, new)
                record = EntityChangeRecord(tenant, entity_id, None, new, new.created_at or "")
            elif new is None:
                assert row is not None
                conn.execute("DELETE FROM entities WHERE pk = ?", (row.pk,))
                rows[entity_id] = None
                record = EntityChangeRecord(tenant, entity_id, current, None, self._now())
            else:
                assert row is not None
                _update(conn, tenant, row.pk, current, new)
                rows[entity_id] = _Row(row.pk, None, new)
                record = EntityChangeRecord(tenant, entity_id, current, new, new.modified_at or "")
            self._entity_changed(conn, record)
        except NgsiLdError as exc:
            conn.execute("ROLLBACK TO entity")
            conn.execute("RELEASE entity")
            rows[entity_id] = row
            return WriteOutcome(entity_id, error=exc)
        conn.execute("RELEASE entity")
        return WriteOutcome(entity_id, created=current is None, result=result)


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _existing(
    conn: sqlite3.Connection, tenant: str, ids: list[str], with_docs: bool
) -> dict[str, _Row | None]:
    """The stored rows of ``ids`` (absent ids are missing from the map)."""
    rows: dict[str, _Row | None] = {}
    columns = "pk, id, doc" if with_docs else "pk, id, NULL"
    for chunk in _chunks(list(dict.fromkeys(ids))):
        marks = ",".join("?" * len(chunk))
        for pk, entity_id, raw in conn.execute(
            f"SELECT {columns} FROM entities WHERE tenant = ? AND id IN ({marks})",  # noqa: S608 - placeholders only
            (tenant, *chunk),
        ):
            rows[entity_id] = _Row(pk, raw)
    return rows


def _insert(conn: sqlite3.Connection, tenant: str, entity: Entity) -> int:
    cursor = conn.execute(
        "INSERT INTO entities (tenant, id, types, created_at, modified_at, doc) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (
            tenant,
            entity.id,
            orjson.dumps(list(entity.types)).decode(),
            entity.created_at or "",
            entity.modified_at or "",
            orjson.dumps(entity_to_storage(entity)).decode(),
        ),
    )
    pk = cursor.lastrowid
    assert pk is not None
    _insert_types(conn, pk, tenant, entity.types)
    return pk


def _update(conn: sqlite3.Connection, tenant: str, pk: int, current: Entity, new: Entity) -> None:
    conn.execute(
        "UPDATE entities SET types = ?, modified_at = ?, doc = ? WHERE pk = ?",
        (
            orjson.dumps(list(new.types)).decode(),
            new.modified_at or "",
            orjson.dumps(entity_to_storage(new)).decode(),
            pk,
        ),
    )
    if new.types != current.types:
        conn.execute("DELETE FROM entity_types WHERE entity_pk = ?", (pk,))
        _insert_types(conn, pk, tenant, new.types)


def _insert_types(conn: sqlite3.Connection, pk: int, tenant: str, types: tuple[str, ...]) -> None:
    conn.executemany(
        "INSERT INTO entity_types (entity_pk, tenant, type) VALUES (?, ?, ?)",
        [(pk, tenant, t) for t in dict.fromkeys(types)],
    )
