"""The @context management API: /ngsi-ld/v1/jsonldContexts (ETSI GS CIM 009, 5.13)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from burgo.app import create_app
from burgo.config import Settings
from tests.conftest import JSON, LD, entity, link
from tests.context_server import ContextServer, context_server

CONTEXTS = "/ngsi-ld/v1/jsonldContexts"
USER_CONTEXT = {"ex": "http://example.org/ns#", "temp": "ex:temperature", "Room": "ex:Room"}
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"


@pytest.fixture
def server() -> Iterator[ContextServer]:
    """A local HTTP server for @context documents."""
    with context_server() as running:
        yield running


def host(client: TestClient, context: Any = USER_CONTEXT) -> str:
    """Add a hosted @context; return the URL the broker serves it at."""
    response = client.post(CONTEXTS, json={"@context": context, "ignored": 1})
    assert response.status_code == 201, response.text
    return response.headers["Location"]


def path_of(url: str) -> str:
    return urlsplit(url).path


def problem(response: Any) -> str:
    return str(response.json()["type"]).removeprefix(ERRORS)


def test_a_hosted_context_is_served_listed_and_detailed(client: TestClient) -> None:
    url = host(client)
    served = client.get(path_of(url))
    assert served.status_code == 200
    assert served.json() == {"@context": USER_CONTEXT}
    assert client.get(CONTEXTS).json() == [url]
    assert client.get(CONTEXTS, params={"kind": "Hosted"}).json() == [url]
    assert client.get(CONTEXTS, params={"kind": "Cached"}).json() == []
    (details,) = client.get(CONTEXTS, params={"details": "true"}).json()
    assert details["URL"] == url
    assert details["kind"] == "Hosted"
    assert url.endswith(details["localId"])
    assert details["createdAt"].endswith("Z")
    one = client.get(path_of(url), params={"details": "true"}).json()
    assert one["URL"] == url and one["kind"] == "Hosted"


def test_a_hosted_context_names_terms_in_link_headers(client: TestClient) -> None:
    url = host(client)
    body = entity(temp={"type": "Property", "value": 20})
    created = client.post("/ngsi-ld/v1/entities", json=body, headers={**JSON, **link(url)})
    assert created.status_code == 201, created.text
    short = client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1", headers=link(url)).json()
    assert short["type"] == "Room"
    assert short["temp"]["value"] == 20
    full = client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1").json()
    assert full["type"] == "http://example.org/ns#Room"
    assert full["http://example.org/ns#temperature"]["value"] == 20


def test_a_hosted_context_survives_a_restart(settings: Settings) -> None:
    with TestClient(create_app(settings)) as first:
        url = host(first)
        body = entity(temp={"type": "Property", "value": 5})
        assert first.post(
            "/ngsi-ld/v1/entities", json=body, headers={**JSON, **link(url)}
        ).is_success
    with TestClient(create_app(settings)) as second:
        assert second.get(path_of(url)).json() == {"@context": USER_CONTEXT}
        read = second.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1", headers=link(url)).json()
        assert read["temp"]["value"] == 5


def test_a_hosted_context_may_build_on_a_remote_one(
    client: TestClient, server: ContextServer
) -> None:
    remote = server.serve_context("/base.jsonld", {"speed": "http://example.org/speed"})
    url = host(client, [remote, USER_CONTEXT])
    body = entity(speed={"type": "Property", "value": 3})
    assert client.post("/ngsi-ld/v1/entities", json=body, headers={**JSON, **link(url)}).is_success
    read = client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1", headers=link(url)).json()
    assert read["speed"]["value"] == 3
    assert server.hits["/base.jsonld"] == 1


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"not json", "InvalidRequest"),
        (b'{"no": "context"}', "BadRequestData"),
        (b'["@context"]', "BadRequestData"),
        (b'{"@context": {"temp": 5}}', "BadRequestData"),
        (b'{"@context": {"a": "b", "b": "a"}}', "BadRequestData"),
    ],
)
def test_bad_contexts_are_refused_and_nothing_is_stored(
    client: TestClient, body: bytes, expected: str
) -> None:
    response = client.post(CONTEXTS, content=body, headers=LD)
    assert response.status_code == 400
    assert problem(response) == expected
    assert client.get(CONTEXTS).json() == []


def test_an_unknown_kind_is_bad_request_data(client: TestClient) -> None:
    response = client.get(CONTEXTS, params={"kind": "Borrowed"})
    assert response.status_code == 400
    assert problem(response) == "BadRequestData"


def test_unknown_contexts_are_not_found(client: TestClient) -> None:
    assert client.get(f"{CONTEXTS}/nope").status_code == 404
    assert client.get(f"{CONTEXTS}/nope", params={"details": "true"}).status_code == 404
    response = client.delete(f"{CONTEXTS}/nope")
    assert response.status_code == 404
    assert problem(response) == "ResourceNotFound"


def test_deleting_a_hosted_context(client: TestClient) -> None:
    url = host(client)
    kept = host(client, {"other": "http://example.org/other"})
    reload = client.delete(path_of(url), params={"reload": "true"})
    assert reload.status_code == 400
    assert problem(reload) == "BadRequestData"
    assert client.get(path_of(url)).status_code == 200
    assert client.delete(path_of(url)).status_code == 204
    assert client.get(path_of(url)).status_code == 404
    assert client.get(CONTEXTS).json() == [kept]


def test_a_cached_context_is_listed_but_not_served(
    client: TestClient, server: ContextServer
) -> None:
    remote = server.serve_context("/ctx.jsonld", USER_CONTEXT)
    body = entity(temp={"type": "Property", "value": 1})
    assert client.post(
        "/ngsi-ld/v1/entities", json=body, headers={**JSON, **link(remote)}
    ).is_success
    assert client.get(CONTEXTS, params={"kind": "Cached"}).json() == [remote]
    (details,) = client.get(CONTEXTS, params={"details": "true", "kind": "Cached"}).json()
    assert details["URL"] == remote and details["kind"] == "Cached"
    by_id = f"{CONTEXTS}/{details['localId']}"
    served = client.get(by_id)
    assert served.status_code == 422
    assert problem(served) == "OperationNotSupported"
    assert client.get(by_id, params={"details": "true"}).json()["URL"] == remote
    assert client.delete(by_id).status_code == 204
    assert client.get(CONTEXTS).json() == []
    # Deleted from the cache: the next use downloads it again.
    client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1", headers=link(remote))
    assert server.hits["/ctx.jsonld"] == 2
