"""Batch writes in SQLite: a whole batch in one writer job, its rows and hooks written together.

The writes are applied in order. Consecutive writes of distinct entities form a segment whose
entity rows, indexes, history and outbox are written with a few ``executemany`` statements; a
write of an entity already in the segment starts the next one, so each write still sees what an
earlier one left. Should a change hook refuse an entity (an error of its own), the batch is rolled
back to its start and written again one entity at a time, each in a savepoint: only the refused
entity fails.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from burgo.ngsild.errors import AlreadyExists, NgsiLdError, NonexistentTenant, ResourceNotFound
from burgo.ngsild.model import Entity, entity_from_storage, entity_to_storage
from burgo.store.base import EntityChangeRecord
from burgo.store.batch import EntityWrite, WriteOutcome
from burgo.store.sqlite.core import SqliteCore, StoredChange
from burgo.store.sqlite.plain import is_plain

# Batches with up to this many new entities have their documents encoded on the event loop.
_ENCODE_INLINE = 64
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


@dataclass(slots=True)
class _Step:
    """One write that changes the store: the entity's key, what it was and what it becomes."""

    entity_id: str
    pk: int
    before: Entity | None
    after: Entity | None
    result: Any

    def outcome(self) -> WriteOutcome:
        return WriteOutcome(self.entity_id, created=self.before is None, result=self.result)


class _Keys:
    """Row keys for new entities: the writer is alone, so the next key is the highest plus one."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.high: int | None = None

    def next(self) -> int:
        if self.high is None:
            row = self._conn.execute("SELECT coalesce(max(pk), 0) FROM entities").fetchone()
            self.high = int(row[0])
        self.high += 1
        return self.high


class SqliteBatch(SqliteCore):
    """Create, change and delete many entities in one transaction."""

    async def write_entities(
        self, tenant: str, writes: Sequence[EntityWrite]
    ) -> list[WriteOutcome]:
        """Apply each write in order; each succeeds or fails on its own."""
        if tenant not in self._tenants and not any(w.create is not None for w in writes):
            raise NonexistentTenant(f"Tenant {tenant!r} does not exist")
        if not writes:
            return []
        # Documents of new entities encoded before the job, off the writer thread (a big batch
        # on a worker thread), so the single writer spends its time writing; not for upserts,
        # whose entities mostly exist.
        creates = [w.create for w in writes if w.create is not None and w.change is None]
        docs = (
            await asyncio.to_thread(_encode_all, creates)
            if len(creates) > _ENCODE_INLINE
            else _encode_all(creates)
        )

        def job(conn: sqlite3.Connection) -> list[WriteOutcome]:
            need_docs = any(w.change is not None for w in writes)
            rows = _existing(conn, tenant, [w.entity_id for w in writes], need_docs)
            conn.execute("SAVEPOINT batch")
            try:
                outcomes = self._apply_together(conn, tenant, writes, dict(rows), docs)
            except NgsiLdError:
                conn.execute("ROLLBACK TO batch")
                keys = _Keys(conn)
                outcomes = [self._apply_alone(conn, tenant, w, rows, keys, docs) for w in writes]
            conn.execute("RELEASE batch")
            return outcomes

        outcomes = await self._write(job)
        if any(o.created for o in outcomes):
            self._tenants.add(tenant)
        return outcomes

    def _apply_together(
        self,
        conn: sqlite3.Connection,
        tenant: str,
        writes: Sequence[EntityWrite],
        rows: dict[str, _Row | None],
        docs: Mapping[int, Encoded],
    ) -> list[WriteOutcome]:
        keys = _Keys(conn)
        outcomes: list[WriteOutcome] = []
        segment: dict[str, _Step] = {}
        for write in writes:
            if write.entity_id in segment:
                self._flush(conn, tenant, list(segment.values()), docs)
                segment = {}
            planned = _plan(write, rows, keys)
            if isinstance(planned, _Step):
                segment[write.entity_id] = planned
                outcomes.append(planned.outcome())
            else:
                outcomes.append(planned)
        if segment:
            self._flush(conn, tenant, list(segment.values()), docs)
        return outcomes

    def _apply_alone(
        self,
        conn: sqlite3.Connection,
        tenant: str,
        write: EntityWrite,
        rows: dict[str, _Row | None],
        keys: _Keys,
        docs: Mapping[int, Encoded],
    ) -> WriteOutcome:
        row, high = rows.get(write.entity_id), keys.high
        planned = _plan(write, rows, keys)
        if not isinstance(planned, _Step):
            return planned
        conn.execute("SAVEPOINT entity")
        try:
            self._flush(conn, tenant, [planned], docs)
        except NgsiLdError as exc:
            conn.execute("ROLLBACK TO entity")
            conn.execute("RELEASE entity")
            rows[write.entity_id] = row
            keys.high = high
            return WriteOutcome(write.entity_id, error=exc)
        conn.execute("RELEASE entity")
        return planned.outcome()

    def _flush(
        self,
        conn: sqlite3.Connection,
        tenant: str,
        steps: list[_Step],
        docs: Mapping[int, Encoded],
    ) -> None:
        """Write the rows of a segment (distinct entities) and tell the hooks about them."""
        gone = [(s.pk,) for s in steps if s.after is None]
        if gone:
            conn.executemany("DELETE FROM entities WHERE pk = ?", gone)
        created = [(s.pk, s.after) for s in steps if s.before is None and s.after is not None]
        encoded = {id(e): _encoded(docs, e) for _, e in created}
        if created:
            self._ensure_tenant(conn, tenant, created[0][1].created_at or "")
            conn.executemany(
                "INSERT INTO entities (pk, tenant, id, types, created_at, modified_at, doc) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        pk,
                        tenant,
                        e.id,
                        _types(e),
                        e.created_at or "",
                        e.modified_at or "",
                        encoded[id(e)].doc,
                    )
                    for pk, e in created
                ],
            )
            _insert_types(conn, tenant, created)
        changed = [
            (s.pk, s.before, s.after) for s in steps if s.before is not None and s.after is not None
        ]
        if changed:
            conn.executemany(
                "UPDATE entities SET types = ?, created_at = ?, modified_at = ?, doc = ? "
                "WHERE pk = ?",
                [
                    (_types(e), e.created_at or "", e.modified_at or "", _doc(e), pk)
                    for pk, _, e in changed
                ],
            )
            retyped = [(pk, after) for pk, before, after in changed if after.types != before.types]
            if retyped:
                conn.executemany(
                    "DELETE FROM entity_types WHERE entity_pk = ?", [(pk,) for pk, _ in retyped]
                )
                _insert_types(conn, tenant, retyped)
        now = self._now() if gone else ""
        stored = [_stored(tenant, s, now) for s in steps]
        plain = [
            change
            for change, step in zip(stored, steps, strict=True)
            if step.before is None and step.after is not None and encoded[id(step.after)].plain
        ]
        self._entities_changed(conn, stored, plain)


def _plan(write: EntityWrite, rows: dict[str, _Row | None], keys: _Keys) -> _Step | WriteOutcome:
    """What a write does to the entity as ``rows`` has it (and ``rows`` updated), or its outcome
    when it changes nothing or fails."""
    entity_id = write.entity_id
    row = rows.get(entity_id)
    try:
        if row is None:
            if write.create is None:
                raise ResourceNotFound(f"Entity {entity_id} was not found")
            step = _Step(entity_id, keys.next(), None, write.create, None)
        else:
            if write.change is None:
                raise AlreadyExists(f"Entity {entity_id} already exists")
            current = row.current()
            new, result = write.change(current)
            if new is current:
                return WriteOutcome(entity_id, result=result)
            step = _Step(entity_id, row.pk, current, new, result)
    except NgsiLdError as exc:
        return WriteOutcome(entity_id, error=exc)
    rows[entity_id] = None if step.after is None else _Row(step.pk, None, step.after)
    return step


def _stored(tenant: str, step: _Step, now: str) -> StoredChange:
    before, after = step.before, step.after
    if after is None:
        return StoredChange(EntityChangeRecord(tenant, step.entity_id, before, None, now), None)
    at = (after.created_at if before is None else after.modified_at) or ""
    return StoredChange(EntityChangeRecord(tenant, step.entity_id, before, after, at), step.pk)


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


def _types(entity: Entity) -> str:
    return orjson.dumps(list(entity.types)).decode()


class Encoded(NamedTuple):
    """A new entity as its row takes it: its document, and whether it is plain (plain.py)."""

    doc: str
    plain: bool


def _encode_all(entities: Sequence[Entity]) -> dict[int, Encoded]:
    """New entities encoded, by the identity of each entity object."""
    return {id(e): Encoded(_doc(e), is_plain(e)) for e in entities}


def _encoded(docs: Mapping[int, Encoded], entity: Entity) -> Encoded:
    found = docs.get(id(entity))
    return found if found is not None else Encoded(_doc(entity), is_plain(entity))


def _doc(entity: Entity) -> str:
    return orjson.dumps(entity_to_storage(entity)).decode()


def _insert_types(
    conn: sqlite3.Connection, tenant: str, entities: Sequence[tuple[int, Entity]]
) -> None:
    conn.executemany(
        "INSERT INTO entity_types (entity_pk, tenant, type) VALUES (?, ?, ?)",
        [(pk, tenant, t) for pk, e in entities for t in dict.fromkeys(e.types)],
    )
