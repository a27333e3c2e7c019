"""Entities in PostgreSQL: one row per entity, its document as json and its types as an array."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, LiteralString, TypeVar, cast

import orjson
from psycopg import errors

from burgo.ngsild.errors import AlreadyExists, ServiceUnavailable
from burgo.ngsild.model import Entity, entity_from_storage, entity_to_storage
from burgo.store.base import EntityChange, EntityChangeRecord, run_changes
from burgo.store.postgres.core import (
    RETRY_LATER,
    ROWS,
    Connection,
    PostgresCore,
    defer_rows,
    read,
    text_array,
)
from burgo.store.postgres.groups import ALONE, GroupCommit

T = TypeVar("T")
# One caller's changes: its tenant, and each entity id with the change to apply.
ChangeJob = tuple[str, Sequence[tuple[str, EntityChange[Any]]]]


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
    """Write back a changed entity (in a write block, once per entity: the block's entities are
    written by one statement)."""
    row = {
        "id": entity.id,
        "types": list(dict.fromkeys(entity.types)),
        "created_at": entity.created_at or "",
        "modified_at": entity.modified_at or "",
        "doc": entity_doc(entity),
    }
    await defer_rows(
        conn,
        "SELECT burgo_update_entities(%s, %s::json)",  # migration 0011
        (tenant, ROWS),
        [row],
    )


async def delete_entity_row(conn: Connection, tenant: str, entity_id: str) -> None:
    """Remove an entity row."""
    await conn.execute("DELETE FROM entities WHERE tenant = %s AND id = %s", (tenant, entity_id))


def lock_entities(keys: Iterable[tuple[str, str]]) -> tuple[LiteralString, tuple[str, str]]:
    """The statement (and its values) that locks and reads the entities of ``(tenant, id)``
    keys, in key order (so that two writers lock what they share in the same order)."""
    ordered = sorted(keys)
    return (
        "SELECT e.tenant, e.id, e.doc FROM entities e "
        "JOIN unnest(%s::text[], %s::text[]) AS k(tenant, id) "
        "ON e.tenant = k.tenant AND e.id = k.id ORDER BY e.tenant, e.id FOR UPDATE OF e",
        (
            text_array(tenant for tenant, _ in ordered),
            text_array(entity_id for _, entity_id in ordered),
        ),
    )


class Staging:
    """Changes applied in memory to entities read and locked together, job by job: each job all
    or nothing, each seeing the jobs before it; then written back once each."""

    def __init__(self, rows: Iterable[tuple[str, str, Any]]) -> None:
        self.stored: dict[tuple[str, str], Entity] = {
            (tenant, entity_id): entity_from_storage(doc) for tenant, entity_id, doc in rows
        }
        self.current: dict[tuple[str, str], Entity | None] = dict(self.stored)
        self.records: list[EntityChangeRecord] = []

    def stage(
        self,
        tenant: str,
        changes: Sequence[tuple[str, EntityChange[Any]]],
        now: Callable[[], str],
    ) -> list[Any] | Exception:
        """Apply one job's changes in order: their results, or the exception one of them raised
        (the job then changes nothing)."""
        current = self.current
        try:
            staged = run_changes(tenant, changes, lambda i: current.get((tenant, i)), now)
        except Exception as exc:  # noqa: BLE001 - this job's own error, the others go on
            return exc
        current.update(((tenant, i), entity) for i, entity in staged.entities.items())
        self.records += staged.records
        return staged.results


class PostgresEntities(PostgresCore):
    """Create, read, change and delete entities."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._groups: GroupCommit[ChangeJob] = GroupCommit(self._write_group)

    async def close(self) -> None:
        """Finish the group of writes under way, then close the store."""
        await self._groups.close()
        await super().close()

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
        """Apply the changes in order, all or nothing, in one transaction (shared with the
        writes that arrive meanwhile: group commit)."""
        await self._check_tenant(tenant)
        if not changes:
            return []
        outcome = await self._groups.submit((tenant, changes))
        if outcome is ALONE:
            async with self._write_block() as conn:
                return await self.apply_changes(conn, tenant, changes)
        return cast("list[Any]", outcome)

    async def _write_group(self, jobs: Sequence[ChangeJob]) -> list[Any]:
        """One transaction for several callers' changes: each caller's results, or the error
        its own changes raised (those changes then leave nothing behind)."""
        try:
            async with self._write_block() as conn:
                return await self._apply_jobs(conn, jobs)
        except ServiceUnavailable as exc:
            if isinstance(exc.__cause__, RETRY_LATER):
                raise  # a conflict with another transaction: each write is run again alone
            # The database is away: no use running each alone, each gets the answer.
            return [ServiceUnavailable(exc.detail) for _ in jobs]

    async def apply_changes(
        self, conn: Connection, tenant: str, changes: Sequence[tuple[str, EntityChange[Any]]]
    ) -> list[Any]:
        """Run ``changes`` in the caller's transaction: each entity locked and read once, written
        back once, with one change record per change; raising undoes it all with the
        transaction."""
        (outcome,) = await self._apply_jobs(conn, [(tenant, changes)])
        if isinstance(outcome, BaseException):
            raise outcome
        return cast("list[Any]", outcome)

    async def _apply_jobs(self, conn: Connection, jobs: Sequence[ChangeJob]) -> list[Any]:
        """Run each job's changes in order in the caller's transaction, every entity locked and
        read once and written back once: for each job, its results, or the exception its
        changes raised (a job that raises changes nothing)."""
        keys = {(tenant, entity_id) for tenant, changes in jobs for entity_id, _ in changes}
        cursor = await read(conn, *lock_entities(keys))
        staging = Staging(await cursor.fetchall())
        outcomes = [staging.stage(tenant, changes, self._now) for tenant, changes in jobs]
        await self._write_staged(conn, staging)
        return outcomes

    async def _write_staged(self, conn: Connection, staging: Staging) -> None:
        """Write back each entity the staged changes left different, and tell the change hooks
        about every change."""
        for (tenant, entity_id), final in staging.current.items():
            if final is None:
                await delete_entity_row(conn, tenant, entity_id)
            elif final is not staging.stored[(tenant, entity_id)]:
                await update_entity(conn, tenant, final)
        await self._entities_changed(conn, staging.records)

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
