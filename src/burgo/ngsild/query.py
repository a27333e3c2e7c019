"""Entity queries (ETSI GS CIM 009, 5.7.2 and 4.17): one value object every query parses into.

Parsed once at the edge from URL parameters or a Query body; the store turns it into SQL and
:func:`matches` is the in-memory reference both must agree with.

>>> query = EntityQuery(selectors=(EntitySelector(types=parse_type_expression("Room", str)),))
>>> query.selectors[0].types
TypeExpr(op='or', items=('Room',))
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from burgo.ngsild.errors import BadRequestData, TooManyResults
from burgo.ngsild.geoquery import GeoQuery, geo_matches
from burgo.ngsild.model import Entity
from burgo.ngsild.qlang import QExpr, ScopeExpr, evaluate, evaluate_scope

__all__ = [
    "EntityQuery",
    "EntitySelector",
    "GeoQuery",
    "TypeExpr",
    "check_id_pattern",
    "matches",
    "parse_paging",
    "parse_type_expression",
    "type_matches",
]

Expand = Callable[[str], str]
_TYPE_TOKEN = re.compile(r"\s*([,;|()]|[^,;|()\s]+)")


@dataclass(frozen=True, slots=True)
class TypeExpr:
    """A type expression: ``op`` ("or" or "and") over type IRIs and nested expressions."""

    op: str
    items: tuple[TypeExpr | str, ...]

    def names(self) -> frozenset[str]:
        """Every type IRI the expression mentions."""
        found: set[str] = set()
        for item in self.items:
            found |= item.names() if isinstance(item, TypeExpr) else {item}
        return frozenset(found)

    def is_plain_or(self) -> bool:
        """Whether the expression is a plain list of alternatives (``A,B|C``)."""
        return self.op == "or" and all(isinstance(item, str) for item in self.items)


def parse_type_expression(text: str, expand: Expand) -> TypeExpr:
    """Parse ``A,B``, ``A;B``, ``A|B`` and parentheses (``;`` binds tighter), names expanded."""
    tokens = _type_tokens(text)
    if not tokens:
        raise BadRequestData("The type selector is empty")
    position = 0

    def expression() -> TypeExpr:
        nonlocal position
        items = [conjunction()]
        while position < len(tokens) and tokens[position] in (",", "|"):
            position += 1
            items.append(conjunction())
        return TypeExpr("or", tuple(items))

    def conjunction() -> TypeExpr | str:
        nonlocal position
        items = [factor()]
        while position < len(tokens) and tokens[position] == ";":
            position += 1
            items.append(factor())
        return items[0] if len(items) == 1 else TypeExpr("and", tuple(items))

    def factor() -> TypeExpr | str:
        nonlocal position
        if position >= len(tokens):
            raise BadRequestData(f"The type expression {text!r} ends too early")
        part = tokens[position]
        position += 1
        if part == "(":
            inner = expression()
            if position >= len(tokens) or tokens[position] != ")":
                raise BadRequestData(f"The type expression {text!r} misses a ')'")
            position += 1
            return inner
        if part in ",;|)":
            raise BadRequestData(f"The type expression {text!r} has {part!r} where a type goes")
        _check_type_name(part)
        return expand(part)

    parsed = expression()
    if position != len(tokens):
        raise BadRequestData(f"The type expression {text!r} has {tokens[position]!r} too many")
    return parsed


def _type_tokens(text: str) -> list[str]:
    tokens, position = [], 0
    stripped = text.rstrip()
    while position < len(stripped):
        match = _TYPE_TOKEN.match(stripped, position)
        if match is None:  # pragma: no cover - the pattern matches any non-space character
            raise BadRequestData(f"Cannot read the type expression {text!r}")
        tokens.append(match[1])
        position = match.end()
    return tokens


def _check_type_name(name: str) -> None:
    if any(char in name for char in "<>\"'=\\"):
        raise BadRequestData(f"{name!r} is not a valid entity type name")


def type_matches(expr: TypeExpr | str, types: tuple[str, ...] | frozenset[str]) -> bool:
    """Whether an entity with ``types`` satisfies the type expression."""
    if isinstance(expr, str):
        return expr in types
    results = (type_matches(item, types) for item in expr.items)
    return any(results) if expr.op == "or" else all(results)


def check_id_pattern(pattern: str) -> str:
    """The pattern, or BadRequestData when it is not a valid regular expression."""
    try:
        compiled_pattern(pattern)
    except re.error as exc:
        raise BadRequestData(
            f"idPattern {pattern!r} is not a valid regular expression: {exc}"
        ) from None
    return pattern


@lru_cache(maxsize=256)
def compiled_pattern(pattern: str) -> re.Pattern[str]:
    """The compiled regular expression (cached: the store calls it once per row)."""
    return re.compile(pattern)


@dataclass(frozen=True, slots=True)
class EntitySelector:
    """Which entities by type, id and id pattern (all given conditions must hold)."""

    types: TypeExpr | None = None
    ids: tuple[str, ...] = ()
    id_pattern: str | None = None

    def is_empty(self) -> bool:
        """Whether the selector selects nothing in particular."""
        return self.types is None and not self.ids and self.id_pattern is None

    def matches(self, entity: Entity) -> bool:
        """Whether ``entity`` is selected."""
        if self.types is not None and not type_matches(self.types, entity.types):
            return False
        if self.ids and entity.id not in self.ids:
            return False
        return self.id_pattern is None or bool(compiled_pattern(self.id_pattern).search(entity.id))


@dataclass(frozen=True, slots=True)
class EntityQuery:
    """A query on entities: selectors (any may match), attrs, q, scopeQ, geo-query and paging.

    ``attrs`` (expanded names) keeps entities holding at least one of them; ``count`` asks for
    the total number of matches; ``limit`` and ``offset`` choose the page (by entity id).
    """

    selectors: tuple[EntitySelector, ...] = ()
    attrs: frozenset[str] | None = None
    q: QExpr | None = None
    scope_q: ScopeExpr | None = None
    geo: GeoQuery | None = None
    limit: int = 20
    offset: int = 0
    count: bool = False

    def has_selector(self) -> bool:
        """Whether any selector at all is given (a query without one is refused)."""
        return (
            any(not s.is_empty() for s in self.selectors)
            or self.attrs is not None
            or self.q is not None
            or self.geo is not None
        )


def matches(entity: Entity, query: EntityQuery) -> bool:
    """Whether ``entity`` is part of the answer to ``query`` (paging aside): the reference."""
    if query.selectors and not any(s.matches(entity) for s in query.selectors):
        return False
    if query.attrs is not None and not any(name in entity.attrs for name in query.attrs):
        return False
    if query.scope_q is not None and not evaluate_scope(query.scope_q, entity.scope):
        return False
    if query.geo is not None and not geo_matches(query.geo, entity):
        return False
    return query.q is None or evaluate(query.q, entity)


def parse_paging(
    limit: str | None, offset: str | None, *, count: bool, default: int, maximum: int
) -> tuple[int, int]:
    """``limit`` and ``offset`` checked: integers, not negative, limit 0 only with count=true."""
    value = _integer(limit, "limit", default)
    start = _integer(offset, "offset", 0)
    if value < 0 or start < 0:
        raise BadRequestData("limit and offset cannot be negative")
    if value == 0 and not count:
        raise BadRequestData("limit=0 is only allowed together with count=true")
    if value > maximum:
        raise TooManyResults(f"You asked for {value} results; this broker gives at most {maximum}")
    return value, start


def _integer(raw: str | None, name: str, default: int) -> int:
    if raw is None:
        return default
    try:
        return int(raw, 10)
    except ValueError:
        raise BadRequestData(f"{name} must be an integer, got {raw!r}") from None
