"""The QueryStore protocol: entity queries and purges, answered by the store (SQL pushdown)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from burgo.ngsild.model import Entity
from burgo.ngsild.query import EntityQuery


@dataclass(frozen=True, slots=True)
class QueryResult:
    """One page of a query's answer, ordered by entity id, and the total when it was asked for.

    ``more`` tells whether entities follow this page (so a client can be pointed to the next).
    """

    entities: Sequence[Entity]
    count: int | None = None
    more: bool = False


class QueryStore(Protocol):
    """Queries over a tenant's entities."""

    async def query_entities(self, tenant: str, query: EntityQuery) -> QueryResult:
        """The page of entities matching ``query`` (by id; ``limit``/``offset``), and their
        count if ``query.count``; NonexistentTenant for an unknown tenant."""

    async def purge_entities(self, tenant: str, query: EntityQuery) -> int:
        """Delete every entity matching ``query`` (paging ignored) and say how many there were."""
