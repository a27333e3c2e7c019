"""Batch writes in PostgreSQL: a whole batch in one transaction of two round trips.

The entities of the batch are read and locked in one statement (which carries BEGIN), and each
write is applied to them in order in Burgo: a write that fails for a reason known before the
database (the change refuses it, the entity exists already or was not found) is reported
without touching the others. The entity rows of the writes that remain, and the rows of every
change hook, are written by a few set-based statements for the whole batch, sent with COMMIT in
one message.

Should the database refuse that transaction (a value it cannot hold, an id another transaction
created meanwhile, ...), it is rolled back and the batch written again one entity at a time,
each in a savepoint of its own, so that only the entity at fault fails.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import orjson
import psycopg

from burgo.ngsild.errors import (
    BadRequestData,
    NgsiLdError,
    ServiceUnavailable,
)
from burgo.ngsild.model import Entity, entity_from_storage
from burgo.store.base import EntityChangeRecord
from burgo.store.batch import EntityWrite, WriteOutcome, written
from burgo.store.postgres.core import (
    RETRY_LATER,
    ChangeHook,
    Connection,
    PostgresCore,
    defer,
    net_changes,
    read,
    text_array,
    translate_error,
)
from burgo.store.postgres.entities import (
    delete_entity_row,
    entity_doc,
    insert_entity,
    update_entity,
)

log = logging.getLogger(__name__)

# Entity rows handed over as one JSON array (one text to bind). Each document travels as a JSON
# text inside it, cast to json as a single entity's is: parsed as a member, a \u0000 inside it
# would be refused, where json holds it.
_INSERT_ROWS = (
    "INSERT INTO entities (tenant, id, types, created_at, modified_at, doc) "
    "SELECT %s, u.id, u.types, u.created_at, u.modified_at, u.doc::json "
    "FROM json_to_recordset(%s::json) AS u(id text, types text[], created_at text, "
    "modified_at text, doc text)"
)
# Each row through the primary key (migration 0011): one UPDATE joining the rows was planned as a
# scan of every entity.
_UPDATE_ROWS = "SELECT burgo_update_entities(%s, %s::json)"


class PostgresBatch(PostgresCore):
    """Create, change and delete many entities in one transaction."""

    async def write_entities(
        self, tenant: str, writes: Sequence[EntityWrite]
    ) -> list[WriteOutcome]:
        """Apply each write in order; each succeeds or fails on its own."""
        if not any(w.create is not None for w in writes):
            await self._check_tenant(tenant)
        if not writes:
            return []
        try:
            outcomes = await self._write_together(tenant, writes)
        except NgsiLdError as exc:
            if isinstance(exc, ServiceUnavailable) and not isinstance(exc.__cause__, RETRY_LATER):
                raise  # the database is away: writing each entity alone would fail as well
            level = logging.DEBUG if isinstance(exc, BadRequestData) else logging.INFO
            log.log(level, "A batch of %d writes is written entity by entity: %s", len(writes),
                    exc.detail)  # fmt: skip
            outcomes = await self._write_alone(tenant, writes)
        if any(o.created for o in outcomes):
            self._tenants.add(tenant)
        return outcomes

    # -- the whole batch at once ----------------------------------------------------------------

    async def _write_together(
        self, tenant: str, writes: Sequence[EntityWrite]
    ) -> list[WriteOutcome]:
        """The batch in one transaction of set-based statements; raises what the database
        refuses (the transaction then leaves nothing behind)."""
        async with self._write_block() as conn:
            cursor = await read(
                conn,
                "SELECT id, doc FROM entities WHERE tenant = %s AND id = ANY(%s::text[]) "
                "ORDER BY id FOR UPDATE",
                (tenant, text_array(dict.fromkeys(w.entity_id for w in writes))),
            )
            stored: dict[str, Entity] = {
                entity_id: entity_from_storage(doc) for entity_id, doc in await cursor.fetchall()
            }
            outcomes, records = self._plan(tenant, writes, stored)
            if records:
                await self._write_rows(conn, tenant, stored, records)
                await self._changed_together(conn, records)
        return outcomes

    def _plan(
        self, tenant: str, writes: Sequence[EntityWrite], stored: dict[str, Entity]
    ) -> tuple[list[WriteOutcome], list[EntityChangeRecord]]:
        """Each write applied in order to the entities as the earlier writes left them: the
        outcomes, and the change record of each write that changes something."""
        current: dict[str, Entity | None] = dict(stored)
        outcomes: list[WriteOutcome] = []
        records: list[EntityChangeRecord] = []
        for write in writes:
            entity_id = write.entity_id
            before = current.get(entity_id)
            try:
                after, result = written(write, before)
            except NgsiLdError as exc:
                outcomes.append(WriteOutcome(entity_id, error=exc))
                continue
            outcomes.append(WriteOutcome(entity_id, created=before is None, result=result))
            if after is before:
                continue
            if before is None:
                assert after is not None
                at = after.created_at or ""
            else:
                at = self._now() if after is None else after.modified_at or ""
            records.append(EntityChangeRecord(tenant, entity_id, before, after, at))
            current[entity_id] = after
        return outcomes, records

    async def _write_rows(
        self,
        conn: Connection,
        tenant: str,
        stored: dict[str, Entity],
        records: Sequence[EntityChangeRecord],
    ) -> None:
        """Each entity's row brought from what was read to what the batch leaves: removed,
        inserted or rewritten, in one statement each for all entities."""
        # The tenant is made by the first entity created in it, even one the batch deletes again.
        first = next((r.after for r in records if r.before is None and r.after is not None), None)
        if first is not None:
            await self._ensure_tenant(conn, tenant, first.created_at or "")
        final: dict[str, Entity | None] = {r.entity_id: r.after for r in records}
        gone = [entity_id for entity_id, e in final.items() if e is None and entity_id in stored]
        # New rows in id order, as every batch inserts them: two batches creating the same
        # ids then wait for one another instead of deadlocking.
        new = sorted(
            (e for entity_id, e in final.items() if e is not None and entity_id not in stored),
            key=lambda e: e.id,
        )
        changed = [
            e
            for entity_id, e in final.items()
            if e is not None and entity_id in stored and e is not stored[entity_id]
        ]
        if gone:
            await defer(
                conn,
                "DELETE FROM entities WHERE tenant = %s AND id = ANY(%s::text[])",
                (tenant, text_array(gone)),
            )
        if new:
            await defer(conn, _INSERT_ROWS, (tenant, _rows_json(new)))
        if changed:
            await defer(conn, _UPDATE_ROWS, (tenant, _rows_json(changed)))

    async def _changed_together(
        self, conn: Connection, records: Sequence[EntityChangeRecord]
    ) -> None:
        """Tell the change hooks about the batch's writes as :meth:`_entities_changed` does,
        through their set-based forms where they have one: the hooks that keep every change
        get the writes in runs of distinct entities, in order; those that keep the latest
        state get each entity's net change, all at once."""
        for run in _runs(records):
            for hook in self._change_hooks:
                await self._call_hook(conn, hook, run)
        changes = net_changes(records)
        if changes:
            for hook in self._net_change_hooks:
                await self._call_hook(conn, hook, changes)

    async def _call_hook(
        self, conn: Connection, hook: ChangeHook, records: Sequence[EntityChangeRecord]
    ) -> None:
        together = self._set_based_hooks.get(hook)
        if together is not None:
            await together(conn, records)
            return
        for record in records:
            outcome = hook(conn, record)
            if outcome is not None:
                await outcome

    # -- one entity at a time -------------------------------------------------------------------

    async def _write_alone(self, tenant: str, writes: Sequence[EntityWrite]) -> list[WriteOutcome]:
        """The batch in one transaction, each entity in a savepoint of its own."""
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
            return [await self._apply(conn, tenant, write, stored) for write in writes]

    async def _apply(
        self, conn: Connection, tenant: str, write: EntityWrite, stored: dict[str, Entity | None]
    ) -> WriteOutcome:
        entity_id = write.entity_id
        current = stored.get(entity_id)
        try:
            new, result = written(write, current)
            if current is not None and new is current:
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


def _runs(records: Sequence[EntityChangeRecord]) -> list[list[EntityChangeRecord]]:
    """The records in order, cut wherever an entity comes again: runs of distinct entities."""
    runs: list[list[EntityChangeRecord]] = [[]]
    seen: set[str] = set()
    for record in records:
        if record.entity_id in seen:
            runs.append([])
            seen = set()
        runs[-1].append(record)
        seen.add(record.entity_id)
    return runs


def _rows_json(entities: Sequence[Entity]) -> str:
    """Entity rows as ``_INSERT_ROWS`` and ``_UPDATE_ROWS`` take them, in one JSON text."""
    return orjson.dumps(
        [
            {
                "id": e.id,
                "types": list(dict.fromkeys(e.types)),
                "created_at": e.created_at or "",
                "modified_at": e.modified_at or "",
                "doc": entity_doc(e),
            }
            for e in entities
        ]
    ).decode()
