"""Entities in PostgreSQL: one row per entity, its document as json and its types as an array."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar, cast

import orjson
from psycopg import errors

from burgo.ngsild.errors import AlreadyExists, ResourceNotFound
from burgo.ngsild.model import Entity, entity_from_storage, entity_to_storage
from burgo.store.base import EntityChange, EntityChangeRecord
from burgo.store.postgres.core import Connection, PostgresCore, defer, read

T = TypeVar("T")


def entity_doc(entity: Entity) -> str:
    """The stored document of an entity, as JSON text."""
    return orjson.dumps(entity_to_storage(entity)).decode()


async def insert_entity(conn: Connection, tenant: str, entity: Entity) -> None:
    """Insert a new entity row; AlreadyExists if the id is taken (the transaction is then spoilt:
    run it in a savepoint when the transaction must go on)."""
    try:
        await conn.execute(
            "INSERT INTO entities (tenant, id, types, created_at, modified_at, doc) "
            "VALUES (%s, %s, %s, %s, %s, %s::json)",
            (
                tenant,
                entity.id,
                list(dict.fromkeys(entity.types)),
                entity.created_at or "",
                entity.modified_at or "",
                entity_doc(entity),
            ),
        )
    except errors.UniqueViolation as exc:
        raise AlreadyExists(f"Entity {entity.id} already exists") from exc


async def update_entity(conn: Connection, tenant: str, entity: Entity) -> None:
    """Write back a changed entity."""
    await defer(
        conn,
        "UPDATE entities SET types = %s, created_at = %s, modified_at = %s, doc = %s::json "
        "WHERE tenant = %s AND id = %s",
        (
            list(dict.fromkeys(entity.types)),
            entity.created_at or "",
            entity.modified_at or "",
            entity_doc(entity),
            tenant,
            entity.id,
        ),
    )


async def delete_entity_row(conn: Connection, tenant: str, entity_id: str) -> None:
    """Remove an entity row."""
    await conn.execute("DELETE FROM entities WHERE tenant = %s AND id = %s", (tenant, entity_id))


class PostgresEntities(PostgresCore):
    """Create, read, change and delete entities."""

    async def create_entity(self, tenant: str, entity: Entity) -> None:
        """Insert a new entity."""
        async with self._transaction() as conn:
            await self._ensure_tenant(conn, tenant, entity.created_at or "")
            await insert_entity(conn, tenant, entity)
            await self._entity_changed(
                conn, EntityChangeRecord(tenant, entity.id, None, entity, entity.created_at or "")
            )
        self._tenants.add(tenant)

    async def get_entity(self, tenant: str, entity_id: str) -> Entity | None:
        """The entity, or None."""
        await self._check_tenant(tenant)
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "SELECT doc FROM entities WHERE tenant = %s AND id = %s", (tenant, entity_id)
            )
            row = await cursor.fetchone()
        return entity_from_storage(row[0]) if row else None

    async def modify_entity(self, tenant: str, entity_id: str, change: EntityChange[T]) -> T:
        """Lock, change and write back one entity in one transaction."""
        (result,) = await self.modify_entities(tenant, [(entity_id, change)])
        return cast("T", result)

    async def modify_entities(
        self, tenant: str, changes: Sequence[tuple[str, EntityChange[Any]]]
    ) -> list[Any]:
        """Apply the changes in order, all or nothing, in one transaction."""
        await self._check_tenant(tenant)
        if not changes:
            return []
        async with self._write_block() as conn:
            return await self.apply_changes(conn, tenant, changes)

    async def apply_changes(
        self, conn: Connection, tenant: str, changes: Sequence[tuple[str, EntityChange[Any]]]
    ) -> list[Any]:
        """Run ``changes`` in the caller's transaction: each entity locked and read once, written
        back once, with one change record per change; raising undoes it all with the
        transaction."""
        wanted = sorted(dict.fromkeys(entity_id for entity_id, _ in changes))
        cursor = await read(
            conn,
            "SELECT id, doc FROM entities WHERE tenant = %s AND id = ANY(%s) "
            "ORDER BY id FOR UPDATE",
            (tenant, wanted),
        )
        stored = {entity_id: entity_from_storage(doc) for entity_id, doc in await cursor.fetchall()}
        current: dict[str, Entity | None] = dict(stored)
        records: list[EntityChangeRecord] = []
        results: list[Any] = []
        for entity_id, change in changes:
            before = current.get(entity_id)
            if before is None:
                raise ResourceNotFound(f"Entity {entity_id} was not found")
            new, result = change(before)
            results.append(result)
            if new is before:
                continue
            current[entity_id] = new
            at = self._now() if new is None else new.modified_at or ""
            records.append(EntityChangeRecord(tenant, entity_id, before, new, at))
        for entity_id, final in current.items():
            if final is None:
                await delete_entity_row(conn, tenant, entity_id)
            elif final is not stored[entity_id]:
                await update_entity(conn, tenant, final)
        for record in records:
            await self._entity_changed(conn, record)
        return results

    async def delete_entity(self, tenant: str, entity_id: str) -> Entity:
        """Delete one entity and return what it was."""
        return await self.modify_entity(tenant, entity_id, lambda current: (None, current))

    async def count_entities(self, tenant: str) -> int:
        """Entities in the tenant."""
        await self._check_tenant(tenant)
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "SELECT count(*) FROM entities WHERE tenant = %s", (tenant,)
            )
            row = await cursor.fetchone()
        return int(row[0]) if row else 0
