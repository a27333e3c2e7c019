"""The @context term map: what NGSI-LD clients see of expansion and compaction."""

from __future__ import annotations

import pytest

from burgo.ngsild.context import (
    DEFAULT_VOCAB,
    MissingContext,
    core_context,
    is_core_context_url,
    process_context,
)
from burgo.ngsild.errors import BadRequestData

CORE = "https://uri.etsi.org/ngsi-ld/"


@pytest.mark.parametrize(
    "url",
    [
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld",
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.3.jsonld",
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld",
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld",
        "http://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.7.1.jsonld",
    ],
)
def test_every_core_context_version_is_recognised(url: str) -> None:
    assert is_core_context_url(url)
    assert process_context([url], {}).expand("location") == CORE + "location"


def test_other_etsi_urls_are_not_the_core_context() -> None:
    assert not is_core_context_url("https://uri.etsi.org/ngsi-ld/v1/other-context.jsonld")
    with pytest.raises(MissingContext):
        process_context("https://uri.etsi.org/ngsi-ld/v1/other-context.jsonld", {})


def test_unknown_names_use_the_default_context_and_compact_back() -> None:
    ctx = core_context()
    assert ctx.expand("temperature") == DEFAULT_VOCAB + "temperature"
    assert ctx.compact(DEFAULT_VOCAB + "temperature") == "temperature"
    assert ctx.compact("http://example.org/unmapped") == "http://example.org/unmapped"
    assert ctx.compact(CORE + "Property") == "Property"


def test_core_terms_take_precedence_over_user_terms() -> None:
    ctx = process_context({"location": "http://example.org/where", "temp": "http://ex.org/t"}, {})
    assert ctx.expand("location") == CORE + "location"
    assert ctx.expand("temp") == "http://ex.org/t"
    assert ctx.compact("http://ex.org/t") == "temp"


def test_core_vocab_comes_last_so_a_user_vocab_only_shapes_its_own_terms() -> None:
    ctx = process_context({"@vocab": "http://ex.org/v#", "speed": {"@type": "@id"}}, {})
    assert ctx.expand("speed") == "http://ex.org/v#speed"
    assert ctx.expand("other") == DEFAULT_VOCAB + "other"


def test_prefixes_and_compact_iris() -> None:
    ctx = process_context(
        {"ex": "http://ex.org/ns#", "noDelim": "http://ex.org/ns", "t": "ex:temperature"}, {}
    )
    assert ctx.expand("t") == "http://ex.org/ns#temperature"
    assert ctx.expand("ex:speed") == "http://ex.org/ns#speed"
    assert ctx.compact("http://ex.org/ns#speed") == "ex:speed"
    # Only simple terms ending in a gen-delim are prefixes (JSON-LD 1.1).
    assert ctx.expand("noDelim:x") == "noDelim:x"
    assert ctx.expand("http://ex.org/ns#x") == "http://ex.org/ns#x"


def test_term_definitions_as_objects() -> None:
    ctx = process_context(
        {
            "ex": "http://ex.org/",
            "refPark": {"@id": "ex:refPark", "@type": "@id"},
            "tags": {"@id": "ex:tags", "@container": "@list"},
            "p": {"@id": "http://other.org/", "@prefix": True},
        },
        {},
    )
    assert ctx.expand("refPark") == "http://ex.org/refPark"
    assert ctx.compact("http://ex.org/refPark") == "refPark"
    assert ctx.compact("http://ex.org/tags") == "tags"
    assert ctx.term_type("http://ex.org/refPark") == "@id"
    assert ctx.expand("p:x") == "http://other.org/x"


def test_null_resets_the_user_context_but_never_the_core() -> None:
    ctx = process_context([{"temp": "http://ex.org/t"}, None, {"speed": "http://ex.org/s"}], {})
    assert ctx.expand("temp") == DEFAULT_VOCAB + "temp"
    assert ctx.expand("speed") == "http://ex.org/s"
    assert ctx.expand("location") == CORE + "location"


def test_a_term_mapped_to_null_cannot_name_anything() -> None:
    ctx = process_context({"secret": None}, {})
    with pytest.raises(BadRequestData):
        ctx.expand("secret")
    # Nor does another IRI compact to it through @vocab.
    assert ctx.compact(DEFAULT_VOCAB + "secret") == "ngsi-ld:default-context/secret"


def test_nested_remote_contexts_and_import() -> None:
    documents = {
        "https://ctx.test/a.jsonld": {"@context": [{"a": "http://ex.org/a"}, "https://ctx.test/b"]},
        "https://ctx.test/b": {"@context": {"b": "http://ex.org/b", "a": "http://ex.org/a2"}},
        "https://ctx.test/i": {"@context": {"i": "http://ex.org/i", "j": "http://ex.org/j"}},
    }
    ctx = process_context(
        ["https://ctx.test/a.jsonld", {"@import": "https://ctx.test/i", "j": "http://ex.org/J"}],
        documents,
    )
    assert ctx.expand("a") == "http://ex.org/a2"
    assert ctx.expand("b") == "http://ex.org/b"
    assert ctx.expand("i") == "http://ex.org/i"
    assert ctx.expand("j") == "http://ex.org/J"


def test_a_context_that_includes_itself_is_refused() -> None:
    loop = {"https://ctx.test/loop": {"@context": ["https://ctx.test/loop"]}}
    with pytest.raises(BadRequestData):
        process_context("https://ctx.test/loop", loop)


@pytest.mark.parametrize(
    "local",
    [
        {"a": "b", "b": "a"},
        {"a": 5},
        {"a": {"@id": "http://ex.org/a", "@unknown": 1}},
        {"a": "relative"},
        {"a": {"@id": "http://ex.org/a", "@container": "@bogus"}},
        {"@vocab": 7},
        {"@context": {}},
        {"a:b": {"@id": "http://elsewhere.org/"}, "a": "http://ex.org/"},
        42,
    ],
)
def test_invalid_contexts_are_bad_request_data(local: object) -> None:
    with pytest.raises(BadRequestData):
        process_context(local, {})


def test_a_remote_document_without_context_is_bad_request_data() -> None:
    with pytest.raises(BadRequestData):
        process_context("https://ctx.test/x", {"https://ctx.test/x": {"not": "a context"}})
