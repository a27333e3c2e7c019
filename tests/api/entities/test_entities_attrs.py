"""/entities/{id}/attrs[/{attrId}]: append, update, partial update, replace and delete."""

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
from tests.conftest import JSON, entity

ROOM = "urn:ngsi-ld:Room:1"
ATTRS = f"{BASE}/{ROOM}/attrs"
NULL = "urn:ngsi-ld:null"
T1 = "2024-01-01T00:00:00.000Z"
DS = "urn:ngsi-ld:Dataset:b"
TEMPERATURE = {"type": "Property", "value": 25, "unitCode": "CEL", "observedAt": T1}


def _room(client: TestClient, **attrs: Any) -> None:
    assert client.post(BASE, json=entity(**attrs), headers=JSON).status_code == 201


def _attrs(client: TestClient) -> dict[str, Any]:
    got: dict[str, Any] = client.get(f"{BASE}/{ROOM}").json()
    return got


# -- append: POST /attrs ------------------------------------------------------------------------


def test_append_adds_and_overwrites_keeping_created_at(
    client: TestClient, clock: ManualClock
) -> None:
    _room(client, temperature=TEMPERATURE)
    clock.advance(10)
    body = {"temperature": {"type": "Property", "value": 30}, "humidity": 50}
    assert client.post(ATTRS, json=body, headers=JSON).status_code == 204
    got = stored(client, ROOM)
    assert got["temperature"]["value"] == 30
    assert "unitCode" not in got["temperature"]
    assert got["temperature"]["createdAt"] == "2024-05-01T08:00:00.000Z"
    assert got["temperature"]["modifiedAt"] == "2024-05-01T08:00:10.000Z"
    assert got["humidity"]["createdAt"] == "2024-05-01T08:00:10.000Z"
    assert got["createdAt"] == "2024-05-01T08:00:00.000Z"
    assert got["modifiedAt"] == "2024-05-01T08:00:10.000Z"


def test_append_no_overwrite_reports_what_it_kept(client: TestClient) -> None:
    _room(client, temperature=TEMPERATURE)
    body = {"temperature": 99, "humidity": 50}
    response = client.post(ATTRS, json=body, params={"options": "noOverwrite"}, headers=JSON)
    assert response.status_code == 207
    assert response.headers["content-type"] == "application/json"
    result = response.json()
    assert result["updated"] == ["humidity"]
    assert [d["attributeName"] for d in result["notUpdated"]] == ["temperature"]
    assert result["notUpdated"][0]["reason"]
    got = _attrs(client)
    assert got["temperature"] == TEMPERATURE
    assert got["humidity"]["value"] == 50


def test_append_no_overwrite_of_only_existing_attributes_changes_nothing(
    client: TestClient,
) -> None:
    _room(client, temperature=TEMPERATURE)
    with unchanged(client, ROOM):
        body = {"temperature": 99}
        response = client.post(ATTRS, json=body, params={"options": "noOverwrite"}, headers=JSON)
        assert response.status_code == 207
        assert response.json()["updated"] == []


def test_append_new_dataset_instance(client: TestClient) -> None:
    _room(client, temperature=TEMPERATURE)
    body = {"temperature": {"type": "Property", "value": 1, "datasetId": DS}}
    assert client.post(ATTRS, json=body, headers=JSON).status_code == 204
    assert len(_attrs(client)["temperature"]) == 2


def test_append_adds_types_and_scope(client: TestClient) -> None:
    _room(client)
    body = {"type": "Office", "scope": "/Fundao"}
    assert client.post(ATTRS, json=body, headers=JSON).status_code == 204
    got = _attrs(client)
    assert sorted(got["type"]) == ["Office", "Room"]
    assert got["scope"] == "/Fundao"


# -- update: PATCH /attrs -----------------------------------------------------------------------


def test_update_replaces_existing_attributes_whole(client: TestClient, clock: ManualClock) -> None:
    _room(client, temperature=TEMPERATURE)
    clock.advance(1)
    body = {"temperature": {"type": "Property", "value": 100, "observedAt": T1}}
    assert client.patch(ATTRS, json=body, headers=JSON).status_code == 204
    got = stored(client, ROOM)["temperature"]
    assert "unitCode" not in got
    assert (got["value"], got["createdAt"]) == (100, "2024-05-01T08:00:00.000Z")


def test_update_reports_missing_attributes_as_not_updated(client: TestClient) -> None:
    _room(client, temperature=TEMPERATURE)
    body = {"temperature": 26, "ghost": 1}
    response = client.patch(ATTRS, json=body, headers=JSON)
    assert response.status_code == 207
    result = response.json()
    assert result["updated"] == ["temperature"]
    assert [d["attributeName"] for d in result["notUpdated"]] == ["ghost"]
    got = _attrs(client)
    assert got["temperature"]["value"] == 26
    assert "ghost" not in got


def test_update_of_nothing_existing_changes_nothing(client: TestClient) -> None:
    _room(client, temperature=TEMPERATURE)
    with unchanged(client, ROOM):
        response = client.patch(ATTRS, json={"ghost": 1}, headers=JSON)
        assert response.status_code == 207
        assert response.json()["updated"] == []


def test_update_may_change_the_attribute_kind(client: TestClient) -> None:
    _room(client, temperature=TEMPERATURE)
    body = {"temperature": {"type": "Relationship", "object": "urn:ngsi-ld:Sensor:1"}}
    assert client.patch(ATTRS, json=body, headers=JSON).status_code == 204
    assert _attrs(client)["temperature"] == body["temperature"]


def test_update_null_deletes_one_instance(client: TestClient) -> None:
    _room(client, temperature=[TEMPERATURE, {"type": "Property", "value": 1, "datasetId": DS}])
    body = {"temperature": {"type": "Property", "value": NULL, "datasetId": DS}}
    assert client.patch(ATTRS, json=body, headers=JSON).status_code == 204
    assert _attrs(client)["temperature"] == TEMPERATURE


# -- partial update: PATCH /attrs/{attrId} ------------------------------------------------------


def test_partial_update_merges_inside_the_attribute(client: TestClient, clock: ManualClock) -> None:
    _room(client, temperature=TEMPERATURE)
    clock.advance(2)
    body = {"value": 100, "observedAt": "2024-02-02T00:00:00Z"}
    assert client.patch(f"{ATTRS}/temperature", json=body, headers=JSON).status_code == 204
    got = stored(client, ROOM)["temperature"]
    assert (got["value"], got["unitCode"], got["observedAt"]) == (
        100,
        "CEL",
        "2024-02-02T00:00:00.000Z",
    )
    assert got["createdAt"] == "2024-05-01T08:00:00.000Z"
    assert got["modifiedAt"] == "2024-05-01T08:00:02.000Z"


def test_partial_update_targets_the_dataset_instance(client: TestClient) -> None:
    _room(client, temperature=[TEMPERATURE, {"type": "Property", "value": 1, "datasetId": DS}])
    body = {"value": 2, "datasetId": DS}
    assert client.patch(f"{ATTRS}/temperature", json=body, headers=JSON).status_code == 204
    values = {i.get("datasetId"): i["value"] for i in _attrs(client)["temperature"]}
    assert values == {None: 25, DS: 2}


def test_partial_update_null_deletes_a_sub_attribute(client: TestClient) -> None:
    _room(client, temperature=TEMPERATURE)
    body = {"unitCode": NULL}
    assert client.patch(f"{ATTRS}/temperature", json=body, headers=JSON).status_code == 204
    assert "unitCode" not in _attrs(client)["temperature"]


# -- replace attribute: PUT /attrs/{attrId} -----------------------------------------------------


def test_replace_attribute_whole(client: TestClient, clock: ManualClock) -> None:
    _room(client, temperature=TEMPERATURE)
    clock.advance(3)
    body = {"type": "Property", "value": 7}
    assert client.put(f"{ATTRS}/temperature", json=body, headers=JSON).status_code == 204
    got = stored(client, ROOM)["temperature"]
    assert {k: got[k] for k in ("type", "value")} == body
    assert "unitCode" not in got
    assert got["createdAt"] == "2024-05-01T08:00:00.000Z"


def test_replace_attribute_can_change_its_kind(client: TestClient) -> None:
    _room(client, owner="someone")
    body = {"type": "Relationship", "object": "urn:ngsi-ld:Person:1"}
    assert client.put(f"{ATTRS}/owner", json=body, headers=JSON).status_code == 204
    assert _attrs(client)["owner"] == body


# -- delete attribute: DELETE /attrs/{attrId} ---------------------------------------------------


def test_delete_attribute_default_dataset_and_all(client: TestClient) -> None:
    other = {"type": "Property", "value": 1, "datasetId": DS}
    _room(client, temperature=[TEMPERATURE, other], humidity=2)
    assert client.delete(f"{ATTRS}/temperature").status_code == 204
    assert _attrs(client)["temperature"] == other
    client.patch(f"{BASE}/{ROOM}", json={"temperature": TEMPERATURE}, headers=JSON)
    assert client.delete(f"{ATTRS}/temperature", params={"datasetId": DS}).status_code == 204
    assert _attrs(client)["temperature"] == TEMPERATURE
    client.patch(f"{BASE}/{ROOM}", json={"temperature": other}, headers=JSON)
    assert client.delete(f"{ATTRS}/temperature", params={"deleteAll": "true"}).status_code == 204
    got = _attrs(client)
    assert "temperature" not in got
    assert got["humidity"]["value"] == 2


def test_delete_attribute_moves_modified_at(client: TestClient, clock: ManualClock) -> None:
    _room(client, temperature=TEMPERATURE)
    clock.advance(4)
    client.delete(f"{ATTRS}/temperature")
    got = stored(client, ROOM)
    assert (got["createdAt"], got["modifiedAt"]) == (
        "2024-05-01T08:00:00.000Z",
        "2024-05-01T08:00:04.000Z",
    )


# -- rejected requests leave the entity as it was -----------------------------------------------

BAD_REQUESTS: list[tuple[str, str, dict[str, str], Any, int, str]] = [
    (
        "PATCH",
        "/temperature",
        {},
        {"type": "Relationship", "object": "urn:a:b"},
        400,
        "BadRequestData",
    ),
    ("PATCH", "/temperature", {}, {"value": NULL}, 400, "BadRequestData"),
    ("PATCH", "/temperature", {}, [1], 400, "BadRequestData"),
    ("PATCH", "/ghost", {}, {"value": 1}, 404, "ResourceNotFound"),
    ("PATCH", "/temperature", {}, {"value": 1, "datasetId": DS}, 404, "ResourceNotFound"),
    ("PATCH", "/scope", {}, {"value": 1}, 400, "BadRequestData"),
    ("PATCH", "/temperature", {"type": "Car"}, {"value": 1}, 404, "ResourceNotFound"),
    ("PUT", "/ghost", {}, {"type": "Property", "value": 1}, 404, "ResourceNotFound"),
    ("PUT", "/temperature", {}, {"type": "Property"}, 400, "BadRequestData"),
    ("PUT", "/temperature", {}, {"type": "Property", "value": NULL}, 400, "BadRequestData"),
    ("PUT", "/scope", {}, {"type": "Property", "value": 1}, 400, "BadRequestData"),
    (
        "PUT",
        "/temperature",
        {"type": "Car"},
        {"type": "Property", "value": 1},
        404,
        "ResourceNotFound",
    ),
    ("DELETE", "/ghost", {}, None, 404, "ResourceNotFound"),
    ("DELETE", "/temperature", {"datasetId": DS}, None, 404, "ResourceNotFound"),
    ("DELETE", "/temperature", {"datasetId": "not a uri"}, None, 400, "BadRequestData"),
    ("DELETE", "/temperature", {"deleteAll": "maybe"}, None, 400, "BadRequestData"),
    ("DELETE", "/ghost", {"deleteAll": "true"}, None, 404, "ResourceNotFound"),
    ("DELETE", "/temperature", {"type": "Car"}, None, 404, "ResourceNotFound"),
    ("DELETE", "/bad%20name", {}, None, 400, "BadRequestData"),
    ("POST", "", {}, {"temperature": {"type": "Property"}}, 400, "BadRequestData"),
    ("POST", "", {}, {"temperature": NULL}, 400, "BadRequestData"),
    ("POST", "", {"options": "sometimes"}, {"humidity": 1}, 400, "BadRequestData"),
    ("POST", "", {"type": "Car"}, {"humidity": 1}, 404, "ResourceNotFound"),
    ("POST", "", {}, {"humidity": [{"value": 1}, {"value": 2}]}, 400, "BadRequestData"),
    ("POST", "", {}, {"observedAt": 1}, 400, "BadRequestData"),
    (
        "PATCH",
        "",
        {},
        {"temperature": {"type": "Property", "value": 1, "observedAt": "x"}},
        400,
        "BadRequestData",
    ),
    ("PATCH", "", {"type": "Car"}, {"temperature": 1}, 404, "ResourceNotFound"),
    ("PATCH", "", {}, {"id": "urn:ngsi-ld:Room:2", "temperature": 1}, 400, "BadRequestData"),
]


@pytest.mark.parametrize(
    ("method", "path", "params", "body", "status", "problem"),
    BAD_REQUESTS,
    ids=[f"{m}{p or '/attrs'}-{i}" for i, (m, p, *_rest) in enumerate(BAD_REQUESTS)],
)
def test_rejected_attribute_requests_change_nothing(
    client: TestClient,
    method: str,
    path: str,
    params: dict[str, str],
    body: Any,
    status: int,
    problem: str,
) -> None:
    _room(client, temperature=TEMPERATURE)
    with unchanged(client, ROOM):
        response = client.request(
            method, f"{ATTRS}{path}", params=params, json=body, headers=JSON if body else {}
        )
        assert_problem(response, status, problem)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "", {"a": 1}),
        ("PATCH", "", {"a": 1}),
        ("PATCH", "/a", {"value": 1}),
        ("PUT", "/a", {"value": 1}),
        ("DELETE", "/a", None),
    ],
)
def test_attribute_operations_on_unknown_or_invalid_entities(
    client: TestClient, method: str, path: str, body: Any
) -> None:
    headers = JSON if body else {}
    missing = f"{BASE}/urn:ngsi-ld:Room:9/attrs{path}"
    assert_problem(
        client.request(method, missing, json=body, headers=headers), 404, "ResourceNotFound"
    )
    invalid = f"{BASE}/not-a-uri/attrs{path}"
    assert_problem(
        client.request(method, invalid, json=body, headers=headers), 400, "BadRequestData"
    )
