"""The Store protocol: what every storage backend (SQLite, PostgreSQL) offers the layers above.

Every key includes the tenant. Writes that depend on the stored state take a pure function
(``change``) that the backend runs inside its write transaction, so concurrent writers to one
entity never lose each other's updates, on any backend.

>>> async def rename(store: Store) -> None:
...     await store.modify_entity("", "urn:ngsi-ld:Room:1", lambda e: (e, None))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from burgo.ngsild.errors import ResourceNotFound
from burgo.ngsild.model import Entity
from burgo.store import devices as devices
from burgo.store.batch import BatchStore
from burgo.store.devices import DeviceStore
from burgo.store.discovery import DiscoveryStore
from burgo.store.queries import QueryStore
from burgo.store.subscriptions import Lane as Lane
from burgo.store.subscriptions import PendingNotification as PendingNotification
from burgo.store.subscriptions import StoredSubscription as StoredSubscription
from burgo.store.subscriptions import SubscriptionStore
from burgo.store.temporal import HistoryPage as HistoryPage
from burgo.store.temporal import HistorySelection as HistorySelection
from burgo.store.temporal import HistoryStore

T = TypeVar("T")

DEFAULT_TENANT = ""

# Applied to the stored entity inside the write transaction: the new entity (None deletes it)
# and a value handed back to the caller.
EntityChange = Callable[[Entity], tuple[Entity | None, T]]


@dataclass(frozen=True, slots=True)
class EntityChangeRecord:
    """One entity write as the store commits it: what was there before and what is there now.

    ``before`` is None for a creation, ``after`` is None for a deletion. Backends hand these to
    the parts that must change in the same transaction (history, notification outbox).
    """

    tenant: str
    entity_id: str
    before: Entity | None
    after: Entity | None
    at: str


@dataclass(frozen=True, slots=True)
class StagedChanges:
    """What a job's changes did, run in memory: their results, each entity's new state (None:
    deleted) and a record per change that changed something."""

    results: list[Any]
    entities: dict[str, Entity | None]
    records: list[EntityChangeRecord]


def run_changes(
    tenant: str,
    changes: Sequence[tuple[str, EntityChange[Any]]],
    current: Callable[[str], Entity | None],
    now: Callable[[], str],
) -> StagedChanges:
    """Run ``changes`` in order, each on the entity as the changes before it left it (else as
    ``current`` gives it; None: there is none), writing nothing. ResourceNotFound, or whatever a
    change raises, ends the job: the caller keeps nothing of it."""
    staged = StagedChanges([], {}, [])
    entities = staged.entities
    for entity_id, change in changes:
        before = entities[entity_id] if entity_id in entities else current(entity_id)
        if before is None:
            raise ResourceNotFound(f"Entity {entity_id} was not found")
        new, result = change(before)
        staged.results.append(result)
        if new is before:
            continue
        entities[entity_id] = new
        at = now() if new is None else new.modified_at or ""
        staged.records.append(EntityChangeRecord(tenant, entity_id, before, new, at))
    return staged


@dataclass(frozen=True, slots=True)
class StoredContext:
    """A JSON-LD @context the broker keeps: hosted (added by a user) or cached (fetched)."""

    id: str
    url: str
    kind: str
    document: Any
    created_at: str
    last_usage: str | None = None
    hits: int = 0


class Store(
    BatchStore, DiscoveryStore, DeviceStore, SubscriptionStore, QueryStore, HistoryStore, Protocol
):
    """Storage of tenants, entities and @contexts."""

    async def open(self) -> None:
        """Create or upgrade the schema and start any background work."""

    async def close(self) -> None:
        """Finish pending writes and release connections."""

    async def tenant_exists(self, tenant: str) -> bool:
        """Whether ``tenant`` holds (or once held) data; the default tenant always exists."""

    async def list_tenants(self) -> list[str]:
        """The tenants, the default one (empty name) included."""

    async def create_entity(self, tenant: str, entity: Entity) -> None:
        """Store a new entity, creating the tenant on first write; AlreadyExists if present."""

    async def get_entity(self, tenant: str, entity_id: str) -> Entity | None:
        """The entity with ``entity_id``, or None; NonexistentTenant for an unknown tenant."""

    async def modify_entity(self, tenant: str, entity_id: str, change: EntityChange[T]) -> T:
        """Apply ``change`` to the stored entity atomically; ResourceNotFound if it is missing."""

    async def modify_entities(
        self, tenant: str, changes: Sequence[tuple[str, EntityChange[Any]]]
    ) -> list[Any]:
        """Apply each ``(entity id, change)`` in order in one transaction, all or nothing; the
        changes' results in order.

        Each change sees what the one before it left, and each state it makes reaches history,
        indexes and subscriptions as an entity write of its own (as if by ``modify_entity``),
        while a backend may read and store each entity's document once. A change returning
        None deletes; one returning the same entity changes nothing. ResourceNotFound (and
        nothing written) if an entity is missing.
        """

    async def delete_entity(self, tenant: str, entity_id: str) -> Entity:
        """Delete an entity and return it; ResourceNotFound if it is missing."""

    async def count_entities(self, tenant: str) -> int:
        """How many entities ``tenant`` holds."""

    async def put_context(self, context: StoredContext) -> None:
        """Store (or replace) a JSON-LD @context."""

    async def get_context(self, context_id: str) -> StoredContext | None:
        """The stored @context with that id (or original URL), or None."""

    async def list_contexts(self, kind: str | None = None) -> Sequence[StoredContext]:
        """Stored @contexts, optionally of one kind."""

    async def touch_context(self, context_id: str, used_at: str) -> None:
        """Count one use of a stored @context."""

    async def delete_context(self, context_id: str) -> bool:
        """Delete a stored @context; False if there was none."""

    async def claim_job(self, job: str, every: float) -> bool:
        """Whether this process runs the scheduled ``job`` now: True for one process sharing the
        store per ``every`` seconds."""

    def stats(self) -> dict[str, float]:
        """Gauges for /metrics (queue depth, database size, ...)."""
