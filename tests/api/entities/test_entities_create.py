"""POST /entities, GET and DELETE /entities/{id}: every attribute kind round-trips through HTTP."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from tests.api.entity_checks import (  # noqa: F401 - fixtures
    BASE,
    Broker,
    ManualClock,
    assert_problem,
    running_broker,
    stored,
    unchanged,
)
from tests.conftest import CORE, JSON, LD, entity, link

ROOM = "urn:ngsi-ld:Room:1"
EXAMPLE_CONTEXT = {"ex": "https://example.org/", "Room": "ex:Room", "temperature": "ex:temp"}

EVERY_KIND: dict[str, Any] = {
    "temperature": {
        "type": "Property",
        "value": 21.5,
        "unitCode": "CEL",
        "observedAt": "2024-01-01T00:00:00.000Z",
        "accuracy": {"type": "Property", "value": 0.2},
        "measuredBy": {"type": "Relationship", "object": "urn:ngsi-ld:Sensor:7"},
    },
    "isPartOf": {"type": "Relationship", "object": "urn:ngsi-ld:Building:A"},
    "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [-7.5, 40.1]}},
    "name": {"type": "LanguageProperty", "languageMap": {"pt": "Sala", "en": "Room"}},
    "category": {"type": "VocabProperty", "vocab": "office"},
    "settings": {"type": "JsonProperty", "json": {"mode": "eco", "levels": [1, 2]}},
    "readings": {"type": "ListProperty", "valueList": [20.1, 20.4, 21.0]},
    "neighbours": {
        "type": "ListRelationship",
        "objectList": [{"object": "urn:ngsi-ld:Room:2"}, {"object": "urn:ngsi-ld:Room:3"}],
    },
}


def test_create_returns_201_with_location_and_no_body(client: TestClient) -> None:
    response = client.post(BASE, json=entity(), headers=JSON)
    assert response.status_code == 201
    assert response.headers["location"] == f"{BASE}/{ROOM}"
    assert response.content == b""


def test_every_attribute_kind_round_trips(client: TestClient) -> None:
    body = entity(**EVERY_KIND)
    assert client.post(BASE, json=body, headers=JSON).status_code == 201
    response = client.get(f"{BASE}/{ROOM}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert CORE in response.headers["link"]
    assert response.json() == body


def test_retrieve_as_json_ld_puts_the_context_in_the_body(client: TestClient) -> None:
    client.post(BASE, json=entity(), headers=JSON)
    response = client.get(f"{BASE}/{ROOM}", headers={"Accept": "application/ld+json"})
    assert response.headers["content-type"] == "application/ld+json"
    assert response.json()["@context"] == CORE
    assert "link" not in response.headers


def test_ld_json_create_uses_the_body_context(client: TestClient) -> None:
    body = {**entity(temperature={"type": "Property", "value": 20}), "@context": EXAMPLE_CONTEXT}
    assert client.post(BASE, json=body, headers=LD).status_code == 201
    plain = client.get(f"{BASE}/{ROOM}").json()
    assert plain["type"] == "https://example.org/Room"
    assert plain["https://example.org/temp"] == {"type": "Property", "value": 20}


def test_concise_input_is_stored_as_normalized(client: TestClient) -> None:
    concise = {
        "id": ROOM,
        "type": "Room",
        "temperature": 21,
        "isPartOf": {"object": "urn:ngsi-ld:Building:A"},
        "location": {"type": "Point", "coordinates": [1.0, 2.0]},
        "name": {"languageMap": {"en": "Room"}},
        "category": {"vocab": "office"},
        "settings": {"json": {"a": 1}},
        "readings": {"valueList": [1, 2]},
        "neighbours": {"objectList": ["urn:ngsi-ld:Room:2"]},
        "humidity": {"value": 40, "unitCode": "P1"},
    }
    assert client.post(BASE, json=concise, headers=JSON).status_code == 201
    got = client.get(f"{BASE}/{ROOM}").json()
    assert got["temperature"] == {"type": "Property", "value": 21}
    assert got["isPartOf"] == {"type": "Relationship", "object": "urn:ngsi-ld:Building:A"}
    assert got["location"]["type"] == "GeoProperty"
    assert got["name"]["type"] == "LanguageProperty"
    assert got["category"] == {"type": "VocabProperty", "vocab": "office"}
    assert got["settings"] == {"type": "JsonProperty", "json": {"a": 1}}
    assert got["readings"] == {"type": "ListProperty", "valueList": [1, 2]}
    assert got["neighbours"]["objectList"] == [{"object": "urn:ngsi-ld:Room:2"}]
    assert got["humidity"] == {"type": "Property", "value": 40, "unitCode": "P1"}


@pytest.mark.parametrize(
    ("sent", "canonical"),
    [
        ("2024-01-01T00:00:00Z", "2024-01-01T00:00:00.000Z"),
        ("2024-01-01T01:00:00.123456+01:00", "2024-01-01T00:00:00.123Z"),
        ("2024-01-01T00:00:00.5Z", "2024-01-01T00:00:00.500Z"),
    ],
)
def test_observed_at_is_stored_in_canonical_utc(
    client: TestClient, sent: str, canonical: str
) -> None:
    body = entity(temperature={"type": "Property", "value": 1, "observedAt": sent})
    client.post(BASE, json=body, headers=JSON)
    assert client.get(f"{BASE}/{ROOM}").json()["temperature"]["observedAt"] == canonical


def test_multi_instance_attribute_by_dataset_id(client: TestClient) -> None:
    instances: list[dict[str, Any]] = [
        {"type": "Property", "value": 20},
        {"type": "Property", "value": 21, "datasetId": "urn:ngsi-ld:Dataset:b"},
        {"type": "Property", "value": 22, "datasetId": "urn:ngsi-ld:Dataset:a"},
    ]
    client.post(BASE, json=entity(temperature=instances), headers=JSON)
    got = client.get(f"{BASE}/{ROOM}").json()["temperature"]
    by_dataset = {i.get("datasetId"): i for i in got}
    assert by_dataset == {i.get("datasetId"): i for i in instances}
    assert len(got) == 3


def test_sys_attrs_show_creation_and_modification_times(
    client: TestClient, clock: ManualClock
) -> None:
    client.post(BASE, json=entity(temperature={"type": "Property", "value": 1}), headers=JSON)
    got = stored(client, ROOM)
    assert got["createdAt"] == got["modifiedAt"] == "2024-05-01T08:00:00.000Z"
    assert got["temperature"]["createdAt"] == "2024-05-01T08:00:00.000Z"
    plain = client.get(f"{BASE}/{ROOM}").json()
    assert "createdAt" not in plain
    assert "createdAt" not in plain["temperature"]


def test_system_attributes_in_the_input_are_ignored(client: TestClient) -> None:
    body = {**entity(), "createdAt": "1999-01-01T00:00:00Z", "modifiedAt": "1999-01-01T00:00:00Z"}
    assert client.post(BASE, json=body, headers=JSON).status_code == 201
    assert stored(client, ROOM)["createdAt"] == "2024-05-01T08:00:00.000Z"


def test_link_header_context_applies_to_create_and_retrieve(client: TestClient) -> None:
    ctx = f"{BASE.rsplit('/', 1)[0]}/jsonldContexts"
    created = client.post(ctx, json={"@context": EXAMPLE_CONTEXT}, headers=JSON)
    assert created.status_code == 201
    url = "http://testserver" + created.headers["location"]
    body = entity(temperature={"type": "Property", "value": 20})
    assert client.post(BASE, json=body, headers={**JSON, **link(url)}).status_code == 201
    with_context = client.get(f"{BASE}/{ROOM}", headers=link(url)).json()
    assert with_context["type"] == "Room"
    assert with_context["temperature"]["value"] == 20
    assert client.get(f"{BASE}/{ROOM}").json()["type"] == "https://example.org/Room"


def test_vocab_and_object_type_follow_the_context(client: TestClient) -> None:
    context = {**EXAMPLE_CONTEXT, "office": "ex:office", "Building": "ex:Building"}
    body = {
        **entity(
            category={"type": "VocabProperty", "vocab": "office"},
            isPartOf={
                "type": "Relationship",
                "object": "urn:ngsi-ld:Building:A",
                "objectType": "Building",
            },
        ),
        "@context": context,
    }
    assert client.post(BASE, json=body, headers=LD).status_code == 201
    expanded = client.get(f"{BASE}/{ROOM}").json()
    assert expanded["category"]["vocab"] == "https://example.org/office"
    assert expanded["isPartOf"]["objectType"] == "https://example.org/Building"


def test_retrieve_with_matching_type_param(client: TestClient) -> None:
    client.post(BASE, json=entity(), headers=JSON)
    assert client.get(f"{BASE}/{ROOM}", params={"type": "Room"}).status_code == 200
    wrong = client.get(f"{BASE}/{ROOM}", params={"type": "Building"})
    assert_problem(wrong, 404, "ResourceNotFound")


def test_retrieve_unknown_entity_is_404(client: TestClient) -> None:
    assert_problem(client.get(f"{BASE}/urn:ngsi-ld:Room:nope"), 404, "ResourceNotFound")


def test_retrieve_invalid_id_is_400(client: TestClient) -> None:
    assert_problem(client.get(f"{BASE}/not-a-uri"), 400, "BadRequestData")


def test_delete_removes_the_entity(client: TestClient) -> None:
    client.post(BASE, json=entity(), headers=JSON)
    response = client.delete(f"{BASE}/{ROOM}")
    assert response.status_code == 204
    assert response.content == b""
    assert_problem(client.get(f"{BASE}/{ROOM}"), 404, "ResourceNotFound")
    assert client.post(BASE, json=entity(), headers=JSON).status_code == 201


def test_delete_with_wrong_type_keeps_the_entity(client: TestClient) -> None:
    client.post(BASE, json=entity(), headers=JSON)
    with unchanged(client, ROOM):
        response = client.delete(f"{BASE}/{ROOM}", params={"type": "Building"})
        assert_problem(response, 404, "ResourceNotFound")
    assert client.delete(f"{BASE}/{ROOM}", params={"type": "Room"}).status_code == 204


def test_delete_unknown_or_invalid(client: TestClient) -> None:
    assert_problem(client.delete(f"{BASE}/urn:ngsi-ld:Room:nope"), 404, "ResourceNotFound")
    assert_problem(client.delete(f"{BASE}/nope"), 400, "BadRequestData")


def test_create_twice_is_409_and_keeps_the_first(client: TestClient) -> None:
    client.post(BASE, json=entity(temperature={"type": "Property", "value": 1}), headers=JSON)
    with unchanged(client, ROOM):
        again = entity(temperature={"type": "Property", "value": 2})
        assert_problem(client.post(BASE, json=again, headers=JSON), 409, "AlreadyExists")


def test_at_id_and_at_type_are_accepted(client: TestClient) -> None:
    body = {"@id": ROOM, "@type": "Room", "temperature": 3}
    assert client.post(BASE, json=body, headers=JSON).status_code == 201
    got = client.get(f"{BASE}/{ROOM}").json()
    assert (got["id"], got["type"]) == (ROOM, "Room")


def test_several_types_and_scope(client: TestClient) -> None:
    body = {"id": ROOM, "type": ["Room", "Space"], "scope": ["/Fundao/Centro", "/School"]}
    client.post(BASE, json=body, headers=JSON)
    got = client.get(f"{BASE}/{ROOM}").json()
    assert sorted(got["type"]) == ["Room", "Space"]
    assert sorted(got["scope"]) == ["/Fundao/Centro", "/School"]
    assert client.get(f"{BASE}/{ROOM}", params={"type": "Space"}).status_code == 200


def test_entity_ids_with_slashes_are_reachable(client: TestClient) -> None:
    entity_id = "https://example.org/rooms/a/attrs-b"
    path = f"{BASE}/{quote(entity_id, safe='')}"
    body = entity(entity_id, temperature={"type": "Property", "value": 20})
    assert client.post(BASE, json=body, headers=JSON).status_code == 201
    assert client.get(path).json() == body
    patch = {"temperature": {"type": "Property", "value": 21}}
    assert client.patch(f"{path}/attrs", json=patch, headers=JSON).status_code == 204
    assert client.delete(f"{path}/attrs/temperature").status_code == 204
    assert client.get(path).json() == entity(entity_id)
    assert client.delete(path).status_code == 204
    assert client.get(path).status_code == 404
