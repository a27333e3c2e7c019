"""Responses speak the request's @context: names compacted with it, and the context named."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fastapi.testclient import TestClient

from tests.conftest import CORE, JSON, LD, entity, link

ENTITY = "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1"
EX = "http://example.org/ns#"
USER_CONTEXT = {
    "ex": EX,
    "temp": "ex:temperature",
    "Room": "ex:Room",
    "inBuilding": {"@id": "ex:inBuilding", "@type": "@id"},
    "reading": {"@id": "ex:reading", "@type": "http://www.w3.org/2001/XMLSchema#float"},
}
JSONLD_REL = 'rel="http://www.w3.org/ns/json-ld#context"'


def host(client: TestClient, context: Any) -> str:
    response = client.post("/ngsi-ld/v1/jsonldContexts", json={"@context": context})
    assert response.status_code == 201, response.text
    return response.headers["Location"]


def room() -> dict[str, Any]:
    return entity(
        temp={"type": "Property", "value": 21.5},
        inBuilding={"type": "Relationship", "object": "urn:ngsi-ld:Building:7"},
        reading={"type": "Property", "value": 3.0},
        **{"ex:speed": {"type": "Property", "value": 4}},
    )


def test_created_inline_read_back_through_a_link(client: TestClient) -> None:
    body = {**room(), "@context": [USER_CONTEXT, CORE]}
    assert client.post("/ngsi-ld/v1/entities", json=body, headers=LD).status_code == 201
    url = host(client, USER_CONTEXT)
    short = client.get(ENTITY, headers=link(url)).json()
    assert short["type"] == "Room"
    assert set(short) == {"id", "type", "temp", "inBuilding", "reading", "ex:speed"}
    assert short["inBuilding"]["object"] == "urn:ngsi-ld:Building:7"
    full = client.get(ENTITY).json()
    assert full["type"] == EX + "Room"
    assert {EX + "temperature", EX + "inBuilding", EX + "reading", EX + "speed"} <= set(full)


def test_created_through_a_link_read_back_inline(client: TestClient) -> None:
    url = host(client, USER_CONTEXT)
    created = client.post("/ngsi-ld/v1/entities", json=room(), headers={**JSON, **link(url)})
    assert created.status_code == 201, created.text
    read = client.get(ENTITY, headers={"Accept": "application/ld+json", **link(url)})
    assert read.headers["content-type"].startswith("application/ld+json")
    body = read.json()
    assert body["@context"] == url
    assert "link" not in read.headers
    assert body["temp"]["value"] == 21.5


def test_a_different_context_gives_different_names(client: TestClient) -> None:
    url = host(client, USER_CONTEXT)
    assert client.post(
        "/ngsi-ld/v1/entities", json=room(), headers={**JSON, **link(url)}
    ).is_success
    other = host(client, {"t": EX + "temperature", "speed": EX + "speed"})
    read = client.get(ENTITY, headers=link(other)).json()
    assert read["t"]["value"] == 21.5
    assert read["speed"]["value"] == 4
    assert read["type"] == EX + "Room"


def test_without_any_context_names_use_the_default_context(client: TestClient) -> None:
    body = entity(temperature={"type": "Property", "value": 20})
    assert client.post("/ngsi-ld/v1/entities", json=body, headers=JSON).status_code == 201
    read = client.get(ENTITY)
    assert read.json()["temperature"]["value"] == 20
    assert read.json()["type"] == "Room"
    # Where the user context claims "Room" for another IRI, the default-context Room can only
    # be written as a compact IRI with the core's ngsi-ld: prefix (as JSON-LD compaction does).
    url = host(client, USER_CONTEXT)
    assert client.get(ENTITY, headers=link(url)).json()["type"] == "ngsi-ld:default-context/Room"


def test_json_responses_link_the_request_context(client: TestClient) -> None:
    assert client.post("/ngsi-ld/v1/entities", json=entity(), headers=JSON).status_code == 201
    default = client.get(ENTITY)
    assert default.headers["content-type"].startswith("application/json")
    assert f"<{CORE}>" in default.headers["link"] and JSONLD_REL in default.headers["link"]
    url = host(client, USER_CONTEXT)
    linked = client.get(ENTITY, headers=link(url))
    assert f"<{url}>" in linked.headers["link"] and JSONLD_REL in linked.headers["link"]


def test_json_ld_responses_carry_the_context_in_the_body(client: TestClient) -> None:
    assert client.post("/ngsi-ld/v1/entities", json=entity(), headers=JSON).status_code == 201
    read = client.get(ENTITY, headers={"Accept": "application/ld+json"})
    assert read.json()["@context"] == CORE
    assert "link" not in read.headers


def test_query_parameters_speak_the_context_too(client: TestClient) -> None:
    url = host(client, USER_CONTEXT)
    assert client.post(
        "/ngsi-ld/v1/entities", json=room(), headers={**JSON, **link(url)}
    ).is_success
    picked = client.get(ENTITY, params={"attrs": "temp"}, headers=link(url)).json()
    assert set(picked) == {"id", "type", "temp"}
    simple = client.get(ENTITY, params={"options": "keyValues"}, headers=link(url)).json()
    assert simple["inBuilding"] == "urn:ngsi-ld:Building:7"
    assert simple["temp"] == 21.5


def test_hosted_context_path_is_served_where_location_points(client: TestClient) -> None:
    url = host(client, USER_CONTEXT)
    assert client.get(urlsplit(url).path).json() == {"@context": USER_CONTEXT}
