"""JSON-LD @context processing for NGSI-LD: term expansion and compaction.

The fast path NGSI-LD needs: attribute names and entity types are expanded to IRIs on the way in
and compacted with the request's context on the way out. Term definitions follow the JSON-LD 1.1
context processing algorithm (as pyld implements it); the NGSI-LD core context is always applied
last. Remote contexts are not fetched here: the caller hands over the documents it has, and
:class:`MissingContext` names the one still needed.

>>> ctx = process_context({"temp": "https://example.org/temperature"}, {})
>>> ctx.expand("temp"), ctx.compact("https://example.org/temperature")
('https://example.org/temperature', 'temp')
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import orjson

from burgo.ngsild.errors import BadRequestData

CORE_CONTEXT_URL = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld"
NGSI_LD = "https://uri.etsi.org/ngsi-ld/"
DEFAULT_VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
JSONLD_CONTEXT_REL = "http://www.w3.org/ns/json-ld#context"

_CORE_URL_PATTERN = re.compile(
    r"^https?://uri\.etsi\.org/ngsi-ld/(v1/)?ngsi-ld-core-context(-v\d+\.\d+(\.\d+)?)?\.jsonld$"
)
KEYWORDS = frozenset(
    [
        "@base",
        "@container",
        "@context",
        "@default",
        "@direction",
        "@embed",
        "@explicit",
        "@first",
        "@graph",
        "@id",
        "@import",
        "@included",
        "@index",
        "@json",
        "@language",
        "@list",
        "@nest",
        "@none",
        "@omitDefault",
        "@propagate",
        "@protected",
        "@preserve",
        "@requireAll",
        "@reverse",
        "@set",
        "@type",
        "@value",
        "@version",
        "@vocab",
    ]
)
_KEYWORD_LIKE = re.compile(r"^@[a-zA-Z]+$")
_ABSOLUTE_IRI = re.compile(r"^([A-Za-z][A-Za-z0-9+\-.]*|_):[^\s]*$")
_GEN_DELIM_END = re.compile(r".*[:/?#\[\]@]$", re.DOTALL)
_IRI_LIKE_TERM = re.compile(r".*((:[^:])|/)", re.DOTALL)
_TERM_KEYS = frozenset(
    [
        "@container",
        "@id",
        "@language",
        "@reverse",
        "@type",
        "@context",
        "@direction",
        "@index",
        "@nest",
        "@prefix",
        "@protected",
    ]
)
_CONTEXT_KEYS = frozenset(
    ["@version", "@import", "@base", "@vocab", "@language", "@direction", "@propagate"]
)
_CONTAINERS = frozenset(["@list", "@set", "@index", "@language", "@graph", "@id", "@type"])
# Term selection for an NGSI-LD attribute (an expanded node object such as a Property) or an
# entity type, as JSON-LD compaction does it: containers in this order, ``@type: @id`` first.
_NODE_CONTAINERS = ("@id", "@id@set", "@type", "@set@type", "@set", "@none", "@index", "@index@set")
_CACHE_LIMIT = 65536


class MissingContext(Exception):
    """Processing needs the remote context document at ``url``, which was not supplied."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


def is_core_context_url(url: str) -> bool:
    """Whether ``url`` names any version of the NGSI-LD core context."""
    return bool(_CORE_URL_PATTERN.match(url))


@cache
def core_context_document() -> dict[str, Any]:
    """The NGSI-LD core @context document shipped inside the package."""
    raw = resources.files("burgo.data").joinpath("ngsi-ld-core-context-v1.9.jsonld").read_bytes()
    document: dict[str, Any] = orjson.loads(raw)
    return document


@dataclass(frozen=True, slots=True)
class TermDefinition:
    """One term of an active context (``iri`` None: the term is explicitly mapped to null)."""

    iri: str | None
    type: str | None = None
    container: str = "@none"
    prefix: bool = False
    reverse: bool = False
    language: bool = False

    def node_rank(self) -> int | None:
        """Preference of this term for compacting a node-valued property (lower wins)."""
        if self.reverse or self.iri is None or self.container not in _NODE_CONTAINERS:
            return None
        if self.type == "@id":
            preference = 0
        elif self.type == "@none" or (self.type is None and not self.language):
            preference = 1
        else:
            return None
        return _NODE_CONTAINERS.index(self.container) * 2 + preference


def _is_absolute(value: str) -> bool:
    return bool(_ABSOLUTE_IRI.match(value))


def _invalid(message: str) -> BadRequestData:
    return BadRequestData(f"Invalid JSON-LD @context: {message}")


class _Unusable(Exception):
    """A name that JSON-LD expansion drops (mapped to null, reverse, or keyword-like)."""


@dataclass(eq=False)
class Context:
    """An active context: the core context's terms over the user's, ready to expand and compact.

    >>> core_context().expand("location")
    'https://uri.etsi.org/ngsi-ld/location'
    """

    terms: dict[str, TermDefinition]
    vocab: str | None
    source: Any = None
    _expanded: dict[str, str] = field(default_factory=dict, repr=False)
    _compacted: dict[str, str] = field(default_factory=dict, repr=False)
    # Attribute names the parser has already checked and expanded under this context.
    attribute_iris: dict[str, str] = field(default_factory=dict, repr=False)
    _best_terms: dict[str, str] | None = field(default=None, repr=False)

    def expand(self, term: str) -> str:
        """The IRI of an attribute name, entity type or other vocabulary term."""
        iri = self._expanded.get(term)
        if iri is None:
            try:
                iri = expand_iri(term, self.terms, self.vocab)
            except _Unusable:
                raise BadRequestData(
                    f"{term!r} cannot be used as a name: the @context maps it to null or to "
                    "a reverse property"
                ) from None
            if len(self._expanded) < _CACHE_LIMIT:
                self._expanded[term] = iri
        return iri

    def compact(self, iri: str) -> str:
        """The shortest name of ``iri`` under this context (the IRI itself when none fits)."""
        term = self._compacted.get(iri)
        if term is None:
            term = self._compact_iri(iri)
            if len(self._compacted) < _CACHE_LIMIT:
                self._compacted[iri] = term
        return term

    def term_type(self, iri: str) -> str | None:
        """The ``@type`` coercion declared for the term that compacts ``iri``, if any."""
        definition = self.terms.get(self.compact(iri))
        return definition.type if definition else None

    def _best_term(self, iri: str) -> str | None:
        if self._best_terms is None:
            self._best_terms = _best_terms(self.terms)
        return self._best_terms.get(iri)

    def _compact_iri(self, iri: str) -> str:
        # A term wins even where full JSON-LD compaction would refuse it for its @type or
        # @container coercion: clients get back the names they sent, as in Orion-LD.
        term = self._best_term(iri)
        if term is not None:
            return term
        vocab = self.vocab
        if vocab and iri.startswith(vocab) and iri != vocab:
            suffix = iri[len(vocab) :]
            if suffix not in self.terms:
                return suffix
        best: str | None = None
        for name, definition in self.terms.items():
            prefix_iri = definition.iri
            if (
                not definition.prefix
                or prefix_iri is None
                or ":" in name
                or prefix_iri == iri
                or not iri.startswith(prefix_iri)
            ):
                continue
            suffix = iri[len(prefix_iri) :]
            curie = f"{name}:{suffix}"
            # "p://x" would read back as an absolute IRI, not as a compact one.
            if curie in self.terms or suffix.startswith("//"):
                continue
            if best is None or (len(curie), curie) < (len(best), best):
                best = curie
        return best if best is not None else iri


def _best_terms(terms: Mapping[str, TermDefinition]) -> dict[str, str]:
    """For each IRI, the term that compacts it: best coercion fit, then shortest, then least."""
    ranked: dict[str, tuple[int, int, str]] = {}
    for name, definition in terms.items():
        if definition.iri is None or definition.reverse:
            continue
        rank = definition.node_rank()
        key = (len(_NODE_CONTAINERS) * 2 if rank is None else rank, len(name), name)
        current = ranked.get(definition.iri)
        if current is None or key < current:
            ranked[definition.iri] = key
    return {iri: key[2] for iri, key in ranked.items()}


def expand_iri(value: str, terms: Mapping[str, TermDefinition], vocab: str | None) -> str:
    """IRI expansion of a vocabulary-relative ``value`` (JSON-LD 1.1, 5.2) in an active context."""
    if value in KEYWORDS:
        return value
    if _KEYWORD_LIKE.match(value):
        raise _Unusable(value)
    definition = terms.get(value)
    if definition is not None:
        if definition.iri is None or definition.reverse:
            raise _Unusable(value)
        return definition.iri
    colon = value.find(":")
    if colon > 0:
        prefix, suffix = value[:colon], value[colon + 1 :]
        if prefix == "_" or suffix.startswith("//"):
            return value
        prefix_definition = terms.get(prefix)
        if prefix_definition is not None and prefix_definition.prefix:
            return f"{prefix_definition.iri}{suffix}"
        if _is_absolute(value):
            return value
    if vocab is not None:
        return vocab + value
    return value


class _LocalContext:
    """Defines the terms of one local context object on top of an active context."""

    def __init__(
        self, local: Mapping[str, Any], terms: dict[str, TermDefinition], vocab: str | None
    ) -> None:
        self.local = local
        self.terms = terms
        self.vocab = vocab
        self.defined: dict[str, bool] = {}

    def apply(self) -> str | None:
        """Define every term; return the new @vocab."""
        version = self.local.get("@version", 1.1)
        if version != 1.1:
            raise _invalid(f"unsupported @version {version!r}")
        if "@vocab" in self.local:
            self.vocab = self._vocab(self.local["@vocab"])
        for term in self.local:
            if term in _CONTEXT_KEYS or term == "@protected":
                continue
            self.define(term)
        return self.vocab

    def _vocab(self, raw: Any) -> str | None:
        if raw is None:
            return None
        if not isinstance(raw, str):
            raise _invalid("@vocab must be a string or null")
        try:
            vocab = expand_iri(raw, self.terms, self.vocab)
        except _Unusable:
            raise _invalid(f"@vocab {raw!r} does not expand to an IRI") from None
        if not _is_absolute(vocab):
            raise _invalid(f"@vocab {raw!r} is not an absolute IRI")
        return vocab

    def expand(self, value: str) -> str | None:
        """IRI expansion while the local context is being processed (defines dependencies)."""
        if value in KEYWORDS:
            return value
        if _KEYWORD_LIKE.match(value):
            return None
        if value in self.local and self.defined.get(value) is not True:
            self.define(value)
        definition = self.terms.get(value)
        if definition is not None:
            return definition.iri
        colon = value.find(":")
        if colon > 0:
            prefix, suffix = value[:colon], value[colon + 1 :]
            if prefix == "_" or suffix.startswith("//"):
                return value
            if prefix in self.local and not self.defined.get(prefix):
                self.define(prefix)
            prefix_definition = self.terms.get(prefix)
            if prefix_definition is not None and prefix_definition.prefix:
                return f"{prefix_definition.iri}{suffix}"
            if _is_absolute(value):
                return value
        if self.vocab is not None:
            return self.vocab + value
        return value

    def define(self, term: str) -> None:
        """Create the term definition of ``term`` (JSON-LD 1.1, 4.2.2)."""
        state = self.defined.get(term)
        if state is True:
            return
        if state is False:
            raise _invalid(f"cyclic IRI mapping at term {term!r}")
        self.defined[term] = False
        if term in KEYWORDS:
            if term == "@type":
                self.defined[term] = True
                return
            raise _invalid(f"keyword {term} cannot be redefined")
        if _KEYWORD_LIKE.match(term):
            self.defined[term] = True
            return
        if term == "":
            raise _invalid("a term cannot be empty")
        previous = self.terms.pop(term, None)
        definition = self._definition(term, self.local[term], previous)
        if definition is None:
            if previous is not None:
                self.terms[term] = previous
            return
        self.terms[term] = definition
        self.defined[term] = True

    def _definition(
        self, term: str, raw: Any, previous: TermDefinition | None
    ) -> TermDefinition | None:
        simple = raw is None or isinstance(raw, str)
        value: Mapping[str, Any] = {"@id": raw} if simple else raw
        if not isinstance(value, Mapping):
            raise _invalid(f"term {term!r} must be defined by a string, an object or null")
        unknown = set(value) - _TERM_KEYS
        if unknown:
            raise _invalid(f"term {term!r} has unknown members {sorted(unknown)}")
        colon = term.find(":")
        iri, prefix, reverse, resolved = self._iri(term, value, simple, colon > 0)
        if not resolved:
            return None
        if iri is None and "@id" not in value:
            iri = self._implicit_iri(term, colon)
        coerced = self._type(term, value)
        container = self._container(term, value)
        if "@type" in container and coerced is None:
            coerced = "@id"
        if "@type" in container and coerced not in ("@id", "@vocab"):
            raise _invalid(f"term {term!r}: an @type container needs @type @id or @vocab")
        if reverse and set(container) - {"@index", "@set"}:
            raise _invalid(f"reverse term {term!r} may only use @index or @set containers")
        self._check_index(term, value, container)
        language = ("@language" in value and "@type" not in value) or "@direction" in value
        self._check_language(term, value)
        if "@prefix" in value:
            prefix = self._explicit_prefix(term, value["@prefix"], iri) and iri is not None
        if iri in ("@context", "@preserve"):
            raise _invalid(f"term {term!r} cannot alias {iri}")
        return TermDefinition(
            iri=iri,
            type=coerced,
            container="".join(sorted(container)) if container else "@none",
            prefix=prefix,
            reverse=reverse,
            language=language,
        )

    def _iri(
        self, term: str, value: Mapping[str, Any], simple: bool, has_colon: bool
    ) -> tuple[str | None, bool, bool, bool]:
        """(iri, prefix flag, reverse, resolved): resolved is False for ignored definitions."""
        if "@reverse" in value:
            if "@id" in value or "@nest" in value:
                raise _invalid(f"reverse term {term!r} cannot have @id or @nest")
            raw = value["@reverse"]
            if not isinstance(raw, str):
                raise _invalid(f"@reverse of term {term!r} must be a string")
            if _KEYWORD_LIKE.match(raw):
                return None, False, False, False
            iri = self.expand(raw)
            if iri is None or not _is_absolute(iri):
                raise _invalid(f"@reverse of term {term!r} is not an IRI")
            return iri, False, True, True
        if "@id" not in value:
            return None, False, False, True
        raw_id = value["@id"]
        if raw_id is None:
            return None, False, False, True
        if not isinstance(raw_id, str):
            raise _invalid(f"@id of term {term!r} must be a string")
        if raw_id not in KEYWORDS and _KEYWORD_LIKE.match(raw_id):
            return None, False, False, False
        if raw_id == term:
            return self._implicit_iri(term, term.find(":")), False, False, True
        iri = self.expand(raw_id)
        if iri is None or (not _is_absolute(iri) and iri not in KEYWORDS):
            raise _invalid(f"term {term!r} does not map to an absolute IRI")
        if _IRI_LIKE_TERM.match(term):
            self.defined[term] = True
            try:
                own = self.expand(term)
            finally:
                self.defined[term] = False
            if own != iri:
                raise _invalid(f"term {term!r} looks like an IRI but maps to another one")
        prefix = (
            simple and not has_colon and (iri.startswith("_:") or bool(_GEN_DELIM_END.match(iri)))
        )
        return iri, prefix, False, True

    def _implicit_iri(self, term: str, colon: int) -> str:
        if colon > 0:
            prefix, suffix = term[:colon], term[colon + 1 :]
            if prefix in self.local:
                self.define(prefix)
            prefix_definition = self.terms.get(prefix)
            if prefix_definition is not None:
                if prefix_definition.iri is None:
                    raise _invalid(f"term {term!r} uses prefix {prefix!r}, which is null")
                return prefix_definition.iri + suffix
            return term
        if self.vocab is None:
            raise _invalid(f"term {term!r} has no @id and there is no @vocab")
        return self.vocab + term

    def _type(self, term: str, value: Mapping[str, Any]) -> str | None:
        if "@type" not in value:
            return None
        raw = value["@type"]
        if not isinstance(raw, str):
            raise _invalid(f"@type of term {term!r} must be a string")
        if raw in ("@id", "@vocab", "@json", "@none"):
            return raw
        coerced = self.expand(raw)
        if coerced is None or not _is_absolute(coerced) or coerced.startswith("_:"):
            raise _invalid(f"@type of term {term!r} must be an IRI")
        return coerced

    @staticmethod
    def _container(term: str, value: Mapping[str, Any]) -> list[str]:
        if "@container" not in value:
            return []
        raw = value["@container"]
        container = raw if isinstance(raw, list) else [raw]
        valid = all(isinstance(c, str) and c in _CONTAINERS for c in container)
        if "@list" in container:
            valid = valid and len(container) == 1
        elif "@graph" in container:
            valid = valid and set(container) <= {"@graph", "@id", "@index", "@set"}
        else:
            valid = valid and len(container) <= (2 if "@set" in container else 1)
        if not valid:
            raise _invalid(f"@container of term {term!r} is not valid")
        return container

    @staticmethod
    def _check_index(term: str, value: Mapping[str, Any], container: list[str]) -> None:
        if "@index" not in value:
            return
        index = value["@index"]
        if "@index" not in container or not isinstance(index, str) or index.startswith("@"):
            raise _invalid(f"@index of term {term!r} is not valid")

    @staticmethod
    def _check_language(term: str, value: Mapping[str, Any]) -> None:
        language = value.get("@language")
        if "@language" in value and "@type" not in value and not isinstance(language, str | None):
            raise _invalid(f"@language of term {term!r} must be a string or null")
        if value.get("@direction") not in (None, "ltr", "rtl"):
            raise _invalid(f"@direction of term {term!r} must be ltr, rtl or null")

    @staticmethod
    def _explicit_prefix(term: str, raw: Any, iri: str | None) -> bool:
        if ":" in term or "/" in term:
            raise _invalid(f"@prefix on the compact IRI term {term!r}")
        if iri in KEYWORDS:
            raise _invalid(f"keyword alias {term!r} cannot be a prefix")
        if not isinstance(raw, bool):
            raise _invalid(f"@prefix of term {term!r} must be true or false")
        return raw


def _context_value(document: Any, url: str) -> Any:
    if not isinstance(document, dict) or "@context" not in document:
        raise BadRequestData(f"The document at {url} is not a JSON-LD context (no @context member)")
    return document["@context"]


def _with_import(local: Mapping[str, Any], documents: Mapping[str, Any]) -> Mapping[str, Any]:
    url = local["@import"]
    if not isinstance(url, str):
        raise _invalid("@import must be a URL")
    if url not in documents:
        raise MissingContext(url)
    imported = _context_value(documents[url], url)
    if not isinstance(imported, dict) or "@import" in imported:
        raise _invalid(f"@import {url} must name a single context object without @import")
    merged = {**imported, **local}
    del merged["@import"]
    return merged


def process_context(local: Any, documents: Mapping[str, Any], *, max_depth: int = 16) -> Context:
    """Build the active context for ``local`` (a URL, an object, or a list of them).

    ``documents`` maps remote context URLs to their parsed documents; a URL it lacks raises
    :class:`MissingContext`. The core context is always applied last, as NGSI-LD requires.
    Invalid contexts raise :class:`BadRequestData`.
    """
    terms: dict[str, TermDefinition] = {}
    vocab: str | None = None

    def walk(value: Any, depth: int) -> None:
        nonlocal terms, vocab
        if depth > max_depth:
            raise _invalid("remote contexts nest too deeply (or include each other)")
        items = value if isinstance(value, list) else [value]
        for item in items:
            if item is None:
                terms, vocab = {}, None
            elif isinstance(item, str):
                if is_core_context_url(item):
                    continue
                if item not in documents:
                    raise MissingContext(item)
                walk(_context_value(documents[item], item), depth + 1)
            elif isinstance(item, dict):
                if "@import" in item:
                    item = _with_import(item, documents)
                vocab = _LocalContext(item, terms, vocab).apply()
            else:
                raise _invalid("@context must be a URL, an object or an array of them")

    walk(local, 0)
    core = _core_terms()
    terms.update(core.terms)
    return Context(terms=terms, vocab=core.vocab, source=local)


@cache
def _core_terms() -> Context:
    terms: dict[str, TermDefinition] = {}
    vocab = _LocalContext(core_context_document()["@context"], terms, None).apply()
    return Context(terms=terms, vocab=vocab)


@cache
def core_context() -> Context:
    """The active context made of the NGSI-LD core context alone."""
    core = _core_terms()
    return Context(terms=dict(core.terms), vocab=core.vocab, source=CORE_CONTEXT_URL)


def context_urls(local: Any) -> list[str]:
    """The remote context URLs named at the top level of ``local``."""
    items = local if isinstance(local, list) else [local]
    return [item for item in items if isinstance(item, str)]
