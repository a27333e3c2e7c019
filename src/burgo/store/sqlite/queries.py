"""Entity queries and purges in SQLite, pushed down to SQL.

Types go through the ``entity_types`` index, ids through ``(tenant, id)``, ``idPattern`` through
a REGEXP function, q and scopeQ through :mod:`burgo.store.sqlite.qsql`. A q term every match
must satisfy drives the query from the attribute-value index when it selects few entities (a rare
match), so the query reads only those instead of walking a whole type. A geo-query first narrows
the candidates with the R*Tree of GeoProperty bounding boxes (migration 0006, kept current by a
change hook), then runs the exact check of :mod:`burgo.ngsild.geoquery` on those candidates only.
"""

# ruff: noqa: S608 - SQL is assembled from fixed fragments and "?" placeholders only

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from burgo.ngsild.geoquery import Box, match_geometries
from burgo.ngsild.model import Entity, entity_from_storage
from burgo.ngsild.qmatch import Term
from burgo.ngsild.query import EntityQuery, EntitySelector, TypeExpr, compiled_pattern
from burgo.store.base import EntityChangeRecord
from burgo.store.queries import QueryResult
from burgo.store.sqlite.core import SqliteCore
from burgo.store.sqlite.qsql import Candidates, Probe, q_candidates, q_to_sql, scope_to_sql

# Below this many entities of the asked types, the type index drives the query; above it,
# entities are walked in id order (the order of the answer) and the walk stops at ``limit``.
_FEW_OF_TYPE = 2000
# Below this many index rows, a q term every match satisfies drives the query from its keys.
FEW_CANDIDATES = 2000
# Looking up an entity's own index rows costs about as much as listing this many index rows.
_PROBE_COST = 16


class SqliteQueries(SqliteCore):
    """Query and purge entities."""

    def _connect(self) -> sqlite3.Connection:
        conn = super()._connect()
        conn.create_function("regexp", 2, _regexp, deterministic=True)
        return conn

    async def query_entities(self, tenant: str, query: EntityQuery) -> QueryResult:
        """One page of the entities matching ``query``, by id, with the count if asked for."""
        self._check_tenant(tenant)
        return await self._read_in_thread(lambda conn: run_query(conn, tenant, query))

    async def purge_entities(self, tenant: str, query: EntityQuery) -> int:
        """Delete every entity matching ``query``; how many were deleted."""
        self._check_tenant(tenant)

        def job(conn: sqlite3.Connection) -> int:
            pks = matching_pks(conn, tenant, query)
            now = self._now()
            for pk in pks:
                (raw,) = conn.execute("SELECT doc FROM entities WHERE pk = ?", (pk,)).fetchone()
                entity = entity_from_storage(orjson.loads(raw))
                conn.execute("DELETE FROM entities WHERE pk = ?", (pk,))
                self._entity_changed(conn, EntityChangeRecord(tenant, entity.id, entity, None, now))
            return len(pks)

        return await self._write(job)


def _regexp(pattern: str, value: Any) -> bool:
    return isinstance(value, str) and compiled_pattern(pattern).search(value) is not None


# -- filters -------------------------------------------------------------------------------------


def _type_sql(expr: TypeExpr | str, params: list[Any]) -> str:
    if isinstance(expr, str):
        params.append(expr)
        return (
            "EXISTS (SELECT 1 FROM entity_types AS t WHERE t.tenant = e.tenant "
            "AND t.type = ? AND t.entity_pk = e.pk)"
        )
    if expr.is_plain_or():
        names = [item for item in expr.items if isinstance(item, str)]
        params.extend(names)
        marks = ", ".join("?" * len(names))
        return (
            "EXISTS (SELECT 1 FROM entity_types AS t WHERE t.tenant = e.tenant "
            f"AND t.type IN ({marks}) AND t.entity_pk = e.pk)"
        )
    joiner = " OR " if expr.op == "or" else " AND "
    return "(" + joiner.join(_type_sql(item, params) for item in expr.items) + ")"


def _selector_sql(selector: EntitySelector, params: list[Any]) -> str:
    clauses = []
    if selector.ids:
        clauses.append(f"e.id IN ({', '.join('?' * len(selector.ids))})")
        params.extend(selector.ids)
    if selector.id_pattern is not None:
        clauses.append("e.id REGEXP ?")
        params.append(selector.id_pattern)
    if selector.types is not None:
        clauses.append(_type_sql(selector.types, params))
    return "(" + " AND ".join(clauses) + ")" if clauses else "1"


def where_sql(
    tenant: str, query: EntityQuery, probe: Probe = lambda _: False
) -> tuple[str, list[Any]]:
    """The WHERE clause (over entities row ``e``) of everything but the geo-query."""
    params: list[Any] = [tenant]
    clauses = ["e.tenant = ?"]
    selectors = [s for s in query.selectors if not s.is_empty()]
    if selectors and len(selectors) == len(query.selectors):
        clauses.append("(" + " OR ".join(_selector_sql(s, params) for s in selectors) + ")")
    if query.attrs is not None:
        clauses.append(
            "(" + " OR ".join("json_type(e.doc, ?) IS NOT NULL" for _ in query.attrs) + ")"
        )
        params.extend(_attr_path(name) for name in sorted(query.attrs))
    if query.q is not None:
        sql, q_params = q_to_sql(query.q, "e", probe)
        clauses.append(f"({sql})")
        params.extend(q_params)
    if query.scope_q is not None:
        sql, scope_params = scope_to_sql(query.scope_q, "e")
        clauses.append(f"({sql})")
        params.extend(scope_params)
    return " AND ".join(clauses), params


def _attr_path(name: str) -> str:
    return '$.attrs."' + name.replace('"', '\\"') + '"'


def _required_type(expr: TypeExpr | str) -> str | None:
    """A type every match must have (the one whose index can drive), if there is one."""
    if isinstance(expr, str):
        return expr
    if expr.op == "and" or len(expr.items) == 1:
        for item in expr.items:
            found = _required_type(item)
            if found is not None:
                return found
    return None


@dataclass(frozen=True, slots=True)
class _Plan:
    """Where a query's rows come from: FROM clause, its condition and parameters, the ORDER BY
    column, and which indexed q terms look up each visited row's own index entries."""

    source: str
    condition: list[Any] = field(default_factory=list)
    order_by: str = "e.id"
    probed: tuple[Term, ...] = ()
    probe_all: bool = False

    def probe(self, term: Term) -> bool:
        """Whether ``term`` is looked up per visited row rather than listed once."""
        return self.probe_all or any(term is probed for probed in self.probed)


def _plan(
    conn: sqlite3.Connection, tenant: str, query: EntityQuery, *, walk_stops: bool, few: int
) -> _Plan:
    """How to read the rows of ``query``.

    Listed ids drive through ``(tenant, id)``. Then a q term every match satisfies drives when
    its index holds fewer than ``few`` rows: a rare match costs a look-up per candidate instead
    of a walk over its whole type. Otherwise a type every match must have drives through the
    (tenant, type, id) index, in the answer's order, so the walk stops as soon as the page is
    full; alternatives of several types drive through the type index when they name few
    entities (or no order is needed); else the entities are walked in id order. A walk that
    stops early (``walk_stops``) or visits few rows looks up each row's own index entries for
    the q terms; a long one lists each term's keys once."""
    if any(s.ids for s in query.selectors):
        return _Plan("entities AS e", probe_all=True)
    if query.q is not None:
        plan = _candidates_plan(conn, q_candidates(query.q), few)
        if plan is not None:
            return plan
    selector = query.selectors[0] if len(query.selectors) == 1 else EntitySelector()
    if selector.types is not None:
        required = _required_type(selector.types)
        if required is not None:
            return _Plan(
                "entity_type_ids AS ti CROSS JOIN entities AS e",
                [
                    "ti.tenant = ? AND ti.type = ? AND e.pk = ti.entity_pk AND e.id = ti.id",
                    tenant,
                    required,
                ],
                "ti.id",
                probe_all=walk_stops,
            )
        names = sorted(selector.types.names())
        marks = ", ".join("?" * len(names))
        index = [
            f"e.pk IN (SELECT entity_pk FROM entity_types WHERE tenant = ? AND type IN ({marks}))",
            tenant,
            *names,
        ]
        (few_of_type,) = conn.execute(
            f"SELECT count(*) < ? FROM (SELECT 1 FROM entity_types WHERE tenant = ? "
            f"AND type IN ({marks}) LIMIT ?)",
            (_FEW_OF_TYPE, tenant, *names, _FEW_OF_TYPE),
        ).fetchone()
        if few_of_type:
            return _Plan("entities AS e", index, probe_all=True)
        if not walk_stops:
            return _Plan("entities AS e", index)
    return _Plan("entities AS e INDEXED BY entities_tenant_id", probe_all=walk_stops)


def _candidates_plan(
    conn: sqlite3.Connection, candidates: list[Candidates], few: int
) -> _Plan | None:
    """Drive from the term with the fewest candidates, if fewer than ``few``. Another term is
    looked up per candidate when its list of keys would be much longer than the candidates."""
    counts = [_count(conn, c, few) for c in candidates]
    if not counts or min(counts) >= few:
        return None
    fewest = min(counts)
    driver = candidates[counts.index(fewest)]
    long_list = _PROBE_COST * max(fewest, 1)
    probed = tuple(
        c.term
        for c, n in zip(candidates, counts, strict=True)
        if n >= few and (long_list <= few or _count(conn, c, long_list) >= long_list)
    )
    return _Plan(
        # NOT INDEXED: the keys drive (by rowid); no scan of the tenant's id index.
        "entities AS e NOT INDEXED",
        [f"e.pk IN ({driver.sql})", *driver.params],
        probed=probed,
    )


def _count(conn: sqlite3.Connection, candidates: Candidates, cap: int) -> int:
    """How many index rows the term selects, counting no further than ``cap``."""
    sql = f"SELECT count(*) FROM ({candidates.sql} LIMIT ?)"
    count: int = conn.execute(sql, [*candidates.params, cap]).fetchone()[0]
    return count


def _select(
    conn: sqlite3.Connection,
    tenant: str,
    query: EntityQuery,
    columns: str,
    *,
    ordered: bool,
    tail: str = "",
    extra: Sequence[Any] = (),
    few: int = FEW_CANDIDATES,
) -> list[Any]:
    plan = _plan(conn, tenant, query, walk_stops=ordered and bool(tail), few=few)
    where, params = where_sql(tenant, query, plan.probe)
    if plan.condition:
        where = f"{plan.condition[0]} AND {where}"
        params = [*plan.condition[1:], *params]
    order = f" ORDER BY {plan.order_by}" if ordered else ""
    sql = f"SELECT {columns} FROM {plan.source} WHERE {where}{order}{tail}"
    return conn.execute(sql, [*params, *extra]).fetchall()


# -- queries -------------------------------------------------------------------------------------


def run_query(
    conn: sqlite3.Connection, tenant: str, query: EntityQuery, *, few: int = FEW_CANDIDATES
) -> QueryResult:
    """Answer ``query`` on one connection (``few``: see :data:`FEW_CANDIDATES`)."""
    if query.geo is not None:
        matched = _geo_matches(conn, tenant, query)
        total = len(matched)
        page = matched[query.offset : query.offset + query.limit]
        return QueryResult(
            _entities_by_pk(conn, page),
            total if query.count else None,
            more=query.offset + len(page) < total,
        )
    entities: list[Entity] = []
    more = False
    if query.limit > 0:
        rows = _select(
            conn,
            tenant,
            query,
            "e.doc",
            ordered=True,
            tail=" LIMIT ? OFFSET ?",
            extra=(query.limit + 1, query.offset),
            few=few,
        )
        more = len(rows) > query.limit
        entities = [entity_from_storage(orjson.loads(raw)) for (raw,) in rows[: query.limit]]
    count = None
    if query.count:
        count = _type_count(conn, tenant, query)
        if count is None:
            count = _select(conn, tenant, query, "count(*)", ordered=False, few=few)[0][0]
    return QueryResult(entities, count, more)


def _type_count(conn: sqlite3.Connection, tenant: str, query: EntityQuery) -> int | None:
    """The count of a query on types alone, from the type index only (None for other queries):
    a merge of each type's sorted keys, so an entity of two of the types counts once."""
    if len(query.selectors) != 1 or query.attrs is not None or query.q is not None:
        return None
    selector = query.selectors[0]
    if query.scope_q is not None or selector.ids or selector.id_pattern is not None:
        return None
    if selector.types is None or not selector.types.is_plain_or():
        return None
    names = sorted(selector.types.names())
    branch = "SELECT entity_pk FROM entity_types WHERE tenant = ? AND type = ?"
    sql = f"SELECT count(*) FROM ({' UNION '.join([branch] * len(names))} ORDER BY 1)"
    count: int = conn.execute(sql, [v for name in names for v in (tenant, name)]).fetchone()[0]
    return count


def matching_pks(conn: sqlite3.Connection, tenant: str, query: EntityQuery) -> list[int]:
    """The keys of every entity matching ``query`` (paging ignored), by id."""
    if query.geo is not None:
        return _geo_matches(conn, tenant, query)
    return [pk for (pk,) in _select(conn, tenant, query, "e.pk", ordered=True)]


def _entities_by_pk(conn: sqlite3.Connection, pks: Sequence[int]) -> list[Entity]:
    if not pks:
        return []
    marks = ", ".join("?" * len(pks))
    docs = dict(conn.execute(f"SELECT pk, doc FROM entities WHERE pk IN ({marks})", list(pks)))
    return [entity_from_storage(orjson.loads(docs[pk])) for pk in pks]


def _outside(box: Box, params: list[Any]) -> str:
    params.extend((box[0], box[1], box[2], box[3]))
    return "(b.max_x < ? OR b.min_x > ? OR b.max_y < ? OR b.min_y > ?)"


def _geo_matches(conn: sqlite3.Connection, tenant: str, query: EntityQuery) -> list[int]:
    """Keys of the entities matching ``query`` with its geo-query: the R*Tree narrows the
    candidates, the exact check decides (rows certainly matching by their box skip it)."""
    geo = query.geo
    assert geo is not None
    where, params = where_sql(tenant, query)
    head: list[Any] = []
    certain_box = geo.certain_box()
    certain = _outside(certain_box, head) if certain_box is not None else "0"
    search_box = geo.search_box()
    box_sql = ""
    box_params: list[Any] = []
    if search_box is not None:
        box_sql = "b.min_x <= ? AND b.max_x >= ? AND b.min_y <= ? AND b.max_y >= ? AND "
        box_params = [search_box[1], search_box[0], search_box[3], search_box[2]]
    # CROSS JOIN keeps this join order: the R*Tree drives, the rest is looked up by key. With
    # no other condition the entities table is not even read (the index rows carry the ids).
    alone = len(params) == 1
    sql = (
        f"SELECT g.entity_pk, CASE WHEN {certain} THEN NULL ELSE g.geometry END "
        "FROM entity_geo_box AS b CROSS JOIN entity_geo AS g"
        + ("" if alone else " CROSS JOIN entities AS e")
        + f" WHERE {box_sql}g.id = b.id AND g.tenant = ? AND g.name = ?"
        + (
            " ORDER BY g.entity_id"
            if alone
            else f" AND e.pk = g.entity_pk AND e.id = g.entity_id AND {where} ORDER BY e.id"
        )
    )
    extra = [] if alone else params
    rows = conn.execute(sql, [*head, *box_params, tenant, geo.geoproperty, *extra]).fetchall()
    sure: set[int] = {pk for pk, geometry in rows if geometry is None}
    unsure = [(pk, geometry) for pk, geometry in rows if geometry is not None and pk not in sure]
    verdicts = match_geometries(geo, [orjson.loads(geometry) for _, geometry in unsure])
    sure.update(pk for (pk, _), ok in zip(unsure, verdicts, strict=True) if ok)
    return [pk for pk in dict.fromkeys(pk for pk, _ in rows) if pk in sure]
