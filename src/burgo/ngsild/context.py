"""JSON-LD @context processing for NGSI-LD: term expansion and compaction.

The fast path NGSI-LD needs: attribute names and entity types are expanded to IRIs on the way in
and compacted with the request's context on the way out. Remote contexts are not fetched here: the
caller hands over the documents it has, and :class:`MissingContext` names the one still needed.

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

from burgo.ngsild.errors import BadRequestData, InvalidRequest

CORE_CONTEXT_URL = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld"
NGSI_LD = "https://uri.etsi.org/ngsi-ld/"
DEFAULT_VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
JSONLD_CONTEXT_REL = "http://www.w3.org/ns/json-ld#context"

_CORE_URL_PATTERN = re.compile(
    r"^https?://uri\.etsi\.org/ngsi-ld/(v1/)?ngsi-ld-core-context(-v\d+\.\d+(\.\d+)?)?\.jsonld$"
)
_GEN_DELIMS = (":", "/", "?", "#", "[", "]", "@")


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
    """One term of an active context."""

    iri: str
    type: str | None = None
    container: str | None = None
    prefix: bool = False


@dataclass(eq=False)
class Context:
    """An active context: the core context's terms over the user's, ready to expand and compact."""

    terms: dict[str, TermDefinition]
    vocab: str | None
    source: Any = None
    _expanded: dict[str, str] = field(default_factory=dict, repr=False)
    _compacted: dict[str, str] = field(default_factory=dict, repr=False)
    _reverse: dict[str, str] | None = field(default=None, repr=False)

    def expand(self, term: str) -> str:
        """The IRI of an attribute name, entity type or other vocabulary term."""
        iri = self._expanded.get(term)
        if iri is None:
            iri = _expand_iri(term, self.terms, self.vocab)
            if len(self._expanded) < 65536:
                self._expanded[term] = iri
        return iri

    def compact(self, iri: str) -> str:
        """The shortest name of ``iri`` under this context (the IRI itself when none fits)."""
        term = self._compacted.get(iri)
        if term is None:
            term = self._compact_iri(iri)
            if len(self._compacted) < 65536:
                self._compacted[iri] = term
        return term

    def term_type(self, iri: str) -> str | None:
        """The ``@type`` coercion declared for the term that compacts ``iri``, if any."""
        definition = self.terms.get(self.compact(iri))
        return definition.type if definition else None

    def _compact_iri(self, iri: str) -> str:
        if self._reverse is None:
            reverse: dict[str, str] = {}
            for term, definition in self.terms.items():
                best = reverse.get(definition.iri)
                if best is None or (len(term), term) < (len(best), best):
                    reverse[definition.iri] = term
            self._reverse = reverse
        exact = self._reverse.get(iri)
        if exact is not None:
            return exact
        if self.vocab and iri.startswith(self.vocab) and len(iri) > len(self.vocab):
            suffix = iri[len(self.vocab) :]
            if suffix not in self.terms and ":" not in suffix:
                return suffix
        candidates = [
            f"{term}:{iri[len(definition.iri) :]}"
            for term, definition in self.terms.items()
            if definition.prefix
            and iri.startswith(definition.iri)
            and len(iri) > len(definition.iri)
        ]
        valid = [c for c in candidates if c.split(":", 1)[1][:2] != "//" and c not in self.terms]
        if valid:
            return min(valid, key=lambda c: (len(c), c))
        return iri


def _expand_iri(value: str, terms: Mapping[str, TermDefinition], vocab: str | None) -> str:
    if value.startswith("@"):
        return value
    definition = terms.get(value)
    if definition is not None:
        return definition.iri
    if ":" in value:
        prefix, suffix = value.split(":", 1)
        if prefix == "_" or suffix.startswith("//"):
            return value
        prefix_definition = terms.get(prefix)
        if prefix_definition is not None:
            return prefix_definition.iri + suffix
        return value
    if vocab is not None:
        return vocab + value
    return value


def _term_iri(
    term: str,
    raw: Any,
    local: Mapping[str, Any],
    terms: dict[str, TermDefinition],
    vocab: str | None,
    defining: set[str],
) -> TermDefinition | None:
    """Resolve one term definition, following references to other terms of the same context."""

    def resolve(value: str) -> str:
        head = value.split(":", 1)[0] if ":" in value else value
        if head in local and head not in defining and head not in terms:
            defining.add(head)
            nested = _term_iri(head, local[head], local, terms, vocab, defining)
            if nested is not None:
                terms[head] = nested
        return _expand_iri(value, terms, vocab)

    if raw is None:
        return None
    if isinstance(raw, str):
        iri = resolve(raw)
        return TermDefinition(iri=iri, prefix=iri.endswith(_GEN_DELIMS))
    if not isinstance(raw, dict):
        raise InvalidRequest(f"@context term {term!r} has an invalid definition")
    if "@reverse" in raw:
        return None
    raw_id = raw.get("@id")
    if raw_id is None:
        iri = resolve(term) if ":" in term else (vocab + term if vocab else term)
    elif isinstance(raw_id, str):
        iri = resolve(raw_id)
    else:
        raise InvalidRequest(f"@context term {term!r} has an invalid @id")
    raw_type = raw.get("@type")
    coerced = raw_type if not isinstance(raw_type, str) or raw_type.startswith("@") else None
    if isinstance(raw_type, str) and not raw_type.startswith("@"):
        coerced = resolve(raw_type)
    container = raw.get("@container")
    return TermDefinition(
        iri=iri,
        type=coerced if isinstance(coerced, str) else None,
        container=container if isinstance(container, str) else None,
        prefix=bool(raw.get("@prefix", False)),
    )


def _apply_local(
    local: Mapping[str, Any], terms: dict[str, TermDefinition], vocab: str | None
) -> str | None:
    if "@vocab" in local:
        raw_vocab = local["@vocab"]
        if raw_vocab is None:
            vocab = None
        elif isinstance(raw_vocab, str):
            vocab = _expand_iri(raw_vocab, terms, vocab) if raw_vocab else vocab
        else:
            raise InvalidRequest("@vocab must be a string")
    defining: set[str] = set()
    for term, raw in local.items():
        if term.startswith("@") or term in defining:
            continue
        defining.add(term)
        definition = _term_iri(term, raw, local, terms, vocab, defining)
        if definition is None:
            terms.pop(term, None)
        else:
            terms[term] = definition
    return vocab


def _context_value(document: Any, url: str) -> Any:
    if not isinstance(document, dict) or "@context" not in document:
        raise BadRequestData(f"The document at {url} is not a JSON-LD context (no @context member)")
    return document["@context"]


def process_context(local: Any, documents: Mapping[str, Any], *, max_depth: int = 16) -> Context:
    """Build the active context for ``local`` (a URL, an object, or a list of them).

    ``documents`` maps remote context URLs to their parsed documents; a URL it lacks raises
    :class:`MissingContext`. The core context is always applied last, as NGSI-LD requires.
    """
    terms: dict[str, TermDefinition] = {}
    vocab: str | None = None

    def walk(value: Any, depth: int) -> None:
        nonlocal terms, vocab
        if depth > max_depth:
            raise InvalidRequest("@context nests remote contexts too deeply")
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
                vocab = _apply_local(item, terms, vocab)
            else:
                raise InvalidRequest("@context must be a URL, an object or an array of them")

    walk(local, 0)
    core = _core_terms()
    terms.update(core.terms)
    return Context(terms=terms, vocab=core.vocab, source=local)


@cache
def _core_terms() -> Context:
    terms: dict[str, TermDefinition] = {}
    vocab = _apply_local(core_context_document()["@context"], terms, None)
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
