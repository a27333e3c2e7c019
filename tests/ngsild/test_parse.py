"""Reading entities from clients: normalized and concise input, inference rules, validation."""

from __future__ import annotations

from typing import Any

import pytest

from burgo.ngsild.context import DEFAULT_VOCAB, core_context, process_context
from burgo.ngsild.errors import BadRequestData
from burgo.ngsild.model import Attribute, AttrKind, Entity
from burgo.ngsild.parse import (
    NGSI_LD_NULL,
    normalize_attribute,
    parse_entity,
    parse_fragment,
)
from burgo.ngsild.times import canonical_datetime

CTX = core_context()
ROOM = "urn:ngsi-ld:Room:1"
POINT = {"type": "Point", "coordinates": [-7.5, 40.1]}
ADDRESS = {"type": "PostalAddress", "streetAddress": "Rua da Cale", "addressLocality": "Fundão"}


def parse(**attrs: Any) -> Entity:
    return parse_entity({"id": ROOM, "type": "Room", **attrs}, CTX)


def only(entity: Entity, name: str = "a") -> Attribute:
    (instance,) = entity.attrs[DEFAULT_VOCAB + name]
    return instance


CONCISE = [
    pytest.param(21.5, AttrKind.PROPERTY, 21.5, id="number"),
    pytest.param("on", AttrKind.PROPERTY, "on", id="string"),
    pytest.param(False, AttrKind.PROPERTY, False, id="boolean"),
    pytest.param([1, "x"], AttrKind.PROPERTY, [1, "x"], id="array of scalars"),
    pytest.param({"k": 1}, AttrKind.PROPERTY, {"k": 1}, id="plain object"),
    pytest.param(ADDRESS, AttrKind.PROPERTY, ADDRESS, id="object with its own type"),
    pytest.param(
        {"type": "Thing", "value": 3},
        AttrKind.PROPERTY,
        {"type": "Thing", "value": 3},
        id="object with own type and a value member",
    ),
    pytest.param([{"k": 1}, {"k": 2}], AttrKind.PROPERTY, [{"k": 1}, {"k": 2}], id="objects"),
    pytest.param({"value": {"k": 1}}, AttrKind.PROPERTY, {"k": 1}, id="value"),
    pytest.param(POINT, AttrKind.GEO_PROPERTY, POINT, id="bare geometry"),
    pytest.param({"value": POINT}, AttrKind.GEO_PROPERTY, POINT, id="value geometry"),
    pytest.param({"object": "urn:x:1"}, AttrKind.RELATIONSHIP, "urn:x:1", id="object"),
    pytest.param(
        {"languageMap": {"en": "Hall"}}, AttrKind.LANGUAGE_PROPERTY, {"en": "Hall"}, id="lang"
    ),
    pytest.param(
        {"vocab": "office"}, AttrKind.VOCAB_PROPERTY, DEFAULT_VOCAB + "office", id="vocab"
    ),
    pytest.param({"json": {"a": None}}, AttrKind.JSON_PROPERTY, {"a": None}, id="json"),
    pytest.param({"valueList": [3, 1]}, AttrKind.LIST_PROPERTY, [3, 1], id="valueList"),
    pytest.param(
        {"objectList": ["urn:x:1", {"object": "urn:x:2"}]},
        AttrKind.LIST_RELATIONSHIP,
        [{"object": "urn:x:1"}, {"object": "urn:x:2"}],
        id="objectList",
    ),
]


@pytest.mark.parametrize(("raw", "kind", "value"), CONCISE)
def test_concise_input_is_read_as_the_attribute_it_stands_for(
    raw: Any, kind: AttrKind, value: Any
) -> None:
    attr = only(parse(a=raw))
    assert (attr.kind, attr.value) == (kind, value)


NORMALIZED = [
    ({"type": "Property", "value": 1}, AttrKind.PROPERTY, 1),
    ({"type": "Property", "value": POINT}, AttrKind.PROPERTY, POINT),
    ({"type": "Property", "value": ADDRESS}, AttrKind.PROPERTY, ADDRESS),
    ({"type": "Relationship", "object": ["urn:x:1", "urn:x:2"]}, AttrKind.RELATIONSHIP, None),
    ({"type": "GeoProperty", "value": POINT}, AttrKind.GEO_PROPERTY, POINT),
    ({"type": "LanguageProperty", "languageMap": {"@none": "x"}}, AttrKind.LANGUAGE_PROPERTY, None),
    ({"type": "VocabProperty", "vocab": ["a", "b"]}, AttrKind.VOCAB_PROPERTY, None),
    ({"type": "JsonProperty", "json": [1, {"type": "x"}]}, AttrKind.JSON_PROPERTY, None),
    ({"type": "ListProperty", "valueList": [{"k": 1}]}, AttrKind.LIST_PROPERTY, None),
    (
        {"type": "ListRelationship", "objectList": [{"object": "urn:x:1"}]},
        AttrKind.LIST_RELATIONSHIP,
        None,
    ),
    ({"type": "https://uri.etsi.org/ngsi-ld/Property", "value": 2}, AttrKind.PROPERTY, 2),
]


@pytest.mark.parametrize(("raw", "kind", "value"), NORMALIZED)
def test_normalized_input_keeps_its_declared_type(raw: Any, kind: AttrKind, value: Any) -> None:
    attr = only(parse(a=raw))
    assert attr.kind == kind
    if value is not None:
        assert attr.value == value


def test_vocab_and_object_type_are_expanded_with_the_context() -> None:
    ctx = process_context({"ex": "https://example.org/", "office": "ex:Office"}, {})
    entity = parse_entity(
        {
            "id": ROOM,
            "type": "Room",
            "use": {"vocab": ["office", "shop"]},
            "owner": {"object": "urn:x:1", "objectType": "Person"},
        },
        ctx,
    )
    assert entity.attrs[DEFAULT_VOCAB + "use"][0].value == [
        "https://example.org/Office",
        DEFAULT_VOCAB + "shop",
    ]
    assert entity.attrs[DEFAULT_VOCAB + "owner"][0].object_type == DEFAULT_VOCAB + "Person"


def test_sub_attributes_nest_in_both_forms() -> None:
    entity = parse(
        a={
            "value": 21,
            "unitCode": "CEL",
            "observedAt": "2024-01-01T01:00:00+01:00",
            "accuracy": {"value": 0.5, "method": "calibrated"},
            "sensor": {"type": "Relationship", "object": "urn:x:1"},
            "where": POINT,
        }
    )
    attr = only(entity)
    assert (attr.value, attr.unit_code, attr.observed_at) == (21, "CEL", "2024-01-01T00:00:00.000Z")
    accuracy = attr.sub[DEFAULT_VOCAB + "accuracy"]
    assert accuracy.value == 0.5
    assert accuracy.sub[DEFAULT_VOCAB + "method"].value == "calibrated"
    assert attr.sub[DEFAULT_VOCAB + "sensor"].kind == AttrKind.RELATIONSHIP
    assert attr.sub[DEFAULT_VOCAB + "where"].kind == AttrKind.GEO_PROPERTY


def test_multi_instance_attribute_is_read_by_dataset_id_default_first() -> None:
    entity = parse(
        a=[
            {"value": 2, "datasetId": "urn:ds:b"},
            {"type": "Property", "value": 1},
            {"value": 3, "datasetId": "urn:ds:a"},
        ]
    )
    instances = entity.attrs[DEFAULT_VOCAB + "a"]
    assert [(i.dataset_id, i.value) for i in instances] == [
        (None, 1),
        ("urn:ds:a", 3),
        ("urn:ds:b", 2),
    ]


def test_system_members_and_lang_in_input_are_ignored() -> None:
    entity = parse_entity(
        {
            "id": ROOM,
            "type": "Room",
            "createdAt": "2020-01-01T00:00:00Z",
            "a": {"value": 1, "createdAt": "2020-01-01T00:00:00Z", "lang": "en"},
        },
        CTX,
    )
    assert entity.created_at is None
    assert only(entity) == Attribute(AttrKind.PROPERTY, 1)


def test_at_id_and_at_type_are_accepted_for_id_and_type() -> None:
    entity = parse_entity({"@id": ROOM, "@type": ["Room", "Room", "Place"], "a": 1}, CTX)
    assert entity.id == ROOM
    assert entity.types == (DEFAULT_VOCAB + "Room", DEFAULT_VOCAB + "Place")


def test_observed_at_is_kept_in_canonical_form() -> None:
    assert canonical_datetime("2024-03-01T12:00:00.123456+00:00") == "2024-03-01T12:00:00.123Z"
    assert canonical_datetime("0999-12-31T23:00:00Z") == "0999-12-31T23:00:00.000Z"
    assert canonical_datetime(canonical_datetime("0999-12-31T23:00:00Z")).startswith("0999")


INVALID: list[Any] = [
    pytest.param({"id": "not a uri", "type": "Room"}, "Entity id", id="entity id"),
    pytest.param({"id": ROOM}, "needs a type", id="no type"),
    pytest.param({"id": ROOM, "type": "Ro om"}, "entity type", id="bad type"),
    pytest.param({"id": ROOM, "type": "Room", "scope": "nope"}, "scope", id="bad scope"),
    pytest.param({"id": ROOM, "type": "Room", "bad name": 1}, "bad name", id="name w/ space"),
    pytest.param({"id": ROOM, "type": "Room", "observedAt": 1}, "reserved", id="reserved"),
    pytest.param(
        {"id": ROOM, "type": "Room", "a": {"value": 1, "ngsi-ld:hasValue": 2}},
        "sub-attribute",
        id="sub-attribute named value",
    ),
    pytest.param(
        {"id": ROOM, "type": "Room", "ngsi-ld:unitCode": 1}, "reserved", id="expands to reserved"
    ),
    pytest.param(
        {"id": ROOM, "type": "Room", "a": {"value": 1, "datasetId": 5}}, "datasetId", id="dsid"
    ),
    pytest.param(
        {"id": ROOM, "type": "Room", "a": {"object": "no uri"}}, "Object", id="object not uri"
    ),
    pytest.param({"id": ROOM, "type": "Room", "a": {"object": []}}, "needs an object", id="obj"),
    pytest.param(
        {"id": ROOM, "type": "Room", "a": {"objectList": ["x y"]}}, "ListRelationship", id="ol"
    ),
    pytest.param({"id": ROOM, "type": "Room", "a": None}, "null", id="JSON null"),
    pytest.param({"id": ROOM, "type": "Room", "a": {"value": None}}, "null", id="null value"),
    pytest.param(
        {"id": ROOM, "type": "Room", "a": {"value": 1, "sub": None}}, "null", id="null sub"
    ),
    pytest.param(
        {"id": ROOM, "type": "Room", "a": {"valueList": [1, None]}}, "null", id="null in list"
    ),
    pytest.param({"id": ROOM, "type": "Room", "a": NGSI_LD_NULL}, "NGSI-LD Null", id="null"),
    pytest.param(
        {"id": ROOM, "type": "Room", "a": {"value": {"k": NGSI_LD_NULL}}}, "NGSI-LD Null", id="n"
    ),
    pytest.param(
        {"id": ROOM, "type": "Room", "a": {"type": "Point"}}, "needs 'coordinates'", id="no coords"
    ),
    pytest.param(
        {"id": ROOM, "type": "Room", "a": {"type": "Point", "coordinates": [200, 0]}},
        "outside",
        id="longitude",
    ),
    pytest.param(
        {
            "id": ROOM,
            "type": "Room",
            "a": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]},
        },
        "ring",
        id="open ring",
    ),
    pytest.param(
        {"id": ROOM, "type": "Room", "a": {"type": "GeoProperty", "value": {"k": 1}}},
        "GeoJSON",
        id="geo value",
    ),
    pytest.param(
        {"id": ROOM, "type": "Room", "a": {"type": "GeoProperty", "value": {"type": ["Point"]}}},
        "GeoJSON",
        id="geo type not a string",
    ),
    pytest.param(
        {"id": ROOM, "type": "Room", "a": {"languageMap": {"e n": "x"}}}, "language tag", id="tag"
    ),
    pytest.param({"id": ROOM, "type": "Room", "a": {"languageMap": {"en": 3}}}, "strings", id="l"),
    pytest.param({"id": ROOM, "type": "Room", "a": {"languageMap": {}}}, "non-empty", id="lm"),
    pytest.param({"id": ROOM, "type": "Room", "a": {"vocab": 3}}, "VocabProperty", id="vocab"),
    pytest.param({"id": ROOM, "type": "Room", "a": {"json": "text"}}, "JsonProperty", id="json"),
    pytest.param({"id": ROOM, "type": "Room", "a": {"valueList": 3}}, "ListProperty", id="list"),
    pytest.param(
        {"id": ROOM, "type": "Room", "a": {"type": "property", "value": 1}},
        "did you mean 'Property'",
        id="type case",
    ),
    pytest.param(
        {"id": ROOM, "type": "Room", "a": {"type": "Relationship", "value": 1}},
        "cannot have 'value'",
        id="relationship with value",
    ),
    pytest.param(
        {"id": ROOM, "type": "Room", "a": {"type": "Property", "object": "urn:x:1"}},
        "cannot have 'object'",
        id="property with object",
    ),
    pytest.param(
        {"id": ROOM, "type": "Room", "a": {"type": "Property"}}, "needs a 'value'", id="no value"
    ),
    pytest.param(
        {"id": ROOM, "type": "Room", "a": {"object": "urn:x:1", "unitCode": "CEL"}},
        "unitCode",
        id="unit on relationship",
    ),
    pytest.param(
        {"id": ROOM, "type": "Room", "a": {"value": 1, "objectType": "T"}},
        "objectType",
        id="objectType on property",
    ),
    pytest.param(
        {"id": ROOM, "type": "Room", "a": {"value": 1, "s": {"value": 1, "datasetId": "urn:d"}}},
        "Sub-attribute",
        id="datasetId on sub-attribute",
    ),
    pytest.param(
        {"id": ROOM, "type": "Room", "a": {"value": 1, "@context": {}}}, "@context", id="ctx"
    ),
    pytest.param(
        {"id": ROOM, "type": "Room", "a": {"value": 1, "observedAt": "yesterday"}},
        "observedAt",
        id="observedAt",
    ),
    pytest.param(
        {"id": ROOM, "type": "Room", "a": {"value": 1, "observedAt": "0001-01-01T00:00:00+01:00"}},
        "out of range",
        id="observedAt out of range",
    ),
    pytest.param(
        {"id": ROOM, "type": "Room", "a": [{"value": 1}, {"value": 2}]},
        "more than one instance with the default instance",
        id="two default instances",
    ),
    pytest.param(
        {
            "id": ROOM,
            "type": "Room",
            "a": [{"value": 1, "datasetId": "urn:d"}, {"value": 2, "datasetId": "urn:d"}],
        },
        "datasetId urn:d",
        id="repeated datasetId",
    ),
]


@pytest.mark.parametrize(("body", "message"), INVALID)
def test_invalid_input_is_rejected_with_a_clear_message(body: Any, message: str) -> None:
    with pytest.raises(BadRequestData, match=message) as caught:
        parse_entity(body, CTX)
    assert caught.value.status == 400


def test_an_entity_must_be_an_object() -> None:
    with pytest.raises(BadRequestData, match="JSON object"):
        parse_entity([{"id": ROOM, "type": "Room"}], CTX)


def test_patches_keep_ngsi_ld_nulls() -> None:
    fragment = parse_fragment(
        {"a": NGSI_LD_NULL, "b": {"value": 1, "note": NGSI_LD_NULL}}, CTX, patch=True
    )
    assert fragment.attrs[DEFAULT_VOCAB + "a"] == [{"type": "Property", "value": NGSI_LD_NULL}]
    assert fragment.attrs[DEFAULT_VOCAB + "b"][0][DEFAULT_VOCAB + "note"] == NGSI_LD_NULL


def test_patches_reject_repeated_dataset_ids() -> None:
    with pytest.raises(BadRequestData, match="more than one instance"):
        parse_fragment({"a": [{"value": 1}, {"value": 2}]}, CTX, patch=True)


def test_patch_of_metadata_alone_has_no_type() -> None:
    (doc,) = normalize_attribute({"observedAt": "2024-01-01T00:00:00Z"}, CTX, name="a", patch=True)
    assert doc == {"observedAt": "2024-01-01T00:00:00.000Z"}


def test_patch_of_an_object_with_its_own_type_is_a_value() -> None:
    (doc,) = normalize_attribute(ADDRESS, CTX, name="address", patch=True)
    assert doc == {"type": "Property", "value": ADDRESS}
