"""SQL for entity queries on PostgreSQL: the conditions over one ``entities`` row ``e``.

Each part of a query becomes a :class:`Filter`: a WHERE fragment every match satisfies, marked
*exact* when the fragment selects precisely the matches. Exact are: ids, type expressions (the
GIN index of the types array), attrs, scopeQ, terms on ``createdAt`` and ``modifiedAt``, and the
q terms the attribute-value index of migration 0005 answers (existence, absence, ``==`` with
values, ranges and lists, and ordering, of numbers, strings, booleans, DateTimes, Dates and
Times, on a plain attribute), with any ``;``, ``|`` and parentheses over them. Terms the index does
not answer (``!=``, paths into sub-attributes, members and compound values) walk the attribute's
instances in the stored document, with exactly the reference evaluator's rules, still in SQL.
Patterns (Python's regular expressions), DateTimes, Dates and Times inside documents, and
idPattern narrow to the entities holding the attribute, and the reference evaluator decides.

A geo-query narrows by the box index (PostgreSQL's GiST over ``box``) and decides in SQL what it
can exactly: ``near`` between two points by the same haversine formula as
:mod:`burgo.ngsild.geoquery` (a margin of a micrometre left to the exact check), a geometry
wholly outside :meth:`~burgo.ngsild.geoquery.GeoQuery.certain_box`, and, with PostGIS, the
relations ``within``, ``contains``, ``intersects``, ``equals``, ``disjoint`` and ``overlaps``
of valid geometries (the GEOS predicates of the reference). The rest (``near`` another
geometry, the relations without PostGIS) goes to the reference check.

Every value, attribute IRI and geometry is a bound parameter; the SQL text is fixed fragments.
"""

# ruff: noqa: S608 - SQL is assembled from fixed fragments; every value is a bound parameter

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from burgo.ngsild.geoquery import EARTH_RADIUS, Box, GeoQuery
from burgo.ngsild.qmatch import (
    Absent,
    And,
    Literal,
    LitKind,
    Op,
    Or,
    QExpr,
    Range,
    ScopeAnd,
    ScopeExpr,
    ScopeOr,
    ScopeTerm,
    Term,
    Value,
)
from burgo.ngsild.query import EntityQuery, EntitySelector, TypeExpr
from burgo.store.postgres.qindex import TEMPORAL_KINDS

_SQL_OPS = {Op.GT: ">", Op.GE: ">=", Op.LT: "<", Op.LE: "<="}
_POSTGIS = {
    "within": "ST_Within",
    "contains": "ST_Contains",
    "intersects": "ST_Intersects",
    "equals": "ST_Equals",
    "disjoint": "ST_Disjoint",
    "overlaps": "ST_Overlaps",
}
# Distances this close to a bound (metres, plus this share of the distance) are left to the
# exact check: floating point in SQL and in numpy may differ in the last digits.
_MARGIN = 1e-6
_RELATIVE_MARGIN = 1e-9


@dataclass(frozen=True, slots=True)
class Filter:
    """A WHERE fragment over row ``e`` every match satisfies; ``exact``: it selects only matches."""

    sql: str
    params: list[Any] = field(default_factory=list)
    exact: bool = True


ANY = Filter("TRUE")
# A part that SQL does not narrow at all: the reference decides.
UNKNOWN = Filter("TRUE", exact=False)


def conjunction(filters: list[Filter]) -> Filter:
    """Every filter holds."""
    narrowing = [f for f in filters if f.sql != "TRUE"]
    exact = all(f.exact for f in filters)
    if not narrowing:
        return Filter("TRUE", exact=exact)
    return Filter(
        "(" + " AND ".join(f.sql for f in narrowing) + ")",
        [p for f in narrowing for p in f.params],
        exact,
    )


def disjunction(filters: list[Filter]) -> Filter:
    """Some filter holds."""
    exact = all(f.exact for f in filters)
    if any(f.sql == "TRUE" for f in filters):
        return Filter("TRUE", exact=exact)
    return Filter(
        "(" + " OR ".join(f.sql for f in filters) + ")",
        [p for f in filters for p in f.params],
        exact,
    )


# -- selectors and attrs ------------------------------------------------------------------------


def type_filter(expr: TypeExpr | str) -> Filter:
    """The entities (``e.types``) a type expression accepts."""
    if isinstance(expr, str):
        return Filter("e.types @> %s::text[]", [[expr]])
    if expr.is_plain_or():
        return Filter("e.types && %s::text[]", [sorted(expr.names())])
    parts = [type_filter(item) for item in expr.items]
    return conjunction(parts) if expr.op == "and" else disjunction(parts)


def _selector(selector: EntitySelector) -> Filter:
    parts = []
    if selector.ids:
        parts.append(Filter("e.id = ANY(%s::text[])", [list(selector.ids)]))
    if selector.types is not None:
        parts.append(type_filter(selector.types))
    if selector.id_pattern is not None:
        parts.append(UNKNOWN)  # Python's regular expressions, not PostgreSQL's
    return conjunction(parts)


def query_filter(query: EntityQuery, probe: bool = False) -> Filter:
    """The conditions of everything but the geo-query (and paging).

    ``probe``: index look-ups are made per visited row (cheap for a walk in id order that stops
    once the page is full) rather than joined (cheap when few rows hold the value, or for a
    count)."""
    parts: list[Filter] = []
    if query.selectors:
        parts.append(disjunction([_selector(s) for s in query.selectors]))
    if query.attrs is not None:
        parts.append(
            Filter(
                "EXISTS (SELECT 1 FROM entity_attr_values AS a WHERE a.tenant = e.tenant "
                "AND a.entity_id = e.id AND a.attr = ANY(%s::text[]) AND a.kind = 'e')",
                [sorted(query.attrs)],
            )
        )
    if query.q is not None:
        parts.append(q_filter(query.q, probe))
    if query.scope_q is not None:
        parts.append(scope_filter(query.scope_q))
    return conjunction(parts)


# -- q ------------------------------------------------------------------------------------------


def q_filter(expr: QExpr, probe: bool = False) -> Filter:
    """The conditions of a q expression."""
    if isinstance(expr, And):
        return conjunction([q_filter(item, probe) for item in expr.items])
    if isinstance(expr, Or):
        return disjunction([q_filter(item, probe) for item in expr.items])
    if isinstance(expr, Absent):
        present = _term(Term(expr.path), probe)
        if not present.exact:
            return UNKNOWN
        return Filter(f"NOT {present.sql}", present.params)
    return _term(expr, probe)


def _term(term: Term, probe: bool) -> Filter:
    attr = term.path.attr
    if attr is None:
        return _member_term(term)
    conditions = index_conditions(term)
    if conditions is not None:
        return _values_of(attr, conditions, probe)
    walked = _json_term(term)
    if walked is not None:
        return walked
    # Whatever the term asks of the attribute, the entity holds it.
    held = _values_of(attr, [("v.kind = 'e'", [])], probe)
    return Filter(held.sql, held.params, exact=False)


def _values_of(attr: str, conditions: list[tuple[str, list[Any]]], probe: bool) -> Filter:
    """The entity has index rows of ``attr`` meeting one of the conditions."""
    if probe or len(conditions) == 1:
        either = " OR ".join(f"({sql})" for sql, _ in conditions)
        rows = (
            "FROM entity_attr_values AS v WHERE v.tenant = e.tenant "
            f"AND v.entity_id = e.id AND v.attr = %s AND ({either})"
        )
        params = [attr, *(p for _, ps in conditions for p in ps)]
        if probe:
            # A scalar subquery with LIMIT: PostgreSQL neither joins nor hashes it, but looks
            # the row's own index rows up.
            return Filter(f"((SELECT 1 {rows} LIMIT 1) IS NOT NULL)", params)
        return Filter(f"EXISTS (SELECT 1 {rows})", params)
    # Each condition a branch of its own (txt = 'ok' for a Property, its IRI for a
    # VocabProperty, ...): each reads only its own rows of the index, and the planner estimates
    # each from the statistics of its own value; one OR of them would read every row of attr.
    branches = " UNION ALL ".join(
        f"SELECT v.tenant, v.entity_id FROM entity_attr_values AS v WHERE v.attr = %s AND ({sql})"
        for sql, _ in conditions
    )
    return Filter(
        f"EXISTS (SELECT 1 FROM ({branches}) AS u WHERE u.tenant = e.tenant "
        "AND u.entity_id = e.id)",
        [p for _, ps in conditions for p in (attr, *ps)],
    )


def rare_terms(tenant: str, expr: QExpr) -> list[Filter]:
    """For each indexed term every match of ``expr`` satisfies (existence aside), a query of
    the entity ids of its index rows in ``tenant`` (read from the index alone): a planner
    counts them (up to a LIMIT) to learn whether the term is rare enough to drive the query,
    and may intersect the ids of several terms. Each of a term's conditions (``txt = 'ok'`` for a
    Property value, its expanded IRI for a VocabProperty term, ...) is a branch of its own, so
    that each reads only its own rows of the index."""
    items = expr.items if isinstance(expr, And) else (expr,)
    found = []
    for item in items:
        if isinstance(item, Term) and item.op is not None and item.path.attr is not None:
            conditions = index_conditions(item)
            if conditions is not None:
                branch = (
                    "SELECT v.entity_id FROM entity_attr_values AS v "
                    "WHERE v.tenant = %s AND v.attr = %s"
                )
                found.append(
                    Filter(
                        " UNION ALL ".join(f"({branch} AND ({sql}))" for sql, _ in conditions),
                        [p for _, ps in conditions for p in (tenant, item.path.attr, *ps)],
                    )
                )
    return found


def _number(value: Any) -> float | None:
    """The literal as a double, None when a double cannot hold it exactly."""
    try:
        as_float = float(value)
    except OverflowError:
        return None
    return as_float if as_float == value and math.isfinite(as_float) else None


_VALUE_KINDS = "v.kind IN ('v', 'c', 'r')"
_ORDERED_KINDS = "v.kind IN ('v', 'c')"


def _operand(lit: Literal, ordering: bool) -> tuple[str, Any] | None:
    """The condition on an index row's kind and the column and value a literal compares with
    (None: the index cannot answer)."""
    if lit.kind == LitKind.NUMBER:
        number = _number(lit.value)
        kinds = _ORDERED_KINDS if ordering else _VALUE_KINDS
        return None if number is None else (f"{kinds} AND v.num", number)
    if lit.kind == LitKind.STRING:
        kinds = _ORDERED_KINDS if ordering else _VALUE_KINDS
        return f"{kinds} AND v.txt", lit.value
    if lit.kind == LitKind.BOOLEAN:
        kinds = "v.kind = 'b'" if ordering else "v.kind IN ('b', 'rb')"
        return f"{kinds} AND v.num", 1.0 if lit.value else 0.0
    kind = TEMPORAL_KINDS[lit.kind]
    kinds = f"v.kind = '{kind}'" if ordering else f"v.kind IN ('{kind}', 'r{kind}')"
    return f"{kinds} AND v.txt", lit.value


def index_conditions(term: Term) -> list[tuple[str, list[Any]]] | None:
    """Conditions on one index row of the term's attribute, any of which makes a match.

    None when the index cannot answer the term: only a plain attribute (no sub-attribute, member
    or trailing path) is indexed, and only its existence, ``==`` (values, ranges, lists) and
    ordering, of numbers, strings, booleans, DateTimes, Dates and Times.
    """
    path = term.path
    if path.attr is None or path.subs or path.member is not None or path.trail is not None:
        return None
    if term.op is None:
        return [("v.kind = 'e'", [])]
    if term.op in _SQL_OPS:
        lit = term.values[0]
        operand = _operand(lit, ordering=True) if isinstance(lit, Literal) else None
        if operand is None:
            return None
        # Relationships never order; a VocabProperty orders by its expanded term.
        return [(f"{operand[0]} {_SQL_OPS[term.op]} %s", [operand[1]])]
    if term.op != Op.EQ:
        return None
    conditions: list[tuple[str, list[Any]]] = []
    for item in term.values:
        if isinstance(item, Range):
            low, high = _operand(item.low, False), _operand(item.high, False)
            if low is None or high is None:
                return None
            conditions.append((f"{low[0]} BETWEEN %s AND %s", [low[1], high[1]]))
            continue
        operand = _operand(item, ordering=False)
        if operand is None:
            return None
        if item.kind == LitKind.STRING and item.vocab not in (None, item.value):
            # A VocabProperty holds the expanded term; other kinds hold the text as written.
            conditions.append(("v.kind IN ('v', 'r') AND v.txt = %s", [item.value]))
            conditions.append(("v.kind = 'c' AND v.txt = %s", [item.vocab]))
        else:
            conditions.append((f"{operand[0]} = %s", [operand[1]]))
    return conditions


# -- terms the index does not answer: a walk over the attribute's instances in the document -----

Sql = tuple[str, list[Any]]


def _json_term(term: Term) -> Filter | None:
    """The term over the stored document, exactly as the reference evaluator reads it: any
    instance of the attribute, then the candidate values of the target (the elements of an array
    value, the languages of a LanguageProperty, ...). None for patterns (Python's regular
    expressions), DateTimes, Dates and Times (Python's ISO 8601 parsing), ordering of booleans,
    and paths with a key PostgreSQL would read as an array index."""
    path = term.path
    if term.op in (Op.MATCH, Op.NO_MATCH):
        return None
    for item in term.values:
        lit = item.low if isinstance(item, Range) else item
        if lit.kind in TEMPORAL_KINDS:
            return None
        if lit.kind == LitKind.BOOLEAN and (term.op in _SQL_OPS or isinstance(item, Range)):
            return None
    keys = [*path.subs, *(path.trail or ()), *([path.member] if path.member else [])]
    if any(_looks_like_index(key) for key in keys):
        return None
    inner, params = _instance(term)
    assert path.attr is not None
    return Filter(
        "EXISTS (SELECT 1 FROM json_array_elements(e.doc -> 'attrs' -> %s) AS i(value) "
        f"WHERE {inner})",
        [path.attr, *params],
    )


def _looks_like_index(key: str) -> bool:
    try:
        int(key)
    except ValueError:
        return False
    return True


def _instance(term: Term) -> Sql:
    """The predicate on one instance ``i.value`` of the attribute."""
    path = term.path
    element = list(path.subs)

    def at(*keys: str) -> Sql:
        return "(i.value #> %s::text[])", [[*element, *keys]]

    if path.member is not None:
        return _generic(term, at(path.member), vocab=False)
    kind = "(i.value #>> %s::text[])"
    kind_params: list[Any] = [[*element, "type"]]
    if path.trail is not None and path.trail != ("*",):
        trail = path.trail
        cases = [
            ("'ListProperty'", at("valueList", *trail)),
            ("'JsonProperty'", at("json", *trail)),
            ("'Property'", at("value", *trail)),
            ("'GeoProperty'", at("value", *trail)),
        ]
        if len(trail) == 1:
            cases.append(("'LanguageProperty'", at("languageMap", *trail)))
        value = "CASE " + kind + " " + " ".join(f"WHEN {w} THEN {sql}" for w, (sql, _) in cases)
        value_params = [*kind_params, *(p for _, (_, ps) in cases for p in ps)]
        return _generic(term, (value + " END", value_params), vocab=False)
    if term.op is None:
        if path.trail == ("*",):
            return f"{kind} = 'LanguageProperty'", kind_params
        sql, params = at()
        return f"{sql} IS NOT NULL", params
    branches: list[tuple[str, Sql]] = [("= 'LanguageProperty'", _language(term, at("languageMap")))]
    if path.trail is None:
        list_sql, list_params = at("valueList")
        json_sql, json_params = at("json")
        value_sql, value_params = at("value")
        value = (
            f"CASE {kind} WHEN 'ListProperty' THEN {list_sql} WHEN 'JsonProperty' THEN {json_sql} "
            f"ELSE {value_sql} END"
        )
        value_kinds = "IN ('Property', 'GeoProperty', 'ListProperty', 'JsonProperty')"
        branches.append(
            (
                value_kinds,
                _generic(term, (value, [*kind_params, *list_params, *json_params, *value_params])),
            )
        )
        branches.append(("= 'VocabProperty'", _generic(term, at("vocab"), vocab=True)))
        if term.op in (Op.EQ, Op.NE):
            branches.append(("= 'Relationship'", _generic(term, at("object"))))
            branches.append(("= 'ListRelationship'", _object_list(term, at("objectList"))))
    sqls = [f"({kind} {kinds} AND {sql})" for kinds, (sql, _) in branches]
    params = [p for _, (_, ps) in branches for p in (*kind_params, *ps)]
    return "(" + " OR ".join(sqls) + ")", params


def _elements(value: str) -> str:
    """The candidates of a JSON value: an array's elements, or the value itself."""
    return (
        f"json_array_elements(CASE WHEN json_typeof({value}) = 'array' THEN {value} "
        f"ELSE json_build_array({value}) END)"
    )


def _generic(term: Term, target: Sql, vocab: bool = False) -> Sql:
    """A term over the JSON value ``target`` of the instance: arrays match element by element."""
    target_sql, target_params = target
    if term.op is None:
        return (
            f"EXISTS (SELECT 1 FROM (SELECT {target_sql} AS x) AS t WHERE t.x IS NOT NULL)",
            target_params,
        )
    compare, compare_params = _compare(term, "c.value", vocab)
    found = (
        f"EXISTS (SELECT 1 FROM {_elements('t.x')} AS c(value) "
        f"WHERE json_typeof(t.x) <> 'object' AND {compare})"
    )
    test = f"t.x IS NOT NULL AND NOT {found}" if term.op == Op.NE else found
    return (
        f"EXISTS (SELECT 1 FROM (SELECT {target_sql} AS x) AS t WHERE {test})",
        [*target_params, *compare_params],
    )


def _object_list(term: Term, target: Sql) -> Sql:
    target_sql, target_params = target
    compare, params = _compare(term, "(c.value -> 'object')", False)
    found = (
        f"EXISTS (SELECT 1 FROM (SELECT {target_sql} AS x) AS t, json_array_elements("
        "CASE WHEN json_typeof(t.x) = 'array' THEN t.x ELSE '[]'::json END) AS c(value) "
        f"WHERE {compare})"
    )
    return (f"NOT {found}" if term.op == Op.NE else found), [*target_params, *params]


def _language(term: Term, target: Sql) -> Sql:
    target_sql, target_params = target
    compare, params = _compare(term, "c.value", False)
    found = (
        f"EXISTS (SELECT 1 FROM (SELECT {target_sql} AS x) AS t, json_each("
        "CASE WHEN json_typeof(t.x) = 'object' THEN t.x ELSE '{}'::json END) AS m, "
        f"{_elements('m.value')} AS c(value) WHERE {compare})"
    )
    return (f"NOT {found}" if term.op == Op.NE else found), [*target_params, *params]


def _compare(term: Term, value: str, vocab: bool) -> Sql:
    """The JSON candidate ``value`` satisfies the term's operator (``!`` dropped); never NULL."""
    op = term.op
    if op in (Op.EQ, Op.NE):
        parts = [_equal(item, value, vocab) for item in term.values]
        sql = "(" + " OR ".join(s for s, _ in parts) + ")"
        return f"coalesce({sql}, FALSE)", [p for _, ps in parts for p in ps]
    assert op in _SQL_OPS
    lit = term.values[0]
    assert isinstance(lit, Literal)
    typed, want = _typed(lit, value)
    return f"coalesce({typed} {_SQL_OPS[op]} {want}, FALSE)", [_param(lit.value, lit.kind)]


def _typed(lit: Literal, value: str) -> tuple[str, str]:
    """SQL for the candidate as a value of the literal's kind (NULL when the kinds differ), and
    the placeholder of a literal to compare it with."""
    if lit.kind == LitKind.NUMBER:
        # numeric: exact for any JSON number (stored numbers are Python's shortest forms).
        return (
            f"(CASE WHEN json_typeof({value}) = 'number' THEN ({value} #>> '{{}}')::numeric END)",
            "%s::numeric",
        )
    return (
        f"(CASE WHEN json_typeof({value}) = 'string' "
        f"""THEN ({value} #>> '{{}}') COLLATE "C" END)""",
        "%s",
    )


def _param(value: Any, kind: LitKind) -> Any:
    """A literal as a bound parameter: numbers as exact decimals."""
    if kind == LitKind.NUMBER:
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    return value


def _equal(item: Value, value: str, vocab: bool) -> Sql:
    if isinstance(item, Range):
        typed, want = _typed(item.low, value)
        return (
            f"({typed} BETWEEN {want} AND {want})",
            [_param(item.low.value, item.low.kind), _param(item.high.value, item.high.kind)],
        )
    if item.kind == LitKind.BOOLEAN:
        return (
            f"(json_typeof({value}) = 'boolean' AND ({value} #>> '{{}}') = %s)",
            ["true" if item.value else "false"],
        )
    wanted = item.vocab if vocab and item.vocab is not None else item.value
    typed, want = _typed(item, value)
    return f"({typed} = {want})", [_param(wanted, item.kind)]


# -- entity members: createdAt, modifiedAt ------------------------------------------------------

# The column as burgo.ngsild.qmatch.temporal_key writes a DateTime (the column holds canonical
# NGSI-LD time stamps).
_CANONICAL = (
    "CASE WHEN {column} <> '' THEN to_char({column}::timestamptz AT TIME ZONE 'UTC', "
    """'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') END"""
)


def _member_term(term: Term) -> Filter:
    """A term on ``createdAt`` or ``modifiedAt`` (stored in canonical form, '' when unset)."""
    column = "e.created_at" if term.path.member == "createdAt" else "e.modified_at"
    exists = f"{column} <> ''"
    if term.op is None:
        return Filter(exists)
    if term.op not in (Op.EQ, Op.NE, *_SQL_OPS):
        return UNKNOWN  # patterns: Python's regular expressions
    comparisons: list[str] = []
    params: list[Any] = []
    for item in term.values:
        lit = item.low if isinstance(item, Range) else item
        if lit.kind == LitKind.DATETIME:
            value = _CANONICAL.format(column=column)
        elif lit.kind == LitKind.STRING:
            value = column
        else:
            continue  # a time stamp is no number, boolean, Date or Time: never equal nor ordered
        if isinstance(item, Range):
            comparisons.append(f"{value} BETWEEN %s AND %s")
            params += [item.low.value, item.high.value]
        elif term.op in _SQL_OPS:
            comparisons.append(f"{value} {_SQL_OPS[term.op]} %s")
            params.append(item.value)
        else:
            comparisons.append(f"{value} = %s")
            params.append(item.value)
    found = "(" + " OR ".join(comparisons) + ")" if comparisons else "FALSE"
    if term.op == Op.NE:
        return Filter(f"({exists} AND NOT {found})", params)
    return Filter(f"({exists} AND {found})", params)


# -- scopeQ -------------------------------------------------------------------------------------


def scope_filter(expr: ScopeExpr) -> Filter:
    """The exact conditions of a scopeQ expression over the entity's scopes."""
    if isinstance(expr, ScopeAnd | ScopeOr):
        parts = [scope_filter(item) for item in expr.items]
        return conjunction(parts) if isinstance(expr, ScopeAnd) else disjunction(parts)
    assert isinstance(expr, ScopeTerm)
    each = "SELECT 1 FROM json_array_elements_text(e.doc -> 'scope') AS s(v)"
    if expr.subtree and not expr.scope:
        return Filter(f"EXISTS ({each})")
    if not expr.subtree:
        return Filter(f"EXISTS ({each} WHERE s.v = %s)", [expr.scope])
    prefix = expr.scope + "/"
    return Filter(
        f"EXISTS ({each} WHERE s.v = %s OR left(s.v, %s) = %s)",
        [expr.scope, len(prefix), prefix],
    )


# -- geo-queries --------------------------------------------------------------------------------


def _box(box: Box) -> str:
    return f"(({box[0]!r},{box[2]!r}),({box[1]!r},{box[3]!r}))"


@dataclass(frozen=True, slots=True)
class GeoSql:
    """A geo-query over the rows ``g`` of ``entity_geo``: which rows may match (``candidate``)
    and the verdict of each (true, false, or NULL when the exact check must decide)."""

    candidate: str
    candidate_params: list[Any]
    verdict: str
    verdict_params: list[Any]

    def some(self, verdict: str) -> Filter:
        """Some geometry of the entity has a verdict satisfying ``verdict`` (e.g. ``IS TRUE``)."""
        return Filter(
            f"EXISTS (SELECT 1 FROM entity_geo AS g WHERE g.tenant = e.tenant "
            f"AND g.entity_id = e.id AND {self.candidate} AND ({self.verdict}) {verdict})",
            [*self.candidate_params, *self.verdict_params],
        )


def geo_sql(geo: GeoQuery, postgis: bool) -> GeoSql:
    """The SQL of a geo-query (``postgis``: the geometries are in ``g.shape``)."""
    candidate = "g.name = %s"
    params: list[Any] = [geo.geoproperty]
    search = geo.search_box()
    if search is not None:
        candidate += " AND g.bounds && %s::box"
        params.append(_box(search))
    branches: list[tuple[str, list[Any], str]] = []
    certain = geo.certain_box()
    if certain is not None:
        branches.append(("NOT (g.bounds && %s::box)", [_box(certain)], "TRUE"))
    if geo.georel == "near" and geo.shape.geom_type == "Point":
        branches.extend(_near_points(geo))
    elif geo.georel in _POSTGIS and postgis:
        reference = orjson.dumps(geo.geometry).decode()
        relation = f"{_POSTGIS[geo.georel]}(g.shape, ST_GeomFromGeoJSON(%s))"
        branches.append((f"g.shape IS NOT NULL AND {relation}", [reference], "TRUE"))
        branches.append(("g.shape IS NOT NULL", [], "FALSE"))
    if not branches:
        return GeoSql(candidate, params, "NULL::boolean", [])
    cases = " ".join(f"WHEN {condition} THEN {result}" for condition, _, result in branches)
    values = [p for _, branch_params, _ in branches for p in branch_params]
    return GeoSql(candidate, params, f"CASE {cases} END", values)


def _haversine_term(distance: float) -> float:
    """The haversine term ``a`` (see :func:`_near_points`) of a distance in metres: a point is
    within ``distance`` exactly when its ``a`` is at most this (-1 for a negative distance,
    which no point is within; 2 for half the earth's circumference or more, which every point
    is)."""
    if distance < 0:
        return -1.0
    angle = distance / (2 * EARTH_RADIUS)
    if angle >= math.pi / 2:
        return 2.0
    return math.sin(angle) ** 2


def _near_points(geo: GeoQuery) -> list[tuple[str, list[Any], str]]:
    """``near`` a point, for Point geometries: the haversine distance against the bounds.

    The distance ``d = 2 R asin(sqrt(min(a, 1)))`` grows with the haversine term ``a``, so each
    bound compares ``a`` with the term of the bound (computed here once, not per row). Distances
    within ``_MARGIN`` metres plus ``_RELATIVE_MARGIN`` of the distance of a bound are left to the
    exact check: ``d <= max - (margin + relative * d)`` is ``d <= (max - margin) / (1 +
    relative)``, and so on for the other three."""
    lon0, lat0 = geo.shape.x, geo.shape.y
    lat1 = math.radians(lat0)
    term = (
        "(power(sin((radians(g.lat) - %s) / 2), 2) "
        "+ %s * cos(radians(g.lat)) * power(sin(radians(g.lon - %s) / 2), 2))"
    )
    term_params: list[Any] = [lat1, math.cos(lat1), lon0]
    inside: list[str] = []
    outside: list[str] = []
    params_in: list[Any] = []
    params_out: list[Any] = []
    if geo.max_distance is not None:
        inside.append(f"{term} <= %s")
        params_in += [
            *term_params,
            _haversine_term((geo.max_distance - _MARGIN) / (1 + _RELATIVE_MARGIN)),
        ]
        outside.append(f"{term} > %s")
        params_out += [
            *term_params,
            _haversine_term((geo.max_distance + _MARGIN) / (1 - _RELATIVE_MARGIN)),
        ]
    if geo.min_distance is not None:
        inside.append(f"{term} >= %s")
        params_in += [
            *term_params,
            _haversine_term((geo.min_distance + _MARGIN) / (1 - _RELATIVE_MARGIN)),
        ]
        outside.append(f"{term} < %s")
        params_out += [
            *term_params,
            _haversine_term((geo.min_distance - _MARGIN) / (1 + _RELATIVE_MARGIN)),
        ]
    if not inside:
        # near without a distance: every point matches.
        return [("TRUE", [], "TRUE")]
    return [
        (f"g.lon IS NOT NULL AND {' AND '.join(inside)}", params_in, "TRUE"),
        (f"g.lon IS NOT NULL AND ({' OR '.join(outside)})", params_out, "FALSE"),
    ]
