"""Hypothesis strategies for NGSI-LD values: JSON, geometries, attributes of every kind, entities.

Entities come out as the typed model (names expanded with the core context, timestamps in the
canonical form) so that tests can render them and parse them back.
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from hypothesis import strategies as st

from burgo.ngsild.context import DEFAULT_VOCAB, core_context
from burgo.ngsild.model import Attribute, AttrKind, Entity, order_instances
from burgo.ngsild.parse import NGSI_LD_NULL, RESERVED_NAMES
from burgo.ngsild.times import format_datetime

EXAMPLE_NS = "https://example.org/ns/"

_CORE_TERMS = frozenset(core_context().terms)

# Short names that are not core terms: they compact to themselves under the core context.
words = st.builds(
    lambda head, tail: head + tail,
    st.sampled_from("abcdefghijklmnopqrstuvwxyz"),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_", max_size=8),
).filter(lambda w: w not in _CORE_TERMS and w not in RESERVED_NAMES)

# Expanded names: under the core context's default vocabulary, or full IRIs of another vocabulary.
names = st.one_of(
    words.map(lambda w: DEFAULT_VOCAB + w),
    words.map(lambda w: EXAMPLE_NS + w),
)

_ID_PARTS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABC0123456789_-", min_size=1, max_size=8)
_TYPE_PARTS = st.sampled_from(["Room", "Device", "Street", "Parking", "Person"])
# Entity ids as URNs: an id with a '/' cannot be addressed in the API's URL paths yet.
entity_ids = st.builds(lambda t, i: f"urn:ngsi-ld:{t}:{i}", _TYPE_PARTS, _ID_PARTS)
uris = st.one_of(
    entity_ids,
    st.builds(lambda a, b: f"https://example.org/{a}/{b}", _ID_PARTS, _ID_PARTS),
)

# Texts orjson can encode; never the NGSI-LD Null, which only patches may carry.
texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12).filter(
    lambda t: t != NGSI_LD_NULL
)

scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)

# Keys a value object may have, including those that look like NGSI-LD structure.
_TRICKY_KEYS = (
    "type",
    "value",
    "object",
    "objectList",
    "valueList",
    "languageMap",
    "vocab",
    "json",
    "datasetId",
    "observedAt",
    "unitCode",
    "@context",
    "coordinates",
)
keys = st.one_of(st.sampled_from(_TRICKY_KEYS), texts)

_TRICKY_OBJECTS = st.one_of(
    st.builds(lambda t: {"type": t, "name": "x"}, st.sampled_from(["PostalAddress", "Thing"])),
    st.builds(
        lambda k: {"type": k, "value": 1}, st.sampled_from(["Property", "Relationship", "Foo"])
    ),
    st.just({"type": "Point", "coordinates": [1.0, 2.0]}),
    st.just({"value": 3, "datasetId": "urn:ngsi-ld:x:1"}),
    st.just({"object": "urn:ngsi-ld:x:1"}),
    st.just({"languageMap": {"en": "x"}}),
    st.just({"observedAt": "2024-01-01T00:00:00.000Z"}),
)


def json_values(*, nulls: bool = False) -> st.SearchStrategy[Any]:
    """Any JSON value (no NGSI-LD Null; JSON null only inside containers when ``nulls``)."""
    leaves = st.one_of(scalars, st.none()) if nulls else scalars
    return st.recursive(
        st.one_of(leaves, _TRICKY_OBJECTS),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(keys, inner, max_size=3),
        ),
        max_leaves=8,
    )


# Values that tempt a concise reader into seeing structure are drawn as often as ordinary ones.
property_values = st.one_of(
    json_values(),
    _TRICKY_OBJECTS,
    st.lists(_TRICKY_OBJECTS, min_size=1, max_size=2),
)

timestamps = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
).map(format_datetime)

longitudes = st.floats(min_value=-180, max_value=180, allow_nan=False)
latitudes = st.floats(min_value=-90, max_value=90, allow_nan=False)
positions = st.builds(lambda x, y: [x, y], longitudes, latitudes)


def _ring(points: list[list[float]]) -> list[list[float]]:
    return [*points, points[0]]


geometries = st.one_of(
    st.builds(lambda p: {"type": "Point", "coordinates": p}, positions),
    st.builds(
        lambda ps: {"type": "LineString", "coordinates": ps},
        st.lists(positions, min_size=2, max_size=4),
    ),
    st.builds(
        lambda ps: {"type": "Polygon", "coordinates": [_ring(ps)]},
        st.lists(positions, min_size=3, max_size=4),
    ),
    st.builds(
        lambda ps: {"type": "MultiPoint", "coordinates": ps},
        st.lists(positions, min_size=1, max_size=3),
    ),
)

language_tags = st.sampled_from(["en", "pt", "pt-BR", "fr-CH", "es", "@none"])
language_maps = st.dictionaries(
    language_tags, st.one_of(texts, st.lists(texts, max_size=2)), min_size=1, max_size=3
)


def _one_or_many(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(strategy, st.lists(strategy, min_size=1, max_size=3, unique=True))


_VALUES: dict[AttrKind, st.SearchStrategy[Any]] = {
    AttrKind.PROPERTY: property_values,
    AttrKind.RELATIONSHIP: _one_or_many(uris),
    AttrKind.GEO_PROPERTY: geometries,
    AttrKind.LANGUAGE_PROPERTY: language_maps,
    AttrKind.VOCAB_PROPERTY: _one_or_many(names),
    AttrKind.JSON_PROPERTY: st.one_of(
        st.dictionaries(keys, json_values(nulls=True), max_size=3),
        st.lists(json_values(nulls=True), max_size=3),
    ),
    AttrKind.LIST_PROPERTY: st.lists(property_values, max_size=3),
    AttrKind.LIST_RELATIONSHIP: st.lists(uris.map(lambda u: {"object": u}), max_size=3),
}
_WITH_UNIT = frozenset({AttrKind.PROPERTY, AttrKind.GEO_PROPERTY, AttrKind.LIST_PROPERTY})
_RELATIONSHIPS = frozenset({AttrKind.RELATIONSHIP, AttrKind.LIST_RELATIONSHIP})

kinds = st.sampled_from(list(AttrKind))


@st.composite
def attributes(draw: st.DrawFn, *, dataset_id: str | None = None, depth: int = 2) -> Attribute:
    """One attribute instance of any kind, with metadata and (while ``depth``) sub-attributes."""
    kind = draw(kinds)
    sub: dict[str, Attribute] = {}
    if depth > 0:
        sub = draw(st.dictionaries(names, attributes(depth=depth - 1), max_size=depth))
    return Attribute(
        kind=kind,
        value=draw(_VALUES[kind]),
        dataset_id=dataset_id,
        observed_at=draw(st.none() | timestamps),
        unit_code=draw(st.none() | st.sampled_from(["CEL", "MTR", "P1"]))
        if kind in _WITH_UNIT
        else None,
        object_type=draw(st.none() | _one_or_many(names)) if kind in _RELATIONSHIPS else None,
        sub=MappingProxyType(sub) if sub else MappingProxyType({}),
    )


@st.composite
def instances(draw: st.DrawFn) -> tuple[Attribute, ...]:
    """The instances of one attribute: a default one and/or some with distinct datasetIds."""
    dataset_ids = draw(st.lists(st.none() | uris, min_size=1, max_size=3, unique=True))
    return order_instances(tuple(draw(attributes(dataset_id=d)) for d in dataset_ids))


scopes = st.lists(
    st.sampled_from(["Madrid", "Gardens", "a1", "Fundao", "parks"]), min_size=1, max_size=3
).map(lambda parts: "/" + "/".join(parts))


@st.composite
def entities(draw: st.DrawFn, *, max_attrs: int = 3) -> Entity:
    """An entity with unique types, some scopes and attributes of every kind (no timestamps)."""
    attrs = draw(st.dictionaries(names, instances(), min_size=1, max_size=max_attrs))
    return Entity(
        id=draw(entity_ids),
        types=tuple(draw(st.lists(names, min_size=1, max_size=2, unique=True))),
        attrs=MappingProxyType(attrs),
        scope=tuple(draw(st.lists(scopes, max_size=2, unique=True))),
    )
