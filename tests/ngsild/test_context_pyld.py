"""Our fast @context path against pyld, the reference JSON-LD processor, on random user contexts.

Every context is used the NGSI-LD way: the user's context first, the core context last. pyld
loads remote contexts from a dict (no network). Compaction is checked for the value an NGSI-LD
attribute really has: an expanded Property node.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from pyld import jsonld

from burgo.ngsild.context import (
    CORE_CONTEXT_URL,
    MissingContext,
    core_context_document,
    process_context,
)
from burgo.ngsild.errors import BadRequestData

PROPERTY = "https://uri.etsi.org/ngsi-ld/Property"
HAS_VALUE = "https://uri.etsi.org/ngsi-ld/hasValue"
SERVED = {
    CORE_CONTEXT_URL: core_context_document(),
    # The core context's ngsildproof term has a scoped context naming this one; pyld loads it.
    "https://w3id.org/security/data-integrity/v2": {"@context": {}},
}

TERMS = ["a", "b", "ab", "temp", "Temp", "speed", "ex", "ns", "x1", "é", "name", "location"]
BASES = [
    "http://ex.org/",
    "https://vocab.test/ns#",
    "urn:test:",
    "http://ex.org/ns",
    "https://uri.etsi.org/ngsi-ld/default-context/",
    "https://uri.etsi.org/ngsi-ld/",
]
WORDS = ["temp", "speed", "a", "b", "x/y", "é"]
NAMES = [
    *TERMS,
    "ex:temp",
    "ex:b",
    "a:b",
    "ns:x:y",
    "é:x",
    ":odd",
    "http://other.org/x",
    "urn:x:y",
    "unknownName",
    "createdAt",
    "ngsi-ld:foo",
    "ex://host",
]

iris = st.builds(lambda base, word: base + word, st.sampled_from(BASES), st.sampled_from(WORDS))
bases = st.sampled_from(BASES)
references = st.one_of(
    iris,
    bases,
    st.sampled_from(TERMS),
    st.builds(lambda p, w: f"{p}:{w}", st.sampled_from(TERMS), st.sampled_from(WORDS)),
)
expanded_definitions = st.fixed_dictionaries(
    {},
    optional={
        "@id": st.one_of(references, st.none()),
        "@type": st.sampled_from(
            ["@id", "@vocab", "xsd:int", "http://www.w3.org/2001/XMLSchema#int"]
        ),
        "@container": st.sampled_from(["@set", "@list", "@index", ["@set"]]),
        "@prefix": st.booleans(),
    },
)
definitions = st.one_of(references, st.none(), expanded_definitions)
locals_ = st.builds(
    lambda terms, vocab: {**terms, **vocab},
    st.dictionaries(st.sampled_from(TERMS), definitions, max_size=5),
    st.one_of(
        st.just({}),
        # A relative @vocab needs a document base, which a request does not have: not generated.
        st.builds(lambda v: {"@vocab": v}, st.one_of(bases, st.none(), st.just("ex:"))),
    ),
)
# Remote contexts R0 and R1 (R0 may include R1) stand for URLs filled in per example.
remote_docs = st.fixed_dictionaries(
    {
        "R1": st.builds(lambda c: {"@context": c}, locals_),
        "R0": st.builds(
            lambda c, nest: {"@context": [c, "R1"] if nest else c}, locals_, st.booleans()
        ),
    }
)
contexts = st.lists(
    st.one_of(locals_, locals_, st.none(), st.sampled_from(["R0", "R1"])), min_size=1, max_size=3
)


def _bind(value: Any, urls: dict[str, str]) -> Any:
    if isinstance(value, str):
        return urls.get(value, value)
    if isinstance(value, list):
        return [_bind(item, urls) for item in value]
    if isinstance(value, dict):
        return {
            key: _bind(item, urls) if key == "@context" else item for key, item in value.items()
        }
    return value


def _instantiate(ctx: list[Any], docs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """Give the remote contexts fresh URLs, since pyld caches documents by URL across calls."""
    token = uuid.uuid4().hex
    urls = {name: f"https://contexts.test/{token}/{name}.jsonld" for name in docs}
    documents = {urls[name]: _bind(doc, urls) for name, doc in docs.items()}
    return [urls.get(item, item) if isinstance(item, str) else item for item in ctx], documents


def _options(documents: dict[str, Any]) -> dict[str, Any]:
    def load(url: str, options: Any = None) -> dict[str, Any]:
        if url in documents:
            return {"contextUrl": None, "documentUrl": url, "document": documents[url]}
        if url in SERVED:
            return {"contextUrl": None, "documentUrl": url, "document": SERVED[url]}
        raise jsonld.JsonLdError(
            f"{url} is not served", "jsonld.LoadDocumentError", code="loading document failed"
        )

    return {"documentLoader": load}


def _pyld_context_error(user: list[Any], documents: dict[str, Any]) -> bool:
    try:
        jsonld.expand({"@context": [*user, CORE_CONTEXT_URL]}, _options(documents))
    except jsonld.JsonLdError:
        return True
    except (KeyError, TypeError):
        # pyld crashes on "@vocab": null where no @vocab is set (JSON-LD: no change) and on a
        # null term used as a prefix (JSON-LD: not a prefix); nothing to compare there.
        assume(False)
    return False


def _pyld_expand(user: list[Any], documents: dict[str, Any], name: str) -> str | None:
    document = {"@context": [*user, CORE_CONTEXT_URL], name: {"@value": 1}}
    expanded = jsonld.expand(document, _options(documents))
    if not expanded:
        return None
    (iri,) = expanded[0]
    return str(iri)


def _pyld_compact(user: list[Any], documents: dict[str, Any], iri: str) -> str | None:
    node = {"@type": [PROPERTY], HAS_VALUE: [{"@value": 1}]}
    try:
        compacted = jsonld.compact(
            [{iri: [node]}], {"@context": [*user, CORE_CONTEXT_URL]}, _options(documents)
        )
    except jsonld.JsonLdError:
        return None
    (key,) = (k for k in compacted if k != "@context")
    return str(key)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ctx=contexts, docs=remote_docs, names=st.lists(st.sampled_from(NAMES), min_size=1, max_size=4)
)
def test_expansion_and_compaction_agree_with_pyld(
    ctx: list[Any], docs: dict[str, Any], names: list[str]
) -> None:
    user, documents = _instantiate(ctx, docs)
    if _pyld_context_error(user, documents):
        event("invalid context")
        with pytest.raises(BadRequestData):
            process_context(user, documents)
        return
    active = process_context(user, documents)
    for name in names:
        try:
            reference = _pyld_expand(user, documents, name)
        except jsonld.JsonLdError:
            # pyld refuses the value under this term (a reverse property); so do we.
            with pytest.raises(BadRequestData):
                active.expand(name)
            continue
        except TypeError:
            # pyld crashes on a prefix mapped to null; JSON-LD 1.1 leaves such a name as it is.
            assert active.expand(name) == name
            continue
        if reference is None:
            event("name dropped")
            with pytest.raises(BadRequestData):
                active.expand(name)
            continue
        assert active.expand(name) == reference
        _check_compaction(active, user, documents, name, reference)


def _check_compaction(
    active: Any, user: list[Any], documents: dict[str, Any], name: str, iri: str
) -> None:
    ours = active.compact(iri)
    theirs = _pyld_compact(user, documents, iri)
    outcome = "nothing" if theirs is None else "the name" if theirs == name else "another name"
    event(f"pyld compacts to {outcome}")
    if theirs is None:
        return  # pyld: "IRI confused with prefix"; nothing to compare
    assert active.expand(ours) == iri
    definition = active.terms.get(theirs)
    pyld_chose_a_term = definition is not None and definition.iri == iri
    if pyld_chose_a_term or not any(d.iri == iri and not d.reverse for d in active.terms.values()):
        assert ours == theirs
    else:
        # Where JSON-LD refuses a term for its @type/@container coercion, we still give the
        # client its term back rather than a compact IRI.
        assert active.terms[ours].iri == iri
    if theirs == name:
        assert ours == name or not pyld_chose_a_term


@settings(max_examples=100, deadline=None)
@given(ctx=contexts, docs=remote_docs, name=st.sampled_from(NAMES))
def test_round_trip_with_user_contexts(ctx: list[Any], docs: dict[str, Any], name: str) -> None:
    user, documents = _instantiate(ctx, docs)
    try:
        active = process_context(user, documents)
        iri = active.expand(name)
    except BadRequestData:
        return
    short = active.compact(iri)
    assert active.expand(short) == iri
    assert active.compact(active.expand(short)) == short


def test_missing_remote_context_is_named() -> None:
    with pytest.raises(MissingContext) as missing:
        process_context(["https://contexts.test/absent.jsonld"], {})
    assert missing.value.url == "https://contexts.test/absent.jsonld"
