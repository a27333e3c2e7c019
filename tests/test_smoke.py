"""The first thing a newcomer does: create an entity and read it back."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import JSON, entity


def test_create_then_retrieve(client: TestClient) -> None:
    body = entity(temperature={"type": "Property", "value": 21.5, "unitCode": "CEL"})
    created = client.post("/ngsi-ld/v1/entities", json=body, headers=JSON)
    assert created.status_code == 201
    assert created.headers["Location"] == "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1"
    got = client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1")
    assert got.status_code == 200
    assert got.json() == body


def test_version(client: TestClient) -> None:
    assert client.get("/version").json()["name"] == "Burgo"
