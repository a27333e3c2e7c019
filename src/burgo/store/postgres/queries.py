"""Entity queries and purges in PostgreSQL.

The conditions of a query (:mod:`burgo.store.postgres.qsql`) run in the database over the
entities, the attribute-value index and the geo index of migration 0005. When SQL decides every
part exactly (the common case: types, ids, attrs, scopeQ, indexed q terms, geo-queries it can
decide), the page is ``ORDER BY id LIMIT ... OFFSET ...`` and the count a ``count(*)``. Otherwise
the rows SQL selects (a superset of the answer) are walked in id order, in batches, and the
reference :func:`burgo.ngsild.query.matches` decides the undecided ones, so both backends give
the same answer.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from burgo.ngsild.model import Entity, entity_from_storage
from burgo.ngsild.query import EntityQuery, TypeExpr, matches
from burgo.store.base import EntityChangeRecord
from burgo.store.postgres.core import Connection
from burgo.store.postgres.entities import delete_entity_row
from burgo.store.postgres.qindex import PostgresQIndex
from burgo.store.postgres.qsql import (
    Filter,
    conjunction,
    disjunction,
    geo_sql,
    query_filter,
    rare_terms,
    type_filter,
)
from burgo.store.queries import QueryResult

# Candidate rows read per statement of a walk.
_BATCH = 500
# Below this many index rows, a q term every match satisfies drives the query.
FEW_CANDIDATES = 2000
# When a walk of a type finds too few matches among this many ids, the q terms with fewer than
# SOME_CANDIDATES index rows each drive the query: the intersection of their entity ids (each
# read from its index alone).
FIRST_VISITS = 2000
SOME_CANDIDATES = 50_000


class _Plan:
    """The SQL of one query: its WHERE clause over ``e`` (``page``: the form for a walk in id
    order; ``where``: the form for a count), whether it selects exactly the answer, and the SQL
    of a per-row flag telling that the geo-query certainly holds."""

    def __init__(self, tenant: str, query: EntityQuery, postgis: bool) -> None:
        self.query = query
        self.tenant = tenant
        self.geo = geo_sql(query.geo, postgis) if query.geo is not None else None
        self.where = self._where(probe=False)
        self.page = self.where
        self.residual = not query_filter(query).exact
        # Where the page's rows come from and their order (a type's own list, see prepare).
        self.source = Filter("entities AS e")
        self.order = "e.id"
        # The q terms that may drive the query together when a walk finds too few matches.
        self.terms: list[Filter] = []
        # A walk of a type's ids: the type.
        self.walked: str | None = None

    def _where(self, probe: bool) -> Filter:
        parts = [Filter("e.tenant = %s", [self.tenant]), query_filter(self.query, probe)]
        if self.geo is not None:
            parts.append(self.geo.some("IS NOT FALSE"))
        return conjunction(parts)

    async def prepare(self, conn: Connection, few: int) -> None:
        """Choose how the page is read. A q term every match satisfies whose index holds few
        rows drives the query (its ids, each entity looked up and checked); otherwise (and
        without a geo-query, which drives by its own index) the entities are walked in id order,
        each visited row looking up its own index rows, and the walk stops when the page is
        full (see :meth:`drive` for a walk that finds too few). ``few``: see
        :data:`FEW_CANDIDATES`."""
        if self.geo is not None:
            return
        if self.query.q is not None:
            terms = rare_terms(self.tenant, self.query.q)
            for term in terms:
                if await _rows(conn, term, few) < few:
                    self._drive_by([term])
                    return
            self.page = self._where(probe=True)
            self.terms = terms
        selectors = self.query.selectors
        if len(selectors) == 1 and not selectors[0].ids and selectors[0].types is not None:
            required = _required_type(selectors[0].types)
            if required is not None:
                # Walk that type's own id list, not every entity of the tenant.
                self.source = Filter(
                    "entity_type_ids AS t JOIN entities AS e ON e.tenant = t.tenant AND e.id = t.id"
                )
                self.order = "t.id"
                self.walked = required
                self.page = conjunction(
                    [Filter("t.tenant = %s AND t.type = %s", [self.tenant, required]), self.page]
                )

    def bounded(self, visits: int) -> Filter:
        """The source of a walk of the type's first ``visits`` ids only."""
        return Filter(
            "(SELECT t.tenant, t.type, t.id FROM entity_type_ids AS t WHERE t.tenant = %s "
            "AND t.type = %s ORDER BY t.id LIMIT %s) AS t "
            "JOIN entities AS e ON e.tenant = t.tenant AND e.id = t.id",
            [self.tenant, self.walked, visits],
        )

    async def drive(self, conn: Connection, some: int) -> bool:
        """Drive the query by the entity ids of its q terms with fewer than ``some`` index rows
        each (their intersection, each read from its index alone), every entity then checked in
        full; False when no term has so few."""
        driving = [term for term in self.terms if await _rows(conn, term, some) < some]
        if not driving:
            return False
        self._drive_by(driving)
        return True

    def _drive_by(self, driving: list[Filter]) -> None:
        """Read the page's rows from the ids the ``driving`` terms all hold for."""
        both = " INTERSECT ".join(f"({term.sql})" for term in driving)
        if len(driving) == 1:
            both = f"SELECT DISTINCT d.entity_id FROM ({both}) AS d"  # noqa: S608 - fixed fragments
        # Each id looked up by itself (OFFSET 0 keeps the subquery apart): a join could read
        # the whole type in id order to meet a few hundred ids.
        self.source = Filter(
            f"({both}) AS m(id) CROSS JOIN LATERAL (SELECT * FROM entities AS e "  # noqa: S608 - fixed fragments
            "WHERE e.tenant = %s AND e.id = m.id OFFSET 0) AS e",
            [*(p for term in driving for p in term.params), self.tenant],
        )
        self.order = "e.id"
        self.page = self._where(probe=True)

    def sure(self) -> Filter:
        """A column: the geo-query holds for the row (true when there is none)."""
        if self.geo is None:
            return Filter("TRUE")
        return self.geo.some("IS TRUE")

    async def exact(self, conn: Connection) -> bool:
        """Whether the WHERE clause selects exactly the answer (no row is left undecided)."""
        if self.residual:
            return False
        if self.geo is None:
            return True
        cursor = await conn.execute(
            "SELECT EXISTS (SELECT 1 FROM entity_geo AS g WHERE g.tenant = %s AND "  # noqa: S608 - fixed fragments
            f"{self.geo.candidate} AND ({self.geo.verdict}) IS NULL)",
            [self.tenant, *self.geo.candidate_params, *self.geo.verdict_params],
        )
        row = await cursor.fetchone()
        return not (row and row[0])


async def _rows(conn: Connection, term: Filter, cap: int) -> int:
    """How many index rows the term has, counted up to ``cap``."""
    cursor = await conn.execute(
        f"SELECT count(*) FROM ({term.sql} LIMIT %s) AS few",  # noqa: S608 - fixed fragments
        [*term.params, cap],
    )
    row = await cursor.fetchone()
    return int(row[0]) if row is not None else 0


def type_count(tenant: str, query: EntityQuery) -> Filter | None:
    """The statement counting the matches from the type-set counts (migration 0008), when only
    types select: the sum over the type sets the selectors accept."""
    selectors = query.selectors
    if (
        not selectors
        or any(s.types is None or s.ids or s.id_pattern is not None for s in selectors)
        or (query.attrs, query.q, query.scope_q, query.geo) != (None, None, None, None)
    ):
        return None
    accepted = disjunction([type_filter(s.types) for s in selectors if s.types is not None])
    return Filter(
        "SELECT coalesce(sum(e.n), 0) FROM entity_type_counts AS e "  # noqa: S608 - fixed fragments
        f"WHERE e.tenant = %s AND {accepted.sql}",
        [tenant, *accepted.params],
    )


def _required_type(expr: TypeExpr | str) -> str | None:
    """A type every match must have, if there is one."""
    if isinstance(expr, str):
        return expr
    if expr.op == "and" or len(expr.items) == 1:
        for item in expr.items:
            found = _required_type(item)
            if found is not None:
                return found
    return None


async def _walk(
    conn: Connection, plan: _Plan, *, lock: bool = False
) -> AsyncGenerator[Entity, None]:
    """Every entity matching the query, in id order (the candidates locked when ``lock``): SQL
    selects the candidates in batches (each a LIMIT, so PostgreSQL plans a walk that stops
    early), the reference decides the rows SQL left undecided."""
    sure = plan.sure()
    after: str | None = None
    while True:
        keyset = "" if after is None else f" AND {plan.order} > %s"
        # The ids first (from the indexes alone when the conditions allow), then the documents.
        statement = (
            f"SELECT e.id, {sure.sql} FROM {plan.source.sql} WHERE {plan.page.sql}{keyset} "  # noqa: S608 - fixed fragments
            f"ORDER BY {plan.order} LIMIT %s{' FOR UPDATE OF e' if lock else ''}"
        )
        params = [
            *sure.params,
            *plan.source.params,
            *plan.page.params,
            *([] if after is None else [after]),
            _BATCH,
        ]
        cursor = await conn.execute(statement, params)
        rows = await cursor.fetchall()
        if not rows:
            return
        cursor = await conn.execute(
            "SELECT id, doc FROM entities WHERE tenant = %s AND id = ANY(%s::text[])",
            [plan.tenant, [entity_id for entity_id, _ in rows]],
        )
        docs: dict[str, Any] = dict(await cursor.fetchall())
        for entity_id, certain in rows:
            entity = entity_from_storage(docs[entity_id])
            if (certain and not plan.residual) or matches(entity, plan.query):
                yield entity
        if len(rows) < _BATCH:
            return
        after = rows[-1][0]


class PostgresQueries(PostgresQIndex):
    """Query and purge entities."""

    # Below this many index rows, a q term every match satisfies drives the query.
    few_candidates = FEW_CANDIDATES
    # Below this many index rows each, two or more such terms drive the query together.
    some_candidates = SOME_CANDIDATES
    first_visits = FIRST_VISITS

    async def query_entities(self, tenant: str, query: EntityQuery) -> QueryResult:
        """One page of the entities matching ``query``, by id, with the count if asked for."""
        await self._check_tenant(tenant)
        plan = _Plan(tenant, query, self.postgis)
        async with self._transaction() as conn:
            await plan.prepare(conn, self.few_candidates)
            if plan.geo is not None and not plan.residual and query.offset == 0 and not query.count:
                certain = await _certain_page(conn, plan)
                if certain is not None:
                    return certain
            if await plan.exact(conn):
                if plan.terms and plan.walked is not None and query.limit > 0:
                    # Matches are common (the page fills among the type's first ids), or the
                    # terms with fewer rows drive.
                    first = await _exact_page(conn, plan, plan.bounded(self.first_visits))
                    if first.more or not await plan.drive(conn, self.some_candidates):
                        return first if first.more else await _exact_page(conn, plan)
                return await _exact_page(conn, plan)
            return await _walked_page(conn, plan)

    async def purge_entities(self, tenant: str, query: EntityQuery) -> int:
        """Delete every entity matching ``query``; how many were deleted."""
        await self._check_tenant(tenant)
        plan = _Plan(tenant, query, self.postgis)
        async with (
            self._transaction() as conn,
            aclosing(_walk(conn, plan, lock=True)) as matching,
        ):
            doomed = [entity async for entity in matching]
            now = self._now()
            for entity in doomed:
                await delete_entity_row(conn, tenant, entity.id)
                await self._entity_changed(
                    conn, EntityChangeRecord(tenant, entity.id, entity, None, now)
                )
        return len(doomed)


async def _certain_page(conn: Connection, plan: _Plan) -> QueryResult | None:
    """The first page of a geo-query straight from SQL when SQL is sure of every row it gives
    (None otherwise): the rows whose geo verdict is true or undecided, in id order, each then
    told whether it is sure. When all are, the page and whether more follow are exact (an
    undecided row could only come later), without first looking for undecided rows among all
    the candidates, which costs as much again as the page."""
    assert plan.geo is not None
    geo, query = plan.geo, plan.query
    cursor = await conn.execute(
        f"SELECT p.id, s.sure FROM (SELECT e.id FROM {plan.source.sql} WHERE {plan.page.sql} "  # noqa: S608 - fixed fragments
        f"ORDER BY {plan.order} LIMIT %s) AS p CROSS JOIN LATERAL (SELECT coalesce(bool_or("
        f"({geo.verdict}) IS TRUE), false) AS sure FROM entity_geo AS g WHERE g.tenant = %s "
        f"AND g.entity_id = p.id AND {geo.candidate}) AS s ORDER BY p.id",
        [*plan.source.params, *plan.page.params, query.limit + 1, *geo.verdict_params, plan.tenant,
         *geo.candidate_params],
    )  # fmt: skip
    rows = await cursor.fetchall()
    if not all(sure for _, sure in rows):
        return None
    ids = [entity_id for entity_id, _ in rows[: query.limit]]
    cursor = await conn.execute(
        "SELECT doc FROM entities WHERE tenant = %s AND id = ANY(%s::text[]) ORDER BY id",
        [plan.tenant, ids],
    )
    page = [entity_from_storage(doc) for (doc,) in await cursor.fetchall()]
    return QueryResult(page, None, len(rows) > query.limit)


async def _exact_page(conn: Connection, plan: _Plan, source: Filter | None = None) -> QueryResult:
    """The page and count straight from SQL (its rows read from ``source`` when given)."""
    query, where, walk = plan.query, plan.where, plan.page
    source = source or plan.source
    page: list[Entity] = []
    more = False
    if query.limit > 0:
        # The page's ids first (from the indexes alone when the conditions allow), then only
        # their documents.
        cursor = await conn.execute(
            f"SELECT e.id FROM {source.sql} WHERE {walk.sql} "  # noqa: S608 - fixed fragments
            f"ORDER BY {plan.order} LIMIT %s OFFSET %s",
            [*source.params, *walk.params, query.limit + 1, query.offset],
        )
        ids = [entity_id for (entity_id,) in await cursor.fetchall()]
        more = len(ids) > query.limit
        cursor = await conn.execute(
            "SELECT doc FROM entities WHERE tenant = %s AND id = ANY(%s::text[]) ORDER BY id",
            [plan.tenant, ids[: query.limit]],
        )
        page = [entity_from_storage(doc) for (doc,) in await cursor.fetchall()]
    count = None
    if query.count:
        counting = type_count(plan.tenant, query)
        if counting is None:
            counting = Filter(
                f"SELECT count(*) FROM entities AS e WHERE {where.sql}",  # noqa: S608 - fixed fragments
                where.params,
            )
        cursor = await conn.execute(counting.sql, counting.params)
        row = await cursor.fetchone()
        count = int(row[0]) if row else 0
    return QueryResult(page, count, more)


async def _walked_page(conn: Connection, plan: _Plan) -> QueryResult:
    """The page (and count) of a walk over the candidates, the reference deciding."""
    query = plan.query
    page: list[Entity] = []
    seen = 0
    more = False
    # Closed here, inside the transaction, even when the walk stops early.
    async with aclosing(_walk(conn, plan)) as matching:
        async for entity in matching:
            if query.offset <= seen < query.offset + query.limit:
                page.append(entity)
            elif seen >= query.offset + query.limit:
                more = True
                if not query.count:
                    break
            seen += 1
    return QueryResult(page, seen if query.count else None, more)
