"""Rendering entities: normalized, concise, simplified, sysAttrs, projection, lang, GeoJSON."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest

from burgo.ngsild.context import core_context, process_context
from burgo.ngsild.model import Attribute, AttrKind, Entity
from burgo.ngsild.render import (
    Format,
    Projection,
    RenderOptions,
    best_language,
    parse_lang,
    render_entity,
    render_feature,
)

CTX = core_context()
ROOM = "urn:ngsi-ld:Room:1"
POINT = {"type": "Point", "coordinates": [-7.5, 40.1]}
T0 = "2024-01-01T00:00:00.000Z"
T1 = "2024-02-01T00:00:00.000Z"


def v(name: str) -> str:
    return CTX.expand(name)


def room(**attrs: Attribute | tuple[Attribute, ...]) -> Entity:
    instances = {v(n): a if isinstance(a, tuple) else (a,) for n, a in attrs.items()}
    return Entity(ROOM, (v("Room"),), MappingProxyType(instances))


def render(entity: Entity, fmt: Format = Format.NORMALIZED, **options: Any) -> dict[str, Any]:
    return render_entity(entity, CTX, RenderOptions(format=fmt, **options))


def prop(value: Any, **meta: Any) -> Attribute:
    return Attribute(AttrKind.PROPERTY, value, **meta)


EVERY_KIND = room(
    temp=prop(21.5, unit_code="CEL", sub=MappingProxyType({v("accuracy"): prop(0.2)})),
    owner=Attribute(AttrKind.RELATIONSHIP, "urn:ngsi-ld:Person:1", object_type=v("Person")),
    location=Attribute(AttrKind.GEO_PROPERTY, POINT),
    name=Attribute(AttrKind.LANGUAGE_PROPERTY, {"pt": "Sala", "en": "Room"}),
    use=Attribute(AttrKind.VOCAB_PROPERTY, v("office")),
    cfg=Attribute(AttrKind.JSON_PROPERTY, {"mode": "eco"}),
    series=Attribute(AttrKind.LIST_PROPERTY, [1, 2]),
    near=Attribute(AttrKind.LIST_RELATIONSHIP, [{"object": "urn:x:1"}, {"object": "urn:x:2"}]),
)


def test_normalized_gives_every_attribute_its_type() -> None:
    out = render(EVERY_KIND)
    assert out["temp"] == {
        "type": "Property",
        "value": 21.5,
        "unitCode": "CEL",
        "accuracy": {"type": "Property", "value": 0.2},
    }
    assert out["owner"] == {
        "type": "Relationship",
        "object": "urn:ngsi-ld:Person:1",
        "objectType": "Person",
    }
    assert out["location"] == {"type": "GeoProperty", "value": POINT}
    assert out["name"] == {"type": "LanguageProperty", "languageMap": {"pt": "Sala", "en": "Room"}}
    assert out["use"] == {"type": "VocabProperty", "vocab": "office"}
    assert out["cfg"] == {"type": "JsonProperty", "json": {"mode": "eco"}}
    assert out["series"] == {"type": "ListProperty", "valueList": [1, 2]}
    assert out["near"] == {
        "type": "ListRelationship",
        "objectList": [{"object": "urn:x:1"}, {"object": "urn:x:2"}],
    }
    assert (out["id"], out["type"]) == (ROOM, "Room")


def test_concise_drops_types_and_wrappers_where_nothing_is_lost() -> None:
    out = render(EVERY_KIND, Format.CONCISE)
    assert out["temp"] == {"value": 21.5, "unitCode": "CEL", "accuracy": 0.2}
    assert out["owner"] == {"object": "urn:ngsi-ld:Person:1", "objectType": "Person"}
    assert out["location"] == POINT
    assert out["name"] == {"languageMap": {"pt": "Sala", "en": "Room"}}
    assert out["use"] == {"vocab": "office"}
    assert out["cfg"] == {"json": {"mode": "eco"}}
    assert out["series"] == {"valueList": [1, 2]}
    assert out["near"] == {"objectList": [{"object": "urn:x:1"}, {"object": "urn:x:2"}]}


@pytest.mark.parametrize(
    ("value", "concise"),
    [
        (3, 3),
        ({"k": 1}, {"k": 1}),
        ([1, {"k": 1}], [1, {"k": 1}]),
        ({"type": "PostalAddress", "k": 1}, {"value": {"type": "PostalAddress", "k": 1}}),
        ({"value": 1}, {"value": {"value": 1}}),
        ({"observedAt": T0}, {"value": {"observedAt": T0}}),
        ([{"k": 1}], {"value": [{"k": 1}]}),
        (POINT, {"type": "Property", "value": POINT}),
    ],
)
def test_concise_property_values_that_would_read_back_differently_are_wrapped(
    value: Any, concise: Any
) -> None:
    assert render(room(a=prop(value)), Format.CONCISE)["a"] == concise


def test_simplified_gives_values_only() -> None:
    out = render(EVERY_KIND, Format.SIMPLIFIED)
    assert out == {
        "id": ROOM,
        "type": "Room",
        "temp": 21.5,
        "owner": "urn:ngsi-ld:Person:1",
        "location": POINT,
        "name": {"languageMap": {"pt": "Sala", "en": "Room"}},
        "use": {"vocab": "office"},
        "cfg": {"json": {"mode": "eco"}},
        "series": [1, 2],
        "near": ["urn:x:1", "urn:x:2"],
    }


MULTI = room(
    power=(prop(1), prop(2, dataset_id="urn:ds:solar")),
    only_named=(prop(5, dataset_id="urn:ds:a"),),
)


def test_multi_instance_attributes_in_each_format() -> None:
    assert render(MULTI)["power"] == [
        {"type": "Property", "value": 1},
        {"type": "Property", "value": 2, "datasetId": "urn:ds:solar"},
    ]
    assert render(MULTI, Format.CONCISE)["power"] == [
        {"value": 1},
        {"value": 2, "datasetId": "urn:ds:solar"},
    ]
    simplified = render(MULTI, Format.SIMPLIFIED)
    assert simplified["power"] == {"dataset": {"@none": 1, "urn:ds:solar": 2}}
    assert simplified["only_named"] == {"dataset": {"urn:ds:a": 5}}


STAMPED = Entity(
    ROOM,
    (v("Room"),),
    MappingProxyType(
        {
            v("temp"): (
                prop(
                    21,
                    created_at=T0,
                    modified_at=T1,
                    sub=MappingProxyType({v("acc"): prop(1, created_at=T0, modified_at=T0)}),
                ),
            )
        }
    ),
    created_at=T0,
    modified_at=T1,
)


def test_sys_attrs_show_timestamps_of_entity_attributes_and_sub_attributes() -> None:
    out = render(STAMPED, sys_attrs=True)
    assert (out["createdAt"], out["modifiedAt"]) == (T0, T1)
    assert (out["temp"]["createdAt"], out["temp"]["modifiedAt"]) == (T0, T1)
    assert out["temp"]["acc"]["createdAt"] == T0
    concise = render(STAMPED, Format.CONCISE, sys_attrs=True)
    assert concise["temp"]["acc"] == {"value": 1, "createdAt": T0, "modifiedAt": T0}
    simplified = render(STAMPED, Format.SIMPLIFIED, sys_attrs=True)
    assert simplified == {"id": ROOM, "type": "Room", "temp": 21, "createdAt": T0, "modifiedAt": T1}


def test_without_sys_attrs_no_timestamp_is_shown() -> None:
    assert "createdAt" not in str(render(STAMPED))


@pytest.mark.parametrize(
    ("projection", "keys"),
    [
        (Projection(pick=frozenset({v("temp")})), {"temp"}),
        (Projection(pick=frozenset({"id", v("use")})), {"id", "use"}),
        (Projection(omit=frozenset({"type", v("temp")})), {"id", "use", "owner"}),
        (Projection(pick=frozenset({"id", "type"}), omit=frozenset({"type"})), {"id"}),
        (Projection(pick=frozenset({v("missing")})), set()),
    ],
)
def test_pick_and_omit_choose_members(projection: Projection, keys: set[str]) -> None:
    entity = room(temp=prop(1), use=prop(2), owner=Attribute(AttrKind.RELATIONSHIP, "urn:x:1"))
    assert set(render(entity, projection=projection)) == keys


def test_scope_is_shown_and_can_be_omitted() -> None:
    entity = Entity(ROOM, (v("Room"),), scope=("/Fundao/Parks", "/Fundao"))
    assert render(entity)["scope"] == ["/Fundao/Parks", "/Fundao"]
    assert "scope" not in render(entity, projection=Projection(omit=frozenset({"scope"})))


def test_several_types_are_a_list() -> None:
    entity = Entity(ROOM, (v("Room"), "https://example.org/Place"))
    assert render(entity)["type"] == ["Room", "https://example.org/Place"]


def test_vocab_and_object_type_are_compacted_with_the_context() -> None:
    ctx = process_context({"ex": "https://example.org/", "Office": "ex:Office"}, {})
    entity = room(
        use=Attribute(AttrKind.VOCAB_PROPERTY, ["https://example.org/Office", v("shop")]),
        owner=Attribute(
            AttrKind.RELATIONSHIP, "urn:x:1", object_type=["https://example.org/Person"]
        ),
    )
    out = render_entity(entity, ctx, RenderOptions())
    assert out["use"]["vocab"] == ["Office", "shop"]
    assert out["owner"]["objectType"] == ["ex:Person"]
    assert render_entity(entity, ctx, RenderOptions(format=Format.SIMPLIFIED))["use"] == {
        "vocab": ["Office", "shop"]
    }


NAMES = {"pt": "Sala", "pt-BR": "Salão", "en": "Room", "@none": "Sala 1"}


@pytest.mark.parametrize(
    ("lang", "tag"),
    [
        ("en", "en"),
        ("EN", "en"),
        ("pt-BR", "pt-BR"),
        ("pt-PT", "pt"),
        ("fr,en;q=0.5", "en"),
        ("en;q=0.4,pt;q=0.8", "pt"),
        ("fr", "@none"),
        ("*", "@none"),
        ("en;q=0,fr", "@none"),
    ],
)
def test_best_language_follows_preferences_and_falls_back(lang: str, tag: str) -> None:
    assert best_language(NAMES, parse_lang(lang)) == (tag, NAMES[tag])


def test_language_fallback_without_none_is_some_language() -> None:
    assert best_language({"de": "Raum"}, parse_lang("fr")) == ("de", "Raum")


def test_lang_turns_language_properties_into_properties() -> None:
    entity = room(name=Attribute(AttrKind.LANGUAGE_PROPERTY, NAMES, observed_at=T0))
    prefs = parse_lang("pt")
    assert render(entity, lang=prefs)["name"] == {
        "type": "Property",
        "value": "Sala",
        "lang": "pt",
        "observedAt": T0,
    }
    assert render(entity, Format.CONCISE, lang=prefs)["name"] == {
        "value": "Sala",
        "lang": "pt",
        "observedAt": T0,
    }
    assert render(entity, Format.SIMPLIFIED, lang=prefs)["name"] == "Sala"


def test_feature_takes_its_geometry_from_the_geometry_property() -> None:
    entity = room(
        location=Attribute(AttrKind.GEO_PROPERTY, POINT),
        area=Attribute(AttrKind.GEO_PROPERTY, {"type": "Point", "coordinates": [1, 2]}),
        label=prop("x"),
    )
    feature = render_feature(entity, CTX, RenderOptions(), v("location"))
    assert feature["type"] == "Feature"
    assert feature["id"] == ROOM
    assert feature["geometry"] == POINT
    assert feature["properties"]["type"] == "Room"
    assert feature["properties"]["label"] == {"type": "Property", "value": "x"}
    assert "id" not in feature["properties"]
    assert render_feature(entity, CTX, RenderOptions(), v("area"))["geometry"]["coordinates"] == [
        1,
        2,
    ]
    assert render_feature(entity, CTX, RenderOptions(), v("label"))["geometry"] is None
    assert render_feature(entity, CTX, RenderOptions(), v("nothing"))["geometry"] is None
    simple = render_feature(entity, CTX, RenderOptions(format=Format.SIMPLIFIED), v("location"))
    assert simple["properties"] == {
        "type": "Room",
        "location": POINT,
        "area": {"type": "Point", "coordinates": [1, 2]},
        "label": "x",
    }
