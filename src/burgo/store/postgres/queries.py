"""Entity queries and purges in PostgreSQL.

SQL narrows the candidates by tenant, ids and types (the GIN index of the types array), walked
in id order through a server-side cursor; the exact test of every other part of the query (type
expressions, idPattern, attrs, q, scopeQ, geo) is the in-memory reference
:func:`burgo.ngsild.query.matches`, so both backends give the same answer. Pushing q and
geo-queries down to SQL (and PostGIS) is the next step for large tenants.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from psycopg import sql

from burgo.ngsild.model import Entity, entity_from_storage
from burgo.ngsild.query import EntityQuery, matches
from burgo.store.base import EntityChangeRecord
from burgo.store.postgres.core import Connection, PostgresCore
from burgo.store.postgres.entities import delete_entity_row
from burgo.store.queries import QueryResult

# Rows fetched from the server-side cursor per round trip.
_BATCH = 500


def _candidates(tenant: str, query: EntityQuery) -> tuple[sql.Composable, list[Any]]:
    """A WHERE clause every match satisfies (a superset of the answer) and its parameters."""
    clauses: list[sql.Composable] = [sql.SQL("tenant = %s")]
    params: list[Any] = [tenant]
    selectors = query.selectors
    if selectors and all(s.ids or s.types is not None for s in selectors):
        alternatives: list[sql.Composable] = []
        for selector in selectors:
            parts: list[sql.Composable] = []
            if selector.ids:
                parts.append(sql.SQL("id = ANY(%s)"))
                params.append(list(selector.ids))
            if selector.types is not None:
                # Any type expression holds only for entities with one of the types it names.
                parts.append(sql.SQL("types && %s"))
                params.append(sorted(selector.types.names()))
            alternatives.append(sql.SQL("(") + sql.SQL(" AND ").join(parts) + sql.SQL(")"))
        clauses.append(sql.SQL("(") + sql.SQL(" OR ").join(alternatives) + sql.SQL(")"))
    return sql.SQL(" AND ").join(clauses), params


async def _matching(
    conn: Connection, tenant: str, query: EntityQuery, *, lock: bool = False
) -> AsyncGenerator[Entity, None]:
    """Every entity matching ``query``, in id order (the candidates locked when ``lock``)."""
    where, params = _candidates(tenant, query)
    statement = sql.SQL("SELECT doc FROM entities WHERE {} ORDER BY id{}").format(
        where, sql.SQL(" FOR UPDATE" if lock else "")
    )
    async with conn.cursor(name="burgo_query") as cursor:
        cursor.itersize = _BATCH
        await cursor.execute(statement, params)
        async for row in cursor:
            entity = entity_from_storage(row[0])
            if matches(entity, query):
                yield entity


class PostgresQueries(PostgresCore):
    """Query and purge entities."""

    async def query_entities(self, tenant: str, query: EntityQuery) -> QueryResult:
        """One page of the entities matching ``query``, by id, with the count if asked for."""
        await self._check_tenant(tenant)
        page: list[Entity] = []
        seen = 0
        more = False
        async with (
            self._transaction() as conn,
            # Closed here, inside the transaction, even when the walk stops early.
            aclosing(_matching(conn, tenant, query)) as matching,
        ):
            async for entity in matching:
                if query.offset <= seen < query.offset + query.limit:
                    page.append(entity)
                elif seen >= query.offset + query.limit:
                    more = True
                    if not query.count:
                        break
                seen += 1
        return QueryResult(page, seen if query.count else None, more)

    async def purge_entities(self, tenant: str, query: EntityQuery) -> int:
        """Delete every entity matching ``query``; how many were deleted."""
        await self._check_tenant(tenant)
        async with (
            self._transaction() as conn,
            aclosing(_matching(conn, tenant, query, lock=True)) as matching,
        ):
            doomed = [entity async for entity in matching]
            now = self._now()
            for entity in doomed:
                await delete_entity_row(conn, tenant, entity.id)
                await self._entity_changed(
                    conn, EntityChangeRecord(tenant, entity.id, entity, None, now)
                )
        return len(doomed)
