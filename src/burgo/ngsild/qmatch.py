"""The q and scopeQ expression trees (ETSI GS CIM 009, 4.9) and the reference evaluator.

A q expression (parsed by :mod:`burgo.ngsild.qlang`) is a small tree of :class:`Term`,
:class:`Absent`, :class:`And` and :class:`Or` values; :func:`evaluate` is the reference evaluator
(used by subscriptions and by the tests of every store's SQL).
Matching rules, chosen from clause 4.9:

- a term matches when ANY instance of the attribute (any datasetId) satisfies it;
- a target value that is an array is matched element by element (``==``, ``>``, ``~=``: any element;
  ``!=``, ``!~=``: no element may be equal / match);
- values of different data types never compare (``a>5`` does not match ``"7"``), except that
  ``!=`` matches them, as the clause says;
- ``!=`` and ``!~=`` need the target element to exist;
- Relationships compare their object(s), only with ``==`` and ``!=``; LanguageProperties compare any
  language unless a trailing ``[lang]`` picks one; VocabProperties compare expanded terms.

>>> term = Term(Path("https://example.org/t"), Op.GT, (Literal(LitKind.NUMBER, 20),))
>>> evaluate(term, Entity("urn:x:1", ("https://example.org/Room",)))
False
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from enum import StrEnum
from functools import lru_cache
from typing import Any

from burgo.ngsild.model import Attribute, AttrKind, Entity

# Members of an attribute a path may end with (not expanded: they are core keywords).
ATTRIBUTE_MEMBERS = ("observedAt", "createdAt", "modifiedAt", "unitCode", "datasetId")
ENTITY_MEMBERS = ("createdAt", "modifiedAt")
VALUE_KINDS = (
    AttrKind.PROPERTY,
    AttrKind.GEO_PROPERTY,
    AttrKind.LIST_PROPERTY,
    AttrKind.JSON_PROPERTY,
)


class Op(StrEnum):
    """The comparison operators of a query term."""

    EQ = "=="
    NE = "!="
    GE = ">="
    GT = ">"
    LE = "<="
    LT = "<"
    MATCH = "~="
    NO_MATCH = "!~="


class LitKind(StrEnum):
    """The data types of query values; values of different kinds never compare equal."""

    NUMBER = "number"
    STRING = "string"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    DATE = "date"
    TIME = "time"


ORDERED = frozenset({LitKind.NUMBER, LitKind.STRING, LitKind.DATETIME, LitKind.DATE, LitKind.TIME})
TEMPORAL = frozenset({LitKind.DATETIME, LitKind.DATE, LitKind.TIME})


@dataclass(frozen=True, slots=True)
class Literal:
    """A query value: its kind, its comparable value, and the term expansion used for vocabs."""

    kind: LitKind
    value: Any
    vocab: str | None = None


@dataclass(frozen=True, slots=True)
class Range:
    """An inclusive range ``low..high`` of one kind."""

    low: Literal
    high: Literal


Value = Literal | Range


@dataclass(frozen=True, slots=True)
class Path:
    """An attribute path: attribute IRI, sub-attribute IRIs, an attribute member, a trailing path.

    ``attr`` is None when the path names an entity member (``createdAt``, ``modifiedAt``).
    """

    attr: str | None
    subs: tuple[str, ...] = ()
    member: str | None = None
    trail: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Term:
    """``path`` alone (existence), ``path op values`` or ``path op pattern``."""

    path: Path
    op: Op | None = None
    values: tuple[Value, ...] = ()
    pattern: str | None = None


@dataclass(frozen=True, slots=True)
class Absent:
    """``!path``: the entity has no such target element."""

    path: Path


@dataclass(frozen=True, slots=True)
class And:
    """All of the items match."""

    items: tuple[QExpr, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """Any of the items matches."""

    items: tuple[QExpr, ...]


QExpr = Term | Absent | And | Or


# -- values shared by the evaluator and the stores ---------------------------------------------

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME = re.compile(r"\d{2}:\d{2}(:\d{2}([.,]\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?")


def temporal_key(kind: str, value: Any) -> str | None:
    """The sortable canonical text of a DateTime, Date or Time value, or None if it is not one.

    A value is a string or a JSON-LD typed value ``{"@type": ..., "@value": "..."}``.
    """
    if isinstance(value, dict):
        value = value.get("@value")
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        if kind == LitKind.DATETIME:
            if "T" not in value or not _DATE.match(value):
                return None
            moment = datetime.fromisoformat(value.replace(",", "."))
            if moment.tzinfo is None:
                return None
            utc = moment.astimezone(UTC)
            return f"{utc.year:04d}-{utc.strftime('%m-%dT%H:%M:%S')}.{utc.microsecond:06d}Z"
        if kind == LitKind.DATE:
            if not _DATE.fullmatch(value):
                return None
            return date.fromisoformat(value).isoformat()
        if kind == LitKind.TIME:
            if not _TIME.fullmatch(value):
                return None
            parsed = time.fromisoformat(value.replace(",", "."))
            if parsed.utcoffset():
                return None  # only UTC times compare: a time alone has no date to shift across
            return parsed.replace(tzinfo=None).isoformat(timespec="microseconds")
    except (ValueError, OverflowError):
        return None
    return None


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """The compiled regular expression of a ``~=`` term (cached)."""
    return re.compile(pattern)


def pattern_matches(pattern: str, text: object) -> bool:
    """Whether ``text`` is a string in which ``pattern`` finds a match."""
    return isinstance(text, str) and compile_pattern(pattern).search(text) is not None


def number_of(value: Any) -> int | float | None:
    """``value`` if it is a JSON number (not a boolean), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _comparable(lit: Literal, candidate: Any, vocab: bool) -> Any:
    """The candidate as a value of ``lit``'s kind, or None when the kinds differ."""
    if lit.kind == LitKind.NUMBER:
        return number_of(candidate)
    if lit.kind == LitKind.STRING:
        return candidate if isinstance(candidate, str) else None
    if lit.kind == LitKind.BOOLEAN:
        return candidate if isinstance(candidate, bool) else None
    return temporal_key(lit.kind, candidate)


def _lit_value(lit: Literal, vocab: bool) -> Any:
    return lit.vocab if vocab and lit.vocab is not None else lit.value


def _equals(value: Value, candidate: Any, vocab: bool) -> bool:
    if isinstance(value, Range):
        have = _comparable(value.low, candidate, vocab)
        return have is not None and value.low.value <= have <= value.high.value
    have = _comparable(value, candidate, vocab)
    return have is not None and have == _lit_value(value, vocab)


def _orders(op: Op, lit: Literal, candidate: Any) -> bool:
    have = _comparable(lit, candidate, False)
    if have is None:
        return False
    want = lit.value
    if op == Op.GT:
        return bool(have > want)
    if op == Op.GE:
        return bool(have >= want)
    if op == Op.LT:
        return bool(have < want)
    return bool(have <= want)


# -- the reference evaluator -------------------------------------------------------------------

_MISSING = object()


@dataclass(frozen=True, slots=True)
class _Target:
    kind: AttrKind | None  # None: an attribute or entity member (a plain JSON value)
    value: Any


def _member(attr: Attribute, name: str) -> Any:
    return {
        "observedAt": attr.observed_at,
        "createdAt": attr.created_at,
        "modifiedAt": attr.modified_at,
        "unitCode": attr.unit_code,
        "datasetId": attr.dataset_id,
    }[name]


def _follow(value: Any, trail: tuple[str, ...]) -> Any:
    for key in trail:
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


def _targets(path: Path, entity: Entity) -> Iterator[_Target]:
    if path.attr is None:
        member = entity.created_at if path.member == "createdAt" else entity.modified_at
        if member is not None:
            yield _Target(None, member)
        return
    for instance in entity.attrs.get(path.attr, ()):
        element: Attribute | None = instance
        for name in path.subs:
            element = element.sub.get(name) if element is not None else None
        if element is None:
            continue
        if path.member is not None:
            member = _member(element, path.member)
            if member is not None:
                yield _Target(None, member)
            continue
        if path.trail is None:
            yield _Target(element.kind, element.value)
            continue
        if element.kind in VALUE_KINDS:
            found = _follow(element.value, path.trail)
        elif element.kind == AttrKind.LANGUAGE_PROPERTY and len(path.trail) == 1:
            if path.trail[0] == "*":
                yield _Target(element.kind, element.value)
                continue
            found = _follow(element.value, path.trail)
        else:
            found = _MISSING
        if found is not _MISSING:
            # A trailing path reaches into a plain JSON value, whatever the attribute's kind.
            yield _Target(None, found)


def _candidates(target: _Target) -> list[Any]:
    return _values_compared(target.kind, target.value)


def _values_compared(kind: AttrKind | None, value: Any) -> list[Any]:
    if kind == AttrKind.LIST_RELATIONSHIP:
        return [item.get("object") for item in value if isinstance(item, dict)]
    if kind == AttrKind.LANGUAGE_PROPERTY:
        found: list[Any] = []
        for text in value.values():
            found.extend(text if isinstance(text, list) else [text])
        return found
    return list(value) if isinstance(value, list) else [value]


def attribute_candidates(attr: Attribute) -> list[Any]:
    """The values a top-level term compares for one instance (what a value index must hold)."""
    return _values_compared(attr.kind, attr.value)


def _target_matches(term: Term, target: _Target) -> bool:
    op = term.op
    relationship = target.kind in (AttrKind.RELATIONSHIP, AttrKind.LIST_RELATIONSHIP)
    if relationship and op not in (Op.EQ, Op.NE):
        return False
    vocab = target.kind == AttrKind.VOCAB_PROPERTY
    candidates = _candidates(target)
    if op in (Op.EQ, Op.NE):
        equal = any(_equals(v, c, vocab) for v in term.values for c in candidates)
        return equal if op == Op.EQ else not equal
    if op in (Op.MATCH, Op.NO_MATCH):
        assert term.pattern is not None
        texts = [c for c in candidates if isinstance(c, str)]
        found = any(pattern_matches(term.pattern, c) for c in texts)
        return found if op == Op.MATCH else bool(texts) and not found
    lit = term.values[0]
    assert isinstance(lit, Literal) and op is not None
    return any(_orders(op, lit, c) for c in candidates)


def evaluate(expr: QExpr, entity: Entity) -> bool:
    """Whether ``entity`` matches the q expression."""
    if isinstance(expr, And):
        return all(evaluate(item, entity) for item in expr.items)
    if isinstance(expr, Or):
        return any(evaluate(item, entity) for item in expr.items)
    if isinstance(expr, Absent):
        return next(_targets(expr.path, entity), None) is None
    if expr.op is None:
        return next(_targets(expr.path, entity), None) is not None
    return any(_target_matches(expr, target) for target in _targets(expr.path, entity))


# -- scopeQ ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScopeTerm:
    """A scope (``/a/b``), or a subtree (``/a/#``: ``/a`` and below; ``/#``: any scope)."""

    scope: str
    subtree: bool = False


@dataclass(frozen=True, slots=True)
class ScopeAnd:
    """All of the items match."""

    items: tuple[ScopeExpr, ...]


@dataclass(frozen=True, slots=True)
class ScopeOr:
    """Any of the items matches."""

    items: tuple[ScopeExpr, ...]


ScopeExpr = ScopeTerm | ScopeAnd | ScopeOr


def scope_term_matches(term: ScopeTerm, scope: str) -> bool:
    """Whether one scope of an entity satisfies a scope term."""
    if not term.subtree:
        return scope == term.scope
    return term.scope == "" or scope == term.scope or scope.startswith(term.scope + "/")


def evaluate_scope(expr: ScopeExpr, scopes: tuple[str, ...]) -> bool:
    """Whether an entity with ``scopes`` matches the scopeQ expression."""
    if isinstance(expr, ScopeAnd):
        return all(evaluate_scope(item, scopes) for item in expr.items)
    if isinstance(expr, ScopeOr):
        return any(evaluate_scope(item, scopes) for item in expr.items)
    return any(scope_term_matches(expr, scope) for scope in scopes)
