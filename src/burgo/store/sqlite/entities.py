"""Entities in SQLite: one row per entity (its document as JSON) and an index of its types."""

from __future__ import annotations

import sqlite3
from typing import TypeVar

import orjson

from burgo.ngsild.errors import AlreadyExists, ResourceNotFound
from burgo.ngsild.model import Entity, entity_from_storage, entity_to_storage
from burgo.store.base import EntityChange, EntityChangeRecord
from burgo.store.sqlite.core import SqliteCore

T = TypeVar("T")


class SqliteEntities(SqliteCore):
    """Create, read, change and delete entities."""

    async def create_entity(self, tenant: str, entity: Entity) -> None:
        """Insert a new entity."""
        doc = orjson.dumps(entity_to_storage(entity)).decode()
        types = orjson.dumps(list(entity.types)).decode()

        def job(conn: sqlite3.Connection) -> None:
            self._ensure_tenant(conn, tenant, entity.created_at or "")
            try:
                cursor = conn.execute(
                    "INSERT INTO entities (tenant, id, types, created_at, modified_at, doc) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        tenant,
                        entity.id,
                        types,
                        entity.created_at or "",
                        entity.modified_at or "",
                        doc,
                    ),
                )
            except sqlite3.IntegrityError as exc:
                if exc.sqlite_errorcode == sqlite3.SQLITE_CONSTRAINT_UNIQUE:
                    raise AlreadyExists(f"Entity {entity.id} already exists") from exc
                raise
            _insert_types(conn, cursor.lastrowid, tenant, entity.types)
            self._entity_changed(
                conn,
                EntityChangeRecord(tenant, entity.id, None, entity, entity.created_at or ""),
                cursor.lastrowid,
            )

        await self._write(job)
        self._tenants.add(tenant)

    async def get_entity(self, tenant: str, entity_id: str) -> Entity | None:
        """The entity, or None."""
        self._check_tenant(tenant)
        row = self._read(
            lambda conn: conn.execute(
                "SELECT doc FROM entities WHERE tenant = ? AND id = ?", (tenant, entity_id)
            ).fetchone()
        )
        return entity_from_storage(orjson.loads(row[0])) if row else None

    async def modify_entity(self, tenant: str, entity_id: str, change: EntityChange[T]) -> T:
        """Read, change and write back one entity inside the writer's transaction."""
        self._check_tenant(tenant)

        def job(conn: sqlite3.Connection) -> T:
            row = conn.execute(
                "SELECT pk, doc FROM entities WHERE tenant = ? AND id = ?", (tenant, entity_id)
            ).fetchone()
            if row is None:
                raise ResourceNotFound(f"Entity {entity_id} was not found")
            pk, raw = row
            current = entity_from_storage(orjson.loads(raw))
            new, result = change(current)
            if new is None:
                conn.execute("DELETE FROM entities WHERE pk = ?", (pk,))
                self._entity_changed(
                    conn, EntityChangeRecord(tenant, entity_id, current, None, self._now())
                )
                return result
            if new is current:
                return result
            conn.execute(
                "UPDATE entities SET types = ?, created_at = ?, modified_at = ?, doc = ? "
                "WHERE pk = ?",
                (
                    orjson.dumps(list(new.types)).decode(),
                    new.created_at or "",
                    new.modified_at or "",
                    orjson.dumps(entity_to_storage(new)).decode(),
                    pk,
                ),
            )
            if new.types != current.types:
                conn.execute("DELETE FROM entity_types WHERE entity_pk = ?", (pk,))
                _insert_types(conn, pk, tenant, new.types)
            self._entity_changed(
                conn,
                EntityChangeRecord(tenant, entity_id, current, new, new.modified_at or ""),
                pk,
            )
            return result

        return await self._write(job)

    async def delete_entity(self, tenant: str, entity_id: str) -> Entity:
        """Delete one entity and return what it was."""
        return await self.modify_entity(tenant, entity_id, lambda current: (None, current))

    async def count_entities(self, tenant: str) -> int:
        """Entities in the tenant."""
        self._check_tenant(tenant)
        count: int = self._read(
            lambda conn: conn.execute(
                "SELECT count(*) FROM entities WHERE tenant = ?", (tenant,)
            ).fetchone()[0]
        )
        return count


def _insert_types(
    conn: sqlite3.Connection, pk: int | None, tenant: str, types: tuple[str, ...]
) -> None:
    conn.executemany(
        "INSERT INTO entity_types (entity_pk, tenant, type) VALUES (?, ?, ?)",
        [(pk, tenant, t) for t in dict.fromkeys(types)],
    )
