"""A sequence of entity changes applied in one writer job (``modify_entities``).

Each entity's row is read and its JSON document decoded once, every change runs on the state the
one before it left, and each entity is encoded and written back once at the end. The change hooks
(history, indexes, subscriptions) still get one record per change, in order, after the rows are
written, so a device batch of 25 readings is 25 history instants but one document round trip.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from burgo.ngsild.model import Entity, entity_from_storage, entity_to_storage
from burgo.store.base import EntityChange, EntityChangeRecord, run_changes
from burgo.store.sqlite.core import SqliteCore, StoredChange
from burgo.store.sqlite.decoded import DecodedEntities

# Ids looked up per statement: well under SQLite's variable limit on every build.
_CHUNK = 500


@dataclass(slots=True)
class EntityState:
    """One entity while the sequence runs: as stored, and as the changes so far left it."""

    pk: int
    entity_id: str
    stored: Entity
    current: Entity | None


class SqliteChanges(SqliteCore):
    """Apply many changes to one or several entities in one writer job."""

    async def modify_entities(
        self, tenant: str, changes: Sequence[tuple[str, EntityChange[Any]]]
    ) -> list[Any]:
        """Apply the changes in order, all or nothing, in one job."""
        self._check_tenant(tenant)
        if not changes:
            return []
        return await self._write(lambda conn: apply_changes(self, conn, tenant, changes))


def apply_changes(
    core: SqliteCore,
    conn: sqlite3.Connection,
    tenant: str,
    changes: Sequence[tuple[str, EntityChange[Any]]],
) -> list[Any]:
    """Run ``changes`` inside the writer's transaction; their results. Raising leaves the job's
    savepoint to undo everything."""
    states = load_states(conn, tenant, [entity_id for entity_id, _ in changes], core._decoded)
    steps: list[StoredChange] = []
    results = stage_changes(core, tenant, states, changes, steps)
    store_changed(core, conn, tenant, states.values(), steps)
    return results


def stage_changes(
    core: SqliteCore,
    tenant: str,
    states: Mapping[str, EntityState],
    changes: Sequence[tuple[str, EntityChange[Any]]],
    steps: list[StoredChange],
) -> list[Any]:
    """Run ``changes`` on the entities' current states (nothing written yet); their results.
    The new states and the steps (appended to ``steps``) are kept only if every change
    succeeds: raising leaves ``states`` and ``steps`` as they were."""

    def current(entity_id: str) -> Entity | None:
        state = states.get(entity_id)
        return None if state is None else state.current

    staged = run_changes(tenant, changes, current, core._now)
    for entity_id, entity in staged.entities.items():
        states[entity_id].current = entity
    steps += (
        StoredChange(r, None if r.after is None else states[r.entity_id].pk) for r in staged.records
    )
    return staged.results


def store_changed(
    core: SqliteCore,
    conn: sqlite3.Connection,
    tenant: str,
    states: Iterable[EntityState],
    steps: Sequence[StoredChange],
) -> None:
    """Write back the entities ``steps`` changed and tell the hooks: every step to history and
    the outbox, each entity's net change to the indexes."""
    finals: list[StoredChange] = []
    for state in states:
        if state.current is state.stored:
            continue
        _store(conn, tenant, state, core._decoded)
        new = state.current
        at = core._now() if new is None else new.modified_at or ""
        record = EntityChangeRecord(tenant, state.entity_id, state.stored, new, at)
        finals.append(StoredChange(record, None if new is None else state.pk))
    if steps:
        core._entity_steps_changed(conn, steps, finals)


def load_states(
    conn: sqlite3.Connection,
    tenant: str,
    ids: list[str],
    decoded: DecodedEntities | None = None,
) -> dict[str, EntityState]:
    """The stored entities of ``ids``, decoded once each (absent ids are missing); ``decoded``
    gives back those whose documents it knows."""
    wanted = list(dict.fromkeys(ids))
    states: dict[str, EntityState] = {}
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        for pk, entity_id, raw in conn.execute(
            f"SELECT pk, id, doc FROM entities WHERE tenant = ? AND id IN ({marks})",  # noqa: S608 - placeholders only
            (tenant, *chunk),
        ):
            entity = decoded.get(pk, raw) if decoded is not None else None
            if entity is None:
                entity = entity_from_storage(orjson.loads(raw))
                if decoded is not None:
                    decoded.put(pk, raw, entity)
            states[entity_id] = EntityState(pk, entity_id, entity, entity)
    return states


def _store(
    conn: sqlite3.Connection,
    tenant: str,
    state: EntityState,
    decoded: DecodedEntities | None = None,
) -> None:
    """Write an entity's final state back: unchanged, updated or deleted."""
    new = state.current
    if new is state.stored:
        return
    if new is None:
        conn.execute("DELETE FROM entities WHERE pk = ?", (state.pk,))
        return
    doc = orjson.dumps(entity_to_storage(new)).decode()
    conn.execute(
        "UPDATE entities SET types = ?, created_at = ?, modified_at = ?, doc = ? WHERE pk = ?",
        (
            orjson.dumps(list(new.types)).decode(),
            new.created_at or "",
            new.modified_at or "",
            doc,
            state.pk,
        ),
    )
    if decoded is not None:
        decoded.written(state.pk, doc, new, state.stored)
    if new.types != state.stored.types:
        conn.execute("DELETE FROM entity_types WHERE entity_pk = ?", (state.pk,))
        conn.executemany(
            "INSERT INTO entity_types (entity_pk, tenant, type) VALUES (?, ?, ?)",
            [(state.pk, tenant, t) for t in dict.fromkeys(new.types)],
        )
