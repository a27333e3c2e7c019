"""PUT /entities/{id} (replace) and PATCH /entities/{id} (merge, ETSI GS CIM 009 5.6.17-18)."""

from __future__ import annotations

from typing import Any

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
from tests.conftest import JSON, LD, entity

ROOM = "urn:ngsi-ld:Room:1"
URL = f"{BASE}/{ROOM}"
NULL = "urn:ngsi-ld:null"
T1 = "2024-01-01T00:00:00.000Z"
T2 = "2024-02-02T00:00:00.000Z"


def _room(client: TestClient, **attrs: Any) -> None:
    assert client.post(BASE, json=entity(**attrs), headers=JSON).status_code == 201


def _merge(client: TestClient, body: Any, **params: str) -> Any:
    return client.patch(URL, json=body, params=params, headers=JSON)


# -- replace ------------------------------------------------------------------------------------


def test_replace_swaps_all_attributes_and_keeps_created_at(
    client: TestClient, clock: ManualClock
) -> None:
    _room(client, temperature={"type": "Property", "value": 1}, humidity=40)
    clock.advance(60)
    body = {"id": ROOM, "type": "Office", "co2": {"type": "Property", "value": 400}}
    response = client.put(URL, json=body, headers=JSON)
    assert response.status_code == 204
    got = stored(client, ROOM)
    assert got["type"] == "Office"
    assert set(got) == {"id", "type", "co2", "createdAt", "modifiedAt"}
    assert got["createdAt"] == "2024-05-01T08:00:00.000Z"
    assert got["modifiedAt"] == "2024-05-01T08:01:00.000Z"


def test_replace_without_id_in_body(client: TestClient) -> None:
    _room(client, temperature=1)
    assert client.put(URL, json={"type": "Room", "co2": 5}, headers=JSON).status_code == 204
    assert client.get(URL).json()["co2"] == {"type": "Property", "value": 5}


@pytest.mark.parametrize(
    "body",
    [
        {"id": "urn:ngsi-ld:Room:2", "type": "Room"},
        {"type": "Room", "co2": {"type": "Property", "value": NULL}},
        {"co2": 5},
        [],
    ],
    ids=["other-id", "ngsi-ld-null", "no-type", "not-an-object"],
)
def test_replace_rejects_bad_bodies(client: TestClient, body: Any) -> None:
    _room(client, temperature=1)
    with unchanged(client, ROOM):
        assert_problem(client.put(URL, json=body, headers=JSON), 400, "BadRequestData")


def test_replace_unknown_entity_or_type(client: TestClient) -> None:
    missing = client.put(f"{BASE}/urn:ngsi-ld:Room:9", json={"type": "Room"}, headers=JSON)
    assert_problem(missing, 404, "ResourceNotFound")
    _room(client, temperature=1)
    with unchanged(client, ROOM):
        wrong = client.put(URL, json={"type": "Room"}, params={"type": "Car"}, headers=JSON)
        assert_problem(wrong, 404, "ResourceNotFound")


# -- merge --------------------------------------------------------------------------------------


def test_merge_keeps_sub_attributes_not_given(client: TestClient, clock: ManualClock) -> None:
    _room(
        client,
        temperature={"type": "Property", "value": 25, "unitCode": "CEL", "observedAt": T1},
    )
    clock.advance(5)
    assert _merge(client, {"temperature": {"value": 100, "observedAt": T2}}).status_code == 204
    got = stored(client, ROOM)
    temperature = got["temperature"]
    assert (temperature["value"], temperature["unitCode"], temperature["observedAt"]) == (
        100,
        "CEL",
        T2,
    )
    assert temperature["createdAt"] == "2024-05-01T08:00:00.000Z"
    assert temperature["modifiedAt"] == got["modifiedAt"] == "2024-05-01T08:00:05.000Z"


def test_merge_adds_new_attributes_and_types(client: TestClient) -> None:
    _room(client, temperature=1)
    response = _merge(client, {"type": "Office", "co2": {"type": "Property", "value": 410}})
    assert response.status_code == 204
    got = client.get(URL).json()
    assert sorted(got["type"]) == ["Office", "Room"]
    assert got["co2"]["value"] == 410
    assert got["temperature"]["value"] == 1


def test_merge_merges_json_object_values_key_by_key(client: TestClient) -> None:
    address = {"street": "Rua Nova", "city": "Fundão", "country": "PT"}
    _room(client, address={"type": "Property", "value": address})
    _merge(client, {"address": {"value": {"street": "Rua Velha", "country": NULL}}})
    assert client.get(URL).json()["address"]["value"] == {"street": "Rua Velha", "city": "Fundão"}


@pytest.mark.parametrize(
    "deletion",
    [{"type": "Property", "value": NULL}, NULL, {"value": NULL}],
    ids=["normalized", "concise", "value-only"],
)
def test_merge_null_deletes_an_attribute(client: TestClient, deletion: Any) -> None:
    _room(client, temperature=1, humidity=2)
    assert _merge(client, {"temperature": deletion}).status_code == 204
    got = client.get(URL).json()
    assert "temperature" not in got
    assert got["humidity"]["value"] == 2


def test_merge_null_deletes_a_sub_attribute(client: TestClient) -> None:
    _room(client, temperature={"type": "Property", "value": 1, "unitCode": "CEL", "observedAt": T1})
    _merge(client, {"temperature": {"unitCode": NULL, "observedAt": NULL}})
    assert client.get(URL).json()["temperature"] == {"type": "Property", "value": 1}


def test_merge_null_for_a_missing_attribute_adds_nothing(client: TestClient) -> None:
    _room(client, temperature=1)
    assert _merge(client, {"ghost": NULL}).status_code == 204
    assert "ghost" not in client.get(URL).json()


def test_merge_by_dataset_id(client: TestClient) -> None:
    dataset = "urn:ngsi-ld:Dataset:b"
    _room(client, temperature=[{"type": "Property", "value": 1}])
    _merge(client, {"temperature": {"type": "Property", "value": 2, "datasetId": dataset}})
    _merge(client, {"temperature": {"value": 3, "datasetId": dataset}})
    instances = {i.get("datasetId"): i["value"] for i in client.get(URL).json()["temperature"]}
    assert instances == {None: 1, dataset: 3}


def test_merge_observed_at_param_moves_existing_timestamps_only(client: TestClient) -> None:
    _room(
        client,
        temperature={"type": "Property", "value": 1, "observedAt": T1},
        humidity=2,
    )
    response = _merge(client, {"temperature": 5, "humidity": 6}, observedAt="2024-03-03T00:00:00Z")
    assert response.status_code == 204
    got = client.get(URL).json()
    assert got["temperature"] == {
        "type": "Property",
        "value": 5,
        "observedAt": "2024-03-03T00:00:00.000Z",
    }
    assert got["humidity"] == {"type": "Property", "value": 6}


def test_merge_key_values_keeps_attribute_types(client: TestClient) -> None:
    _room(
        client,
        temperature={"type": "Property", "value": 1, "unitCode": "CEL"},
        isPartOf={"type": "Relationship", "object": "urn:ngsi-ld:Building:A"},
        readings={"type": "ListProperty", "valueList": [1]},
    )
    body = {"temperature": 2, "isPartOf": "urn:ngsi-ld:Building:B", "readings": [7, 8]}
    assert _merge(client, body, format="keyValues").status_code == 204
    got = client.get(URL).json()
    assert got["temperature"] == {"type": "Property", "value": 2, "unitCode": "CEL"}
    assert got["isPartOf"] == {"type": "Relationship", "object": "urn:ngsi-ld:Building:B"}
    assert got["readings"] == {"type": "ListProperty", "valueList": [7, 8]}


def test_merge_lang_sets_one_language_of_a_language_property(client: TestClient) -> None:
    _room(client, name={"type": "LanguageProperty", "languageMap": {"pt": "Sala", "en": "Room"}})
    assert _merge(client, {"name": "Salle"}, lang="fr").status_code == 204
    language_map = client.get(URL).json()["name"]["languageMap"]
    assert language_map == {"pt": "Sala", "en": "Room", "fr": "Salle"}


def test_merge_as_json_ld_and_merge_patch(client: TestClient) -> None:
    _room(client, temperature=1)
    ld = {
        "temperature": 2,
        "@context": "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld",
    }
    assert client.patch(URL, json=ld, headers=LD).status_code == 204
    merge_patch = {"Content-Type": "application/merge-patch+json"}
    assert client.patch(URL, json={"humidity": 3}, headers=merge_patch).status_code == 204
    got = client.get(URL).json()
    assert (got["temperature"]["value"], got["humidity"]["value"]) == (2, 3)


@pytest.mark.parametrize(
    ("body", "params"),
    [
        ({"temperature": {"type": "Relationship", "object": "urn:a:b"}}, {}),
        ({"temperature": {"value": 1, "observedAt": "yesterday"}}, {}),
        ({"temperature": 2}, {"observedAt": "not-a-date"}),
        ({"temperature": 2}, {"format": "keyValues", "options": "bogus"}),
        ({"isPartOf": {"type": "Relationship", "object": "not a uri"}}, {}),
        ({"fresh": {"type": "Property"}}, {}),
        ({"id": "urn:ngsi-ld:Room:2"}, {}),
        ({"datasetId": 3}, {}),
        (["temperature"], {}),
    ],
    ids=[
        "kind-change",
        "bad-observed-at",
        "bad-observed-at-param",
        "bad-option",
        "bad-object",
        "new-without-value",
        "other-id",
        "reserved-name",
        "not-an-object",
    ],
)
def test_merge_rejects_bad_fragments(client: TestClient, body: Any, params: dict[str, str]) -> None:
    _room(client, temperature=1, isPartOf={"type": "Relationship", "object": "urn:a:b"})
    with unchanged(client, ROOM):
        assert_problem(_merge(client, body, **params), 400, "BadRequestData")


def test_merge_unknown_entity_or_type(client: TestClient) -> None:
    assert_problem(
        client.patch(f"{BASE}/urn:ngsi-ld:Room:9", json={"a": 1}, headers=JSON),
        404,
        "ResourceNotFound",
    )
    _room(client, temperature=1)
    with unchanged(client, ROOM):
        assert_problem(_merge(client, {"temperature": 2}, type="Car"), 404, "ResourceNotFound")
    assert _merge(client, {"temperature": 2}, type="Room").status_code == 204


@pytest.mark.parametrize(
    ("stored_attribute", "deletion"),
    [
        (
            {"type": "LanguageProperty", "languageMap": {"en": "Room"}},
            {"languageMap": {"@none": NULL}},
        ),
        ({"type": "ListProperty", "valueList": [1, 2]}, {"valueList": [NULL]}),
        (
            {"type": "ListRelationship", "objectList": [{"object": "urn:a:b"}]},
            {"objectList": [NULL]},
        ),
        ({"type": "Relationship", "object": "urn:a:b"}, {"object": NULL}),
        ({"type": "VocabProperty", "vocab": "office"}, {"vocab": NULL}),
        ({"type": "JsonProperty", "json": {"a": 1}}, {"json": NULL}),
        ({"type": "GeoProperty", "value": {"type": "Point", "coordinates": [1, 2]}}, NULL),
    ],
    ids=lambda value: value.get("type", "") if isinstance(value, dict) else "",
)
def test_merge_null_deletes_every_attribute_kind(
    client: TestClient, stored_attribute: dict[str, Any], deletion: Any
) -> None:
    _room(client, special=stored_attribute, humidity=2)
    assert _merge(client, {"special": deletion}).status_code == 204
    assert set(client.get(URL).json()) == {"id", "type", "humidity"}


def test_merge_key_values_creates_new_attributes_as_properties(client: TestClient) -> None:
    _room(client, temperature=1)
    assert _merge(client, {"noise": 55}, format="keyValues").status_code == 204
    assert client.get(URL).json()["noise"] == {"type": "Property", "value": 55}
