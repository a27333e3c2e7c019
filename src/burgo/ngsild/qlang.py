"""The NGSI-LD query language (ETSI GS CIM 009, clause 4.9): parsers for q and scopeQ.

The grammar is the clause's ABNF, with what brokers commonly add: nested parentheses, ``!attr``
for absence, ``[*]`` for any language, and unquoted URIs in value lists. The parsers raise
BadRequestData naming the character where the problem is, and nothing else, whatever the input.
Expression trees and their evaluation live in :mod:`burgo.ngsild.qmatch`.

>>> parse_q("speed>50;brand!=\\"Mercedes\\"", lambda name: "https://example.org/" + name).items[0]
Term(path=Path(attr='https://example.org/speed', subs=(), member=None, trail=None), \
op=<Op.GT: '>'>, values=(Literal(kind=<LitKind.NUMBER: 'number'>, value=50, vocab=None),), \
pattern=None)
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from burgo.ngsild.errors import BadRequestData
from burgo.ngsild.qmatch import (
    ATTRIBUTE_MEMBERS,
    ENTITY_MEMBERS,
    ORDERED,
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
    compile_pattern,
    evaluate,
    evaluate_scope,
    temporal_key,
)

__all__ = [
    "QExpr",
    "ScopeExpr",
    "evaluate",
    "evaluate_scope",
    "parse_q",
    "parse_scope_q",
]

MAX_LENGTH = 4096
MAX_TERMS = 64
MAX_DEPTH = 16

_NAME = re.compile(r"[^\W\d_]\w*(?::[^\W\d_]\w*)?")
_TRAIL_NAME = re.compile(r"\*|[\w@\-]+")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s\"<>\\^`{|}]+")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME = re.compile(r"\d{2}:\d{2}")
_BAD_IRI = re.compile(r"[\s\"\\<>\x00-\x1f\x7f]")
_OPS = sorted(Op, key=lambda op: -len(op.value))
_VALUE_END = ";|),"
_INT_LIMIT = 2**63
_BOOLEANS = {"true": True, "false": False}


class _Parser:
    """A cursor over the text, with the error reporting both languages share."""

    language = "q"

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.terms = 0

    def fail(self, message: str, at: int | None = None) -> BadRequestData:
        where = self.pos if at is None else at
        excerpt = self.text if len(self.text) <= 80 else self.text[:77] + "..."
        return BadRequestData(
            f"Invalid {self.language} at character {where + 1}: {message} (in {excerpt!r})"
        )

    def check_text(self) -> None:
        if not self.text:
            raise self.fail("the expression is empty")
        if len(self.text) > MAX_LENGTH:
            raise self.fail(f"the expression is longer than {MAX_LENGTH} characters", 0)
        try:
            self.text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise self.fail("the text is not valid Unicode", exc.start) from exc

    def peek(self, token: str) -> bool:
        return self.text.startswith(token, self.pos)

    def expect(self, token: str, what: str) -> None:
        if not self.peek(token):
            raise self.fail(f"expected {what}, found {self.found()}")
        self.pos += len(token)

    def found(self) -> str:
        return repr(self.text[self.pos]) if self.pos < len(self.text) else "the end"

    def count_term(self) -> None:
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise self.fail(f"more than {MAX_TERMS} terms; split the query")

    def primary(self, depth: int, term: Callable[[int], object]) -> object:
        if self.peek("("):
            if depth >= MAX_DEPTH:
                raise self.fail(f"parentheses nested deeper than {MAX_DEPTH}")
            self.pos += 1
            inner = self.tree(depth + 1, term)
            self.expect(")", "')' to close the parenthesis")
            return inner
        return term(depth)

    def tree(self, depth: int, term: Callable[[int], object]) -> object:
        """Parse ``term (; term)* (| ...)*`` with ``;`` binding tighter than ``|``."""
        alternatives: list[object] = []
        while True:
            conjuncts = [self.primary(depth, term)]
            while self.peek(";"):
                self.pos += 1
                conjuncts.append(self.primary(depth, term))
            alternatives.append(
                conjuncts[0] if len(conjuncts) == 1 else self.make_and(tuple(conjuncts))
            )
            if not self.peek("|"):
                break
            self.pos += 1
        return alternatives[0] if len(alternatives) == 1 else self.make_or(tuple(alternatives))

    def make_and(self, items: tuple[object, ...]) -> object:
        return And(items)  # type: ignore[arg-type]

    def make_or(self, items: tuple[object, ...]) -> object:
        return Or(items)  # type: ignore[arg-type]

    def finish(self, result: object) -> object:
        if self.pos != len(self.text):
            raise self.fail(f"unexpected {self.found()}; terms join with ';' (and) or '|' (or)")
        return result


class _QParser(_Parser):
    def __init__(self, text: str, expand: Callable[[str], str]) -> None:
        super().__init__(text)
        self.expand = expand

    def parse(self) -> QExpr:
        self.check_text()
        result = self.finish(self.tree(0, self.term))
        assert isinstance(result, Term | Absent | And | Or)
        return result

    # -- terms and paths --

    def term(self, depth: int) -> QExpr:
        self.count_term()
        if self.peek("!") and not self.peek("!=") and not self.peek("!~="):
            self.pos += 1
            path = self.path()
            if self.operator() is not None:
                raise self.fail("'!' only negates existence ('!attr'); use '!=' to compare")
            return Absent(path)
        path = self.path()
        start = self.pos
        op = self.operator()
        if op is None:
            return Term(path)
        if op in (Op.MATCH, Op.NO_MATCH):
            return Term(path, op, pattern=self.pattern())
        if op in (Op.EQ, Op.NE):
            return Term(path, op, self.value_list())
        start = self.pos
        value = self.value()
        if (
            isinstance(value, Range)
            or value.kind not in ORDERED
            or (value.kind == LitKind.STRING and not self.text.startswith('"', start))
        ):
            raise self.fail(f"'{op.value}' needs a number, string, DateTime, Date or Time", start)
        return Term(path, op, (value,))

    def operator(self) -> Op | None:
        for op in _OPS:
            if self.peek(op.value):
                self.pos += len(op.value)
                return op
        return None

    def name(self, what: str) -> tuple[int, str]:
        match = _NAME.match(self.text, self.pos)
        if match is None:
            raise self.fail(f"expected {what}, found {self.found()}")
        self.pos = match.end()
        return match.start(), match.group()

    def iri(self, at: int, name: str) -> str:
        expanded = self.expand(name)
        if not isinstance(expanded, str) or not expanded or _BAD_IRI.search(expanded):
            raise self.fail(f"{name!r} expands to {expanded!r}, which is not an IRI", at)
        return expanded

    def path(self) -> Path:
        names = [self.name("an attribute name")]
        while self.peek("."):
            self.pos += 1
            names.append(self.name("an attribute name after '.'"))
        trail: tuple[str, ...] | None = None
        if self.peek("["):
            trail = self.trail()
        if self.peek("{"):
            raise self.fail("linked-entity paths ('rel{attr}') are not supported")
        (at, first), rest = names[0], names[1:]
        if first in ENTITY_MEMBERS and not rest and trail is None:
            return Path(None, member=first)
        if first in ATTRIBUTE_MEMBERS:
            raise self.fail(f"{first!r} is a member of an attribute: write 'attr.{first}'", at)
        subs: list[str] = []
        for index, (name_at, name) in enumerate(rest):
            if name in ATTRIBUTE_MEMBERS:
                if index != len(rest) - 1 or trail is not None:
                    raise self.fail(f"{name!r} must end the attribute path", name_at)
                return Path(self.iri(at, first), tuple(subs), member=name)
            subs.append(self.iri(name_at, name))
        return Path(self.iri(at, first), tuple(subs), trail=trail)

    def trail(self) -> tuple[str, ...]:
        """``[b.c]``, or the equivalent ``[b][c]``: member names inside a compound value."""
        names: list[str] = []
        while self.peek("["):
            self.pos += 1
            while True:
                match = _TRAIL_NAME.match(self.text, self.pos)
                if match is None:
                    found = self.found()
                    raise self.fail(f"expected a member name inside '[...]', found {found}")
                names.append(match.group())
                self.pos = match.end()
                if not self.peek("."):
                    break
                self.pos += 1
            self.expect("]", "']' to end the trailing path")
        if "*" in names and names != ["*"]:
            raise self.fail("'[*]' (any language) stands alone in the brackets")
        return tuple(names)

    # -- values --

    def pattern(self) -> str:
        start = self.pos
        pattern = self.string() if self.peek('"') else self.raw_pattern()
        if not pattern:
            raise self.fail("missing regular expression after the operator", start)
        try:
            compile_pattern(pattern)
        except (re.error, OverflowError, RecursionError, ValueError) as exc:
            raise self.fail(f"invalid regular expression {pattern!r}: {exc}", start) from exc
        return pattern

    def raw_pattern(self) -> str:
        """An unquoted pattern ends at ';' '|' or ')' outside its own groups and classes."""
        text, i, depth, in_class = self.text, self.pos, 0, False
        while i < len(text):
            char = text[i]
            if char == "\\":
                i += 2
                continue
            if in_class:
                in_class = char != "]"
            elif char == "[":
                in_class = True
            elif char == "(":
                depth += 1
            elif char == ")":
                if depth == 0:
                    break
                depth -= 1
            elif char in ";|" and depth == 0:
                break
            i += 1
        i = min(i, len(text))
        pattern, self.pos = text[self.pos : i], i
        return pattern

    def value_list(self) -> tuple[Value, ...]:
        values = [self.value()]
        while self.peek(","):
            self.pos += 1
            values.append(self.value())
        return tuple(values)

    def value(self) -> Value:
        start = self.pos
        if self.peek('"'):
            low = self.quoted()
            if not self.peek(".."):
                return low
            self.pos += 2
            high = self.quoted() if self.peek('"') else self.unquoted(self.token())
            return self.range(low, high, start)
        token = self.token()
        if not token:
            raise self.fail(f"expected a value, found {self.found()}")
        if ".." in token and not _URI.fullmatch(token):
            low_text, _, high_text = token.partition("..")
            low = self.unquoted(low_text, start)
            high = self.unquoted(high_text, start + len(low_text) + 2)
            return self.range(low, high, start)
        return self.unquoted(token, start)

    def range(self, low: Literal, high: Literal, at: int) -> Range:
        if low.kind != high.kind or low.kind not in ORDERED:
            raise self.fail(
                "a range needs two numbers, strings, DateTimes, Dates or Times of one kind", at
            )
        return Range(low, high)

    def token(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in _VALUE_END:
            if self.text[self.pos] == '"':
                raise self.fail("a quote inside an unquoted value")
            self.pos += 1
        return self.text[start : self.pos]

    def quoted(self) -> Literal:
        text = self.string()
        vocab = self.expand(text) if _NAME.fullmatch(text) else None
        return Literal(LitKind.STRING, text, vocab if isinstance(vocab, str) else None)

    def string(self) -> str:
        start, text, i = self.pos, self.text, self.pos + 1
        while i < len(text) and text[i] != '"':
            i += 2 if text[i] == "\\" else 1
        if i >= len(text):
            raise self.fail("unterminated string: a closing '\"' is missing", start)
        self.pos = i + 1
        try:
            value = json.loads(text[start : i + 1])
            value.encode("utf-8")
        except (ValueError, UnicodeEncodeError) as exc:
            raise self.fail(f"invalid string: {exc}", start) from exc
        assert isinstance(value, str)
        return value

    def unquoted(self, token: str, at: int | None = None) -> Literal:
        at = self.pos - len(token) if at is None else at
        if token in _BOOLEANS:
            return Literal(LitKind.BOOLEAN, _BOOLEANS[token])
        if _NUMBER.fullmatch(token):
            return Literal(LitKind.NUMBER, self.number(token, at))
        if _DATE.match(token):
            kind = LitKind.DATETIME if "T" in token else LitKind.DATE
            return self.temporal(kind, token, at)
        if _TIME.match(token):
            return self.temporal(LitKind.TIME, token, at)
        if _URI.fullmatch(token) or _NAME.fullmatch(token):
            # Unquoted names are terms (4.9 example 12, gender==Male): strings, expanded for vocabs.
            vocab = self.expand(token) if _NAME.fullmatch(token) else None
            return Literal(LitKind.STRING, token, vocab if isinstance(vocab, str) else None)
        if not token:
            raise self.fail("missing value", at)
        raise self.fail(
            f"{token!r} is not a number, boolean, DateTime, Date, Time, URI or term; "
            'put strings in double quotes, e.g. "text"',
            at,
        )

    def number(self, token: str, at: int) -> int | float:
        value = json.loads(token)
        if isinstance(value, int) and -_INT_LIMIT <= value < _INT_LIMIT:
            return value
        number = float(value)
        if number in (float("inf"), float("-inf")):
            raise self.fail(f"the number {token} is out of range", at)
        return number

    def temporal(self, kind: LitKind, token: str, at: int) -> Literal:
        key = temporal_key(kind, token)
        if key is None:
            names = {LitKind.DATETIME: "DateTime (with Z)", LitKind.DATE: "Date"}
            raise self.fail(f"{token!r} is not a valid {names.get(kind, 'UTC Time')}", at)
        return Literal(kind, key)


def parse_q(text: str, expand: Callable[[str], str]) -> QExpr:
    """Parse a q expression, expanding attribute names with ``expand`` (the request's context)."""
    return _QParser(text, expand).parse()


# -- scopeQ ------------------------------------------------------------------------------------

_SCOPE_LEVEL = re.compile(r"\w+")


class _ScopeParser(_Parser):
    language = "scopeQ"

    def parse(self) -> ScopeExpr:
        self.check_text()
        result = self.finish(self.tree(0, self.term))
        assert isinstance(result, ScopeTerm | ScopeAnd | ScopeOr)
        return result

    def make_and(self, items: tuple[object, ...]) -> object:
        return ScopeAnd(items)  # type: ignore[arg-type]

    def make_or(self, items: tuple[object, ...]) -> object:
        return ScopeOr(items)  # type: ignore[arg-type]

    def term(self, depth: int) -> ScopeTerm:
        self.count_term()
        self.expect("/", "a scope starting with '/'")
        if self.peek("#"):
            self.pos += 1
            return ScopeTerm("", subtree=True)
        levels: list[str] = []
        while True:
            match = _SCOPE_LEVEL.match(self.text, self.pos)
            if match is None:
                raise self.fail(
                    f"expected a scope level (letters, digits, _), found {self.found()}"
                )
            levels.append(match.group())
            self.pos = match.end()
            if not self.peek("/"):
                return ScopeTerm("/" + "/".join(levels))
            self.pos += 1
            if self.peek("#"):
                self.pos += 1
                return ScopeTerm("/" + "/".join(levels), subtree=True)


def parse_scope_q(text: str) -> ScopeExpr:
    """Parse a scopeQ expression: ``/a/b``, ``/a/#`` (subtree), ``/#`` with ``;`` ``|`` ``()``."""
    return _ScopeParser(text).parse()
