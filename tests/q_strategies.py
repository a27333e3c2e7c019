"""Hypothesis strategies for the q language: entities over a small vocabulary, and q texts over it.

Entities draw attribute names, sub-attribute names, compound-value keys and values from small
pools, so that random q expressions (drawn from the same pools) often hit them. Names expand with
:func:`expand` (the core context's default vocabulary).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from hypothesis import strategies as st

from burgo.ngsild.context import DEFAULT_VOCAB
from burgo.ngsild.model import Attribute, AttrKind, Entity, order_instances

NAMES = ("temp", "name", "status", "rel", "data")
KEYS = ("temp", "city", "en", "x")
TIMESTAMPS = ("2024-01-01T00:00:00.000Z", "2024-06-01T12:00:00.000Z", "2025-01-01T00:00:00.000Z")
URIS = ("urn:ngsi-ld:X:1", "urn:ngsi-ld:X:2")
STRINGS = ("a", "ab", "B", "b", "", "urn:ngsi-ld:X:1")
SCOPES = ("/a", "/a/b", "/a/b/c", "/b", "/ab")


def expand(name: str) -> str:
    """The expansion q texts from :func:`q_texts` are parsed with."""
    return DEFAULT_VOCAB + name


_scalars = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([0.5, 1.0, 2.5, -1.5]),
    st.sampled_from(STRINGS),
    st.booleans(),
    st.sampled_from(
        [
            "2024-01-01T00:00:00Z",
            "2024-06-01T12:00:00.000Z",
            "2024-01-01T01:00:00+01:00",
            "2024-01-01",
            "2024-02-30",
            "12:00:00Z",
            "08:30:00",
        ]
    ),
    st.just({"@type": "DateTime", "@value": "2024-03-01T00:00:00Z"}),
)
json_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)
    ),
    max_leaves=6,
)
_uris = st.sampled_from(URIS)
_texts = st.sampled_from(STRINGS)
_VALUES: dict[AttrKind, st.SearchStrategy[Any]] = {
    AttrKind.PROPERTY: json_values,
    AttrKind.RELATIONSHIP: st.one_of(_uris, st.lists(_uris, min_size=1, max_size=2)),
    AttrKind.GEO_PROPERTY: st.just({"type": "Point", "coordinates": [1.0, 2.0]}),
    AttrKind.LANGUAGE_PROPERTY: st.dictionaries(
        st.sampled_from(["en", "pt", "@none"]),
        st.one_of(_texts, st.lists(_texts, max_size=2)),
        min_size=1,
        max_size=2,
    ),
    AttrKind.VOCAB_PROPERTY: st.one_of(
        st.sampled_from(["a", "b"]).map(expand),
        st.lists(st.sampled_from(["a", "b"]).map(expand), min_size=1, max_size=2),
    ),
    AttrKind.JSON_PROPERTY: st.one_of(
        st.dictionaries(st.sampled_from(KEYS), json_values, max_size=3),
        st.lists(json_values, max_size=3),
    ),
    AttrKind.LIST_PROPERTY: st.lists(json_values, max_size=3),
    AttrKind.LIST_RELATIONSHIP: st.lists(_uris.map(lambda u: {"object": u}), max_size=2),
}


@st.composite
def q_attributes(draw: st.DrawFn, *, dataset_id: str | None = None, depth: int = 1) -> Attribute:
    """One stamped attribute instance of any kind, over the small pools."""
    kind = draw(st.sampled_from(list(AttrKind)))
    sub: dict[str, Attribute] = {}
    if depth > 0:
        names = st.sampled_from(NAMES).map(expand)
        sub = draw(st.dictionaries(names, q_attributes(depth=depth - 1), max_size=2))
    stamp = draw(st.sampled_from(TIMESTAMPS))
    return Attribute(
        kind=kind,
        value=draw(_VALUES[kind]),
        dataset_id=dataset_id,
        observed_at=draw(st.none() | st.sampled_from(TIMESTAMPS)),
        unit_code=draw(st.none() | st.sampled_from(["CEL", "a"])),
        sub=MappingProxyType(sub),
        created_at=stamp,
        modified_at=stamp,
    )


@st.composite
def q_entities(draw: st.DrawFn, index: int = 0) -> Entity:
    """An entity whose attributes come from :data:`NAMES`, some with several instances."""
    attrs: dict[str, tuple[Attribute, ...]] = {}
    for name in draw(st.lists(st.sampled_from(NAMES), max_size=4, unique=True)):
        dataset_ids = draw(st.lists(st.none() | _uris, min_size=1, max_size=2, unique=True))
        attrs[expand(name)] = order_instances(
            tuple(draw(q_attributes(dataset_id=d)) for d in dataset_ids)
        )
    created = draw(st.sampled_from(TIMESTAMPS))
    return Entity(
        id=f"urn:ngsi-ld:Thing:{index}",
        types=(expand("Thing"),),
        attrs=MappingProxyType(attrs),
        scope=tuple(draw(st.lists(st.sampled_from(SCOPES), max_size=2, unique=True))),
        created_at=created,
        modified_at=max(created, draw(st.sampled_from(TIMESTAMPS))),
    )


def entity_lists(max_size: int = 6) -> st.SearchStrategy[list[Entity]]:
    """Several entities with distinct ids."""
    return st.integers(0, max_size).flatmap(
        lambda n: st.tuples(*(q_entities(i) for i in range(n))).map(list)
    )


# -- q texts ----------------------------------------------------------------------------------

_EQ_VALUES = (
    "-1", "0", "1", "2.5", "-1.5", "1e0", '"a"', '"ab"', '"B"', '"b"', '""', "true", "false",
    "2024-01-01T00:00:00Z", "2024-03-01T00:00:00Z", "2024-01-01", "12:00:00Z", "08:30:00",
    "urn:ngsi-ld:X:1", '"urn:ngsi-ld:X:2"', '"a\\u0062"',
)  # fmt: skip
_ORDERED_VALUES = (
    "-1", "0", "1", "2.5", '"a"', '"B"', '"b"', "2024-01-01T00:00:00Z", "2024-06-01T12:00:00Z",
    "2024-01-01", "12:00:00Z",
)  # fmt: skip
_RANGES = ("0..2", "-2..0.5", '"a".."b"', "2024-01-01T00:00:00Z..2024-12-31T00:00:00Z",
           "2023-01-01..2024-01-01", "1..-1")  # fmt: skip
_PATTERNS = ("a", "^a", "b$", "(a|B)", '"a|B"', "[0-9]", "^$", "(?i)b", "X:1")

_names = st.sampled_from(NAMES)


@st.composite
def q_paths(draw: st.DrawFn, plain: bool = False) -> str:
    """A path: ``a``, ``a.b``, ``a.observedAt``, ``a[k]``, ``a.b[k.l]``, ``createdAt``.

    ``plain`` draws bare attribute names only (the paths the value index answers).
    """
    if plain:
        return draw(_names)
    if draw(st.integers(0, 12)) == 0:
        return draw(st.sampled_from(["createdAt", "modifiedAt"]))
    path = draw(_names)
    if draw(st.booleans()):
        path += "." + draw(_names)
    ending = draw(st.integers(0, 5))
    if ending == 1:
        path += "." + draw(st.sampled_from(["observedAt", "unitCode", "datasetId", "createdAt"]))
    elif ending == 2:
        keys = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=2))
        path += "[" + ".".join(keys) + "]" if draw(st.booleans()) else f"[{']['.join(keys)}]"
    elif ending == 3:
        path += draw(st.sampled_from(["[*]", "[en]", "[@none]"]))
    return path


@st.composite
def q_terms(draw: st.DrawFn, plain: bool = False) -> str:
    """One query term over the pools (always valid)."""
    path = draw(q_paths(plain))
    form = draw(st.integers(0, 6))
    if form == 0:
        return draw(st.sampled_from(["", "!"])) + path
    if form in (1, 2):
        op = draw(st.sampled_from(["==", "!="]))
        if draw(st.integers(0, 3)) == 0:
            return path + op + draw(st.sampled_from(_RANGES))
        values = draw(st.lists(st.sampled_from(_EQ_VALUES), min_size=1, max_size=3))
        return path + op + ",".join(values)
    if form in (3, 4):
        op = draw(st.sampled_from([">", ">=", "<", "<="]))
        return path + op + draw(st.sampled_from(_ORDERED_VALUES))
    op = draw(st.sampled_from(["~=", "!~="]))
    return path + op + draw(st.sampled_from(_PATTERNS))


def q_texts(max_leaves: int = 5, plain: bool = False) -> st.SearchStrategy[str]:
    """Valid q texts: terms joined by ``;`` and ``|``, with parentheses (``plain``: bare names)."""
    return st.recursive(
        q_terms(plain),
        lambda inner: st.one_of(
            st.builds(lambda a, b: f"{a};{b}", inner, inner),
            st.builds(lambda a, b: f"{a}|{b}", inner, inner),
            inner.map(lambda a: f"({a})"),
        ),
        max_leaves=max_leaves,
    )


def scope_texts() -> st.SearchStrategy[str]:
    """Valid scopeQ texts over :data:`SCOPES`."""
    term = st.one_of(st.sampled_from(SCOPES), st.sampled_from(SCOPES).map(lambda s: s + "/#"))
    term = term | st.just("/#")
    return st.recursive(
        term,
        lambda inner: st.one_of(
            st.builds(lambda a, b: f"{a};{b}", inner, inner),
            st.builds(lambda a, b: f"{a}|{b}", inner, inner),
            inner.map(lambda a: f"({a})"),
        ),
        max_leaves=4,
    )
