"""Error paths of the entity API: problem details, media types, @context rules, limits, methods."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.entity_checks import (
    BASE,
    ERRORS,
    Broker,
    assert_problem,
    running_broker,
    unchanged,
)
from tests.conftest import CORE, JSON, LD, entity, link

ROOM = "urn:ngsi-ld:Room:1"
URL = f"{BASE}/{ROOM}"
CORE_LINK = link(CORE)


@pytest.fixture
def room(client: TestClient) -> TestClient:
    """A client whose broker holds one Room with a temperature."""
    body = entity(temperature={"type": "Property", "value": 21, "unitCode": "CEL"})
    assert client.post(BASE, json=body, headers=JSON).status_code == 201
    return client


# Every write operation: (method, path under the entity, a valid body for it).
WRITES: list[tuple[str, str, Any]] = [
    ("PUT", "", {"type": "Room", "temperature": 1}),
    ("PATCH", "", {"temperature": 1}),
    ("POST", "/attrs", {"temperature": 1}),
    ("PATCH", "/attrs", {"temperature": 1}),
    ("PATCH", "/attrs/temperature", {"value": 1}),
    ("PUT", "/attrs/temperature", {"type": "Property", "value": 1}),
]
WRITE_IDS = [f"{m} {p or '/'}" for m, p, _ in WRITES]


def _send(client: TestClient, method: str, path: str, content: bytes, **headers: str) -> Any:
    return client.request(method, f"{URL}{path}", content=content, headers=headers)


def test_problem_details_shape(client: TestClient) -> None:
    response = client.get(f"{BASE}/urn:ngsi-ld:Room:nope")
    body = assert_problem(response, 404, "ResourceNotFound")
    assert response.headers["content-type"] == "application/json"
    assert "urn:ngsi-ld:Room:nope" in body["detail"]
    assert "link" not in response.headers


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=WRITE_IDS)
def test_invalid_json_is_invalid_request(
    room: TestClient, method: str, path: str, body: Any
) -> None:
    with unchanged(room, ROOM):
        response = _send(room, method, path, b'{"temperature": ', **JSON)
        assert_problem(response, 400, "InvalidRequest")
        assert_problem(_send(room, method, path, b"", **JSON), 400, "InvalidRequest")


def test_create_with_invalid_json(client: TestClient) -> None:
    response = client.post(BASE, content=b"{nope", headers=JSON)
    assert_problem(response, 400, "InvalidRequest")
    assert client.get(URL).status_code == 404


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=WRITE_IDS)
def test_json_ld_context_rules_on_writes(
    room: TestClient, method: str, path: str, body: Any
) -> None:
    with_context = orjson.dumps({**body, "@context": CORE})
    plain = orjson.dumps(body)
    with unchanged(room, ROOM):
        assert_problem(_send(room, method, path, with_context, **JSON), 400, "BadRequestData")
        assert_problem(_send(room, method, path, plain, **LD), 400, "BadRequestData")
        both = {**LD, **CORE_LINK}
        assert_problem(_send(room, method, path, with_context, **both), 400, "BadRequestData")
    assert _send(room, method, path, with_context, **LD).status_code in (204, 207)


def test_create_context_rules(client: TestClient) -> None:
    with_context = {**entity(), "@context": CORE}
    assert_problem(client.post(BASE, json=with_context, headers=JSON), 400, "BadRequestData")
    assert_problem(client.post(BASE, json=entity(), headers=LD), 400, "BadRequestData")
    both = {**LD, **CORE_LINK}
    assert_problem(client.post(BASE, json=with_context, headers=both), 400, "BadRequestData")
    assert client.get(URL).status_code == 404


def test_two_context_link_headers_are_rejected(room: TestClient) -> None:
    headers = [("Link", CORE_LINK["Link"]), ("Link", CORE_LINK["Link"])]
    response = room.get(URL, headers=headers)
    assert_problem(response, 400, "BadRequestData")


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", ""])
@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=WRITE_IDS)
def test_unsupported_content_type_is_415(
    room: TestClient, content_type: str, method: str, path: str, body: Any
) -> None:
    with unchanged(room, ROOM):
        headers = {"Content-Type": content_type} if content_type else {}
        response = room.request(method, f"{URL}{path}", content=orjson.dumps(body), headers=headers)
        assert response.status_code == 415
        assert response.headers["content-type"] == "application/json"
    response = room.post(
        BASE, content=orjson.dumps(entity("urn:a:b")), headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    assert room.get(f"{BASE}/urn:a:b").status_code == 404


def test_merge_patch_content_type_only_for_patch(room: TestClient) -> None:
    merge = {"Content-Type": "application/merge-patch+json"}
    with unchanged(room, ROOM):
        response = room.post(f"{URL}/attrs", json={"humidity": 1}, headers=merge)
        assert response.status_code == 415


@pytest.mark.parametrize("accept", ["application/xml", "text/html", "application/geo+json;q=0"])
def test_unacceptable_accept_is_406(room: TestClient, accept: str) -> None:
    response = room.get(URL, headers={"Accept": accept})
    assert response.status_code == 406
    assert response.headers["content-type"] == "application/json"
    assert "application/json" in response.json()["detail"]


def test_406_comes_before_the_entity_lookup(client: TestClient) -> None:
    response = client.get(f"{BASE}/urn:ngsi-ld:Room:nope", headers={"Accept": "application/xml"})
    assert response.status_code == 406


@pytest.mark.parametrize(
    ("accept", "served"),
    [
        ("*/*", "application/json"),
        ("application/*", "application/json"),
        ("application/ld+json, application/json;q=0.5", "application/ld+json"),
        ("application/geo+json", "application/geo+json"),
        ("text/html, application/json", "application/json"),
    ],
)
def test_accept_negotiation(room: TestClient, accept: str, served: str) -> None:
    response = room.get(URL, headers={"Accept": accept})
    assert response.status_code == 200
    assert response.headers["content-type"] == served


@pytest.fixture(scope="module")
def small_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A broker that accepts bodies of at most 1 KiB."""
    with running_broker(tmp_path_factory.mktemp("small"), max_body_bytes=1024) as shared:
        yield shared


@pytest.fixture
def small(small_broker: Broker) -> TestClient:
    """The small broker's client, holding one Room."""
    test_client = small_broker.reset()
    body = entity(temperature={"type": "Property", "value": 21})
    assert test_client.post(BASE, json=body, headers=JSON).status_code == 201
    return test_client


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=WRITE_IDS)
def test_body_over_the_limit_is_413(small: TestClient, method: str, path: str, body: Any) -> None:
    big = {**body, "note": "x" * 2048} if "type" in body or path.endswith("/attrs") else body
    padded = orjson.dumps(big) + b" " * 2048
    with unchanged(small, ROOM):
        response = _send(small, method, path, padded, **JSON)
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/json"


def test_body_over_the_limit_without_content_length(small: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"id": "urn:a:b", "type": "Room", "note": "'
        for _ in range(10):
            yield b"x" * 200
        yield b'"}'

    response = small.post(BASE, content=chunks(), headers=JSON)
    assert response.status_code == 413
    assert small.get(f"{BASE}/urn:a:b").status_code == 404


def test_body_under_the_limit_is_accepted(small: TestClient) -> None:
    assert small.post(BASE, json=entity("urn:a:b"), headers=JSON).status_code == 201


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("POST", URL, "POST"),
        ("PUT", BASE, "PUT"),  # DELETE /entities is the purge (tests/api/test_query.py)
        ("GET", f"{URL}/attrs", "GET"),
        ("GET", f"{URL}/attrs/temperature", "GET"),
    ],
)
def test_wrong_method_is_405_with_allow(
    room: TestClient, method: str, path: str, allowed: str
) -> None:
    with unchanged(room, ROOM):
        response = room.request(method, path)
        assert response.status_code == 405
        assert response.headers["content-type"] == "application/json"
        assert allowed not in response.headers["allow"]
        assert response.json()["type"].startswith(ERRORS)
        assert response.json()["status"] == 405


@pytest.mark.parametrize(
    "body",
    [
        entity("not a uri"),
        entity(""),
        {"type": "Room"},
        {"id": ROOM},
        {"id": ROOM, "type": 5},
        {"id": ROOM, "type": []},
        {"id": ROOM, "type": "Bad Type"},
        {"id": 42, "type": "Room"},
        entity(temperature=None),
        entity(temperature={"type": "Property"}),
        entity(temperature={"type": "Property", "value": 1, "observedAt": "2024-01-01"}),
        entity(temperature={"type": "Property", "value": 1, "observedAt": "2024-01-01T00:00:00"}),
        entity(temperature={"type": "Property", "value": 1, "unitCode": 5}),
        entity(temperature={"type": "Property", "value": "urn:ngsi-ld:null"}),
        entity(temperature={"type": "Property", "value": 1, "@context": CORE}),
        entity(temperature={"type": "Property", "value": 1, "object": "urn:a:b"}),
        entity(owner={"type": "Relationship", "object": "nobody"}),
        entity(owner={"type": "Relationship", "object": []}),
        entity(location={"type": "GeoProperty", "value": {"type": "Point", "coordinates": "x"}}),
        entity(location={"type": "GeoProperty", "value": {"type": "Blob", "coordinates": [1, 2]}}),
        entity(location={"type": "GeoProperty", "value": 5}),
        entity(name={"type": "LanguageProperty", "languageMap": "Sala"}),
        entity(name={"type": "LanguageProperty", "languageMap": {"not a tag": "x"}}),
        entity(name={"type": "LanguageProperty", "languageMap": {"en": 5}}),
        entity(category={"type": "VocabProperty", "vocab": 5}),
        entity(settings={"type": "JsonProperty", "json": "flat"}),
        entity(readings={"type": "ListProperty", "valueList": 5}),
        entity(neighbours={"type": "ListRelationship", "objectList": ["nope"]}),
        entity(temperature=[{"type": "Property", "value": 1}, {"type": "Property", "value": 2}]),
        entity(temperature={"type": "Property", "value": 1, "datasetId": "nope"}),
        entity(datasetId={"type": "Property", "value": 1}),
        entity(observedAt={"type": "Property", "value": 1}),
        {**entity(), "bad name": 1},
        {**entity(), "scope": "no-slash"},
        {**entity(), "": 1},
        entity(temperature={"type": "Property", "value": 1, "sub": {"type": "Property"}}),
        entity(
            temperature={
                "type": "Property",
                "value": 1,
                "s": {"type": "Property", "value": 1, "datasetId": "urn:a:b"},
            }
        ),
        [entity()],
        "urn:ngsi-ld:null",
        None,
        5,
    ],
)
def test_bad_entities_are_bad_request_data(client: TestClient, body: Any) -> None:
    response = client.post(BASE, content=orjson.dumps(body), headers=JSON)
    assert_problem(response, 400, "BadRequestData")
    assert client.get(URL).status_code == 404


@pytest.mark.parametrize(
    "raw",
    [b"[" * 2000 + b"]" * 2000, b'{"id": "\xff\xfe"}', b'{"a": 1e400}', b"\x00"],
    ids=["too-deep", "not-utf8", "infinite-number", "nul"],
)
def test_unreadable_bodies_are_invalid_request(room: TestClient, raw: bytes) -> None:
    with unchanged(room, ROOM):
        assert_problem(_send(room, "PATCH", "", raw, **JSON), 400, "InvalidRequest")
    assert_problem(room.post(BASE, content=raw, headers=JSON), 400, "InvalidRequest")


def test_invalid_tenant_header(room: TestClient) -> None:
    response = room.get(URL, headers={"NGSILD-Tenant": "bad tenant!"})
    assert_problem(response, 400, "BadRequestData")


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "type",
                    "value",
                    "object",
                    "datasetId",
                    "observedAt",
                    "languageMap",
                    "unitCode",
                    "x",
                ]
            )
            | st.text(max_size=5),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


VALUE_KEYS = {
    "Property": "value",
    "GeoProperty": "value",
    "Relationship": "object",
    "LanguageProperty": "languageMap",
    "VocabProperty": "vocab",
    "JsonProperty": "json",
    "ListProperty": "valueList",
    "ListRelationship": "objectList",
}


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=JSON_VALUES, kind=st.sampled_from([*VALUE_KEYS, None]))
def test_arbitrary_attributes_never_cause_a_server_error(
    room: TestClient, value: Any, kind: str | None
) -> None:
    attribute = {"type": kind, VALUE_KEYS[kind]: value} if kind else value
    for method, path, body in (
        ("PATCH", "", {"temperature": attribute}),
        ("POST", "/attrs", {"humidity": attribute}),
        ("PATCH", "/attrs", {"temperature": attribute}),
        ("PATCH", "/attrs/temperature", attribute),
        ("PUT", "/attrs/temperature", attribute),
    ):
        response = _send(room, method, path, orjson.dumps(body), **JSON)
        assert response.status_code < 500, response.text
