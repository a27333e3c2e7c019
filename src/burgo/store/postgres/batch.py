"""Batch writes in PostgreSQL: a whole batch in one transaction, a savepoint per entity."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from burgo.ngsild.errors import AlreadyExists, NgsiLdError, ResourceNotFound
from burgo.ngsild.model import Entity, entity_from_storage
from burgo.store.base import EntityChangeRecord
from burgo.store.batch import EntityWrite, WriteOutcome
from burgo.store.postgres.core import Connection, PostgresCore, translate_error
from burgo.store.postgres.entities import delete_entity_row, insert_entity, update_entity


class PostgresBatch(PostgresCore):
    """Create, change and delete many entities in one transaction."""

    async def write_entities(
        self, tenant: str, writes: Sequence[EntityWrite]
    ) -> list[WriteOutcome]:
        """Apply each write in order, each in a savepoint of its own."""
        if not any(w.create is not None for w in writes):
            await self._check_tenant(tenant)
        if not writes:
            return []
        async with self._transaction() as conn:
            ids = list(dict.fromkeys(w.entity_id for w in writes))
            cursor = await conn.execute(
                "SELECT id, doc FROM entities WHERE tenant = %s AND id = ANY(%s) "
                "ORDER BY id FOR UPDATE",
                (tenant, ids),
            )
            stored: dict[str, Entity | None] = {
                row[0]: entity_from_storage(row[1]) for row in await cursor.fetchall()
            }
            outcomes = [await self._apply(conn, tenant, write, stored) for write in writes]
        if any(o.created for o in outcomes):
            self._tenants.add(tenant)
        return outcomes

    async def _apply(
        self, conn: Connection, tenant: str, write: EntityWrite, stored: dict[str, Entity | None]
    ) -> WriteOutcome:
        entity_id = write.entity_id
        current = stored.get(entity_id)
        try:
            if current is None:
                if write.create is None:
                    raise ResourceNotFound(f"Entity {entity_id} was not found")
                new: Entity | None = write.create
                result = None
            else:
                if write.change is None:
                    raise AlreadyExists(f"Entity {entity_id} already exists")
                new, result = write.change(current)
                if new is current:
                    return WriteOutcome(entity_id, result=result)
            async with conn.transaction():
                if current is None:
                    assert new is not None
                    await self._ensure_tenant(conn, tenant, new.created_at or "")
                    await insert_entity(conn, tenant, new)
                    record = EntityChangeRecord(tenant, entity_id, None, new, new.created_at or "")
                elif new is None:
                    await delete_entity_row(conn, tenant, entity_id)
                    record = EntityChangeRecord(tenant, entity_id, current, None, self._now())
                else:
                    await update_entity(conn, tenant, new)
                    record = EntityChangeRecord(
                        tenant, entity_id, current, new, new.modified_at or ""
                    )
                await self._entity_changed(conn, record)
        except NgsiLdError as exc:
            return WriteOutcome(entity_id, error=exc)
        except psycopg.Error as exc:
            return WriteOutcome(entity_id, error=translate_error(exc))
        stored[entity_id] = new
        return WriteOutcome(entity_id, created=current is None, result=result)
