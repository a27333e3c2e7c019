"""SQL for the NGSI-LD query language on the SQLite entities table.

A q expression becomes a WHERE fragment over one ``entities`` row. The common terms on a plain
attribute (existence, ``==`` and ordering of numbers and strings) are answered from the
attribute-value index of migration 0002: either a ``pk IN (...)`` list built once per query, or a
look-up of the row's own index entries, whichever the caller's plan finds cheaper. Every other
term walks the instances of its attribute with ``json_each`` (any instance may match), then the
candidate values of the target (the elements of an array value, the languages of a
LanguageProperty, ...), with exactly the rules of the reference evaluator in
:mod:`burgo.ngsild.qmatch`. Every value, attribute IRI and JSON path is a bound parameter.
DateTime/Date/Time and regular expressions go through two SQL functions
(:func:`register_functions`) that reuse the evaluator's own code.
"""

# SQL is assembled from fixed fragments and the checked alias; every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from burgo.ngsild.qmatch import (
    TEMPORAL,
    Absent,
    And,
    Literal,
    LitKind,
    Op,
    Or,
    Path,
    QExpr,
    Range,
    ScopeAnd,
    ScopeExpr,
    ScopeOr,
    ScopeTerm,
    Term,
    Value,
    pattern_matches,
    temporal_key,
)

_ALIAS = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SQL_OPS = {Op.GT: ">", Op.GE: ">=", Op.LT: "<", Op.LE: "<="}
_NUMERIC = "IN ('integer', 'real')"

Sql = tuple[str, list[Any]]
Probe = Callable[[Term], bool]


def _lists(term: Term) -> bool:
    return False


def register_functions(conn: sqlite3.Connection) -> None:
    """Add the functions q fragments call to a connection."""
    conn.create_function("q_temporal", 3, _sql_temporal, deterministic=True)
    conn.create_function("q_regexp", 2, _sql_regexp, deterministic=True)


def _sql_temporal(kind: str, json_type: str | None, value: Any) -> str | None:
    if json_type == "text":
        return temporal_key(kind, value)
    if json_type == "object" and isinstance(value, str):
        return temporal_key(kind, json.loads(value))
    return None


def _sql_regexp(pattern: str, text: Any) -> bool:
    return pattern_matches(pattern, text)


def _json_key(name: str) -> str:
    return '."' + name + '"'


def q_to_sql(expr: QExpr, alias: str, probe: Probe = _lists) -> tuple[str, list[Any]]:
    """A WHERE fragment over entities row ``alias`` selecting what ``expr`` matches.

    An indexed term for which ``probe`` is true looks up the row's own index entries (cheap
    when the query visits few rows); the others select their keys once per query (cheap when it
    visits many)."""
    if not _ALIAS.fullmatch(alias):
        raise ValueError(f"Not an SQL alias: {alias!r}")
    return _expr(expr, alias, probe)


def _expr(expr: QExpr, alias: str, probe: Probe) -> Sql:
    if isinstance(expr, And | Or):
        parts = [_expr(item, alias, probe) for item in expr.items]
        joiner = " AND " if isinstance(expr, And) else " OR "
        return "(" + joiner.join(sql for sql, _ in parts) + ")", [p for _, ps in parts for p in ps]
    if isinstance(expr, Absent):
        sql, params = _term(Term(expr.path), alias, probe)
        return f"NOT {sql}", params
    return _term(expr, alias, probe)


@dataclass(frozen=True, slots=True)
class Candidates:
    """An indexed term every match satisfies, and a subquery of ``entity_pk`` holding its keys."""

    term: Term
    sql: str
    params: list[Any]


def q_candidates(expr: QExpr) -> list[Candidates]:
    """The indexed terms every match of ``expr`` must satisfy, each with the keys it allows.

    For a query planner: each subquery holds every match (maybe more); when one selects few
    rows, driving the query from it beats walking a whole type.
    """
    items = expr.items if isinstance(expr, And) else (expr,)
    found = []
    for item in items:
        if isinstance(item, Term):
            conditions = _index_conditions(item)
            if conditions is not None:
                found.append(Candidates(item, *_key_list(item.path.attr, conditions)))
    return found


# -- terms answered by the attribute-value index (migration 0002, store/sqlite/qindex.py) ------

_INDEXED_KINDS = frozenset({LitKind.NUMBER, LitKind.STRING})


def _indexed(term: Term, alias: str, probe: Probe) -> Sql | None:
    """The term through the ``attr_values`` index, or None when the index cannot answer it."""
    conditions = _index_conditions(term)
    if conditions is None:
        return None
    if not probe(term):
        sql, params = _key_list(term.path.attr, conditions)
        return f"{alias}.pk IN ({sql})", params
    # The entity's own rows of the attribute, found by key (the planner would rather scan the
    # value index by attribute, which is the list form's job).
    index = "attr_values_exists" if term.op is None else "attr_values_entity"
    either = " OR ".join(f"({sql})" for sql, _ in conditions)
    return (
        f"EXISTS (SELECT 1 FROM attr_values INDEXED BY {index} "
        f"WHERE entity_pk = {alias}.pk AND attr = ? AND ({either}))",
        [term.path.attr, *(p for _, params in conditions for p in params)],
    )


def _key_list(attr: str | None, conditions: list[Sql]) -> Sql:
    """A subquery of the keys of the entities with an index row of ``attr`` meeting a condition."""
    head = "SELECT entity_pk FROM attr_values WHERE attr = ? AND "
    sql = " UNION ALL ".join(head + condition for condition, _ in conditions)
    return sql, [p for _, params in conditions for p in (attr, *params)]


def _index_conditions(term: Term) -> list[Sql] | None:
    """Conditions on one ``attr_values`` row of the term's attribute, any of which makes a match.

    None when the index cannot answer the term: only a plain attribute (no sub-attribute, member
    or trailing path) is indexed, and only its existence, ``==`` on numbers, strings and their
    ranges, and ordering of numbers and strings.
    """
    path = term.path
    if path.attr is None or path.subs or path.member is not None or path.trail is not None:
        return None
    if term.op is None:
        return [("kind = 'e'", [])]
    if term.op in _SQL_OPS:
        lit = term.values[0]
        if not isinstance(lit, Literal) or lit.kind not in _INDEXED_KINDS:
            return None
        column = "num" if lit.kind == LitKind.NUMBER else "txt"
        # Relationships never order; a VocabProperty orders by its expanded term.
        return [(f"{column} {_SQL_OPS[term.op]} ? AND kind <> 'r'", [lit.value])]
    if term.op != Op.EQ:
        return None
    conditions: list[Sql] = []
    for item in term.values:
        low = item.low if isinstance(item, Range) else item
        if low.kind not in _INDEXED_KINDS:
            return None
        column = "num" if low.kind == LitKind.NUMBER else "txt"
        if isinstance(item, Range):
            conditions.append((f"{column} BETWEEN ? AND ?", [item.low.value, item.high.value]))
        elif item.kind == LitKind.STRING and item.vocab not in (None, item.value):
            # A VocabProperty holds the expanded term; other kinds hold the text as written.
            conditions.append(("txt = ? AND kind <> 'c'", [item.value]))
            conditions.append(("txt = ? AND kind = 'c'", [item.vocab]))
        else:
            conditions.append((f"{column} = ?", [item.value]))
    return conditions


class _Paths:
    """JSON paths bound once, as columns of a one-row subquery, so SQL may repeat them freely."""

    def __init__(self) -> None:
        self.values: list[str] = []

    def col(self, value: str) -> str:
        self.values.append(value)
        return f"p.k{len(self.values) - 1}"

    def table(self) -> str:
        columns = ", ".join(f"? AS k{n}" for n in range(len(self.values)))
        return f"(SELECT {columns}) AS p"


def _term(term: Term, alias: str, probe: Probe) -> Sql:
    indexed = _indexed(term, alias, probe)
    if indexed is not None:
        return indexed
    path = term.path
    if path.attr is None:
        column = f"{alias}.created_at" if path.member == "createdAt" else f"{alias}.modified_at"
        exists = f"{column} <> ''"
        if term.op is None:
            return exists, []
        sql, params = _compare(term, "'text'", column, False)
        if term.op in (Op.NE, Op.NO_MATCH):
            return f"({exists} AND NOT {sql})", params
        return f"({exists} AND {sql})", params
    paths = _Paths()
    attr = paths.col("$.attrs" + _json_key(path.attr))
    inner, params = _instance(term, path, paths)
    return (
        f"EXISTS (SELECT 1 FROM {paths.table()}, json_each({alias}.doc, {attr}) AS i "
        f"WHERE {inner})",
        [*paths.values, *params],
    )


def _instance(term: Term, path: Path, paths: _Paths) -> Sql:
    """The predicate on one instance ``i.value`` of the attribute."""
    element = "$" + "".join(_json_key(sub) for sub in path.subs)
    if path.member is not None:
        return _generic(term, paths.col(element + "." + path.member), vocab=False)
    kind = f"json_extract(i.value, {paths.col(element + '.type')})"
    if path.trail is not None and path.trail != ("*",):
        trail = "".join(_json_key(name) for name in path.trail)
        value = paths.col(element + ".value" + trail)
        language = paths.col(element + ".languageMap" + trail) if len(path.trail) == 1 else "NULL"
        value_path = (
            f"CASE {kind} WHEN 'ListProperty' THEN {paths.col(element + '.valueList' + trail)} "
            f"WHEN 'JsonProperty' THEN {paths.col(element + '.json' + trail)} "
            f"WHEN 'Property' THEN {value} WHEN 'GeoProperty' THEN {value} "
            f"WHEN 'LanguageProperty' THEN {language} END"
        )
        return _generic(term, value_path, vocab=False)
    if term.op is None:
        if path.trail == ("*",):
            return f"{kind} = 'LanguageProperty'", []
        return f"json_type(i.value, {paths.col(element)}) IS NOT NULL", []
    branches: list[tuple[str, Sql]] = [
        ("= 'LanguageProperty'", _language(term, paths.col(element + ".languageMap")))
    ]
    if path.trail is None:
        value_path = (
            f"CASE {kind} WHEN 'ListProperty' THEN {paths.col(element + '.valueList')} "
            f"WHEN 'JsonProperty' THEN {paths.col(element + '.json')} "
            f"ELSE {paths.col(element + '.value')} END"
        )
        value_kinds = "IN ('Property', 'GeoProperty', 'ListProperty', 'JsonProperty')"
        branches.append((value_kinds, _generic(term, value_path, vocab=False)))
        vocab = paths.col(element + ".vocab")
        branches.append(("= 'VocabProperty'", _generic(term, vocab, vocab=True)))
        if term.op in (Op.EQ, Op.NE):
            relationship = paths.col(element + ".object")
            branches.append(("= 'Relationship'", _generic(term, relationship, vocab=False)))
            object_list = paths.col(element + ".objectList")
            branches.append(("= 'ListRelationship'", _object_list(term, object_list)))
    sqls = [f"({kind} {kinds} AND {sql})" for kinds, (sql, _) in branches]
    return "(" + " OR ".join(sqls) + ")", [p for _, (_, ps) in branches for p in ps]


def _generic(term: Term, path: str, vocab: bool) -> Sql:
    """A term over the JSON value at a path of the instance: arrays match element by element."""
    at = f"i.value, {path}"
    exists = f"json_type({at}) IS NOT NULL"
    if term.op is None:
        return exists, []
    obj_sql, obj_params = _compare(term, "'object'", f"json_extract({at})", vocab)
    each_sql, each_params = _compare(term, "c.type", "c.value", vocab)
    each = f"SELECT 1 FROM json_each({at}) AS c WHERE json_type({at}) <> 'object'"
    found = (
        f"(coalesce(json_type({at}) = 'object', 0) AND {obj_sql} OR EXISTS ({each} AND {each_sql}))"
    )
    params = [*obj_params, *each_params]
    if term.op == Op.NE:
        return f"({exists} AND NOT {found})", params
    if term.op == Op.NO_MATCH:
        # Some candidate is a string, and no string matches.
        return f"(EXISTS ({each} AND c.type = 'text') AND NOT {found})", params
    return found, params


def _object_list(term: Term, list_path: str) -> Sql:
    at = "c.value, '$.object'"
    sql, params = _compare(term, f"json_type({at})", f"json_extract({at})", False)
    found = f"EXISTS (SELECT 1 FROM json_each(i.value, {list_path}) AS c WHERE {sql})"
    return (f"NOT {found}" if term.op == Op.NE else found), params


def _language(term: Term, map_path: str) -> Sql:
    sql, params = _compare(term, "c.type", "c.value", False)
    leaves = (
        f"SELECT 1 FROM json_tree(i.value, {map_path}) AS c WHERE c.type NOT IN ('object', 'array')"
    )
    found = f"EXISTS ({leaves} AND {sql})"
    if term.op == Op.NO_MATCH:
        return f"(EXISTS ({leaves} AND c.type = 'text') AND NOT {found})", params
    if term.op == Op.NE:
        return f"NOT {found}", params
    return found, params


def _compare(term: Term, json_type: str, value: str, vocab: bool) -> Sql:
    """The candidate (``json_type``, ``value``) satisfies the term's operator (``!`` dropped)."""
    sql, params = _compare_or_null(term, json_type, value, vocab)
    return f"coalesce({sql}, 0)", params


def _compare_or_null(term: Term, json_type: str, value: str, vocab: bool) -> Sql:
    op = term.op
    if op in (Op.MATCH, Op.NO_MATCH):
        return f"({json_type} = 'text' AND q_regexp(?, {value}))", [term.pattern]
    if op in (Op.EQ, Op.NE):
        parts = [_equal(item, json_type, value, vocab) for item in term.values]
        return "(" + " OR ".join(s for s, _ in parts) + ")", [p for _, ps in parts for p in ps]
    assert op is not None
    lit = term.values[0]
    assert isinstance(lit, Literal)
    typed, params = _typed(lit, json_type, value)
    return f"({typed} {_SQL_OPS[op]} ?)", [*params, lit.value]


def _typed(lit: Literal, json_type: str, value: str) -> Sql:
    """SQL for the candidate as a value of the literal's kind (NULL when the kinds differ)."""
    if lit.kind in TEMPORAL:
        return f"q_temporal(?, {json_type}, {value})", [lit.kind.value]
    if lit.kind == LitKind.NUMBER:
        return f"(CASE WHEN {json_type} {_NUMERIC} THEN {value} END)", []
    if lit.kind == LitKind.BOOLEAN:
        return f"(CASE WHEN {json_type} IN ('true', 'false') THEN {json_type} END)", []
    return f"(CASE WHEN {json_type} = 'text' THEN {value} END)", []


def _equal(item: Value, json_type: str, value: str, vocab: bool) -> Sql:
    if isinstance(item, Range):
        typed, params = _typed(item.low, json_type, value)
        return f"({typed} BETWEEN ? AND ?)", [*params, item.low.value, item.high.value]
    if item.kind == LitKind.BOOLEAN:
        return f"({json_type} = ?)", ["true" if item.value else "false"]
    want = item.vocab if vocab and item.vocab is not None else item.value
    typed, params = _typed(item, json_type, value)
    return f"({typed} = ?)", [*params, want]


def scope_to_sql(expr: ScopeExpr, alias: str) -> tuple[str, list[Any]]:
    """A WHERE fragment over entities row ``alias`` selecting what the scopeQ matches."""
    if not _ALIAS.fullmatch(alias):
        raise ValueError(f"Not an SQL alias: {alias!r}")
    if isinstance(expr, ScopeAnd | ScopeOr):
        parts = [scope_to_sql(item, alias) for item in expr.items]
        joiner = " AND " if isinstance(expr, ScopeAnd) else " OR "
        return "(" + joiner.join(sql for sql, _ in parts) + ")", [p for _, ps in parts for p in ps]
    assert isinstance(expr, ScopeTerm)
    each = f"SELECT 1 FROM json_each({alias}.doc, '$.scope') AS s"
    if expr.subtree and not expr.scope:
        return f"EXISTS ({each})", []
    if not expr.subtree:
        return f"EXISTS ({each} WHERE s.value = ?)", [expr.scope]
    prefix = expr.scope + "/"
    return (
        f"EXISTS ({each} WHERE s.value = ? OR substr(s.value, 1, ?) = ?)",
        [expr.scope, len(prefix), prefix],
    )


__all__ = ["Candidates", "Probe", "q_candidates", "q_to_sql", "register_functions", "scope_to_sql"]
