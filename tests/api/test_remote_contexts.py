"""User @contexts named by URL: downloaded once from a real local server, then cached."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from burgo.app import create_app
from burgo.config import Settings, load_settings
from tests.conftest import JSON, LD, entity, link
from tests.context_server import ContextServer, closed_port_url, context_server

TIMEOUT = 0.5
USER_CONTEXT = {"ex": "http://example.org/ns#", "temp": "ex:temperature", "Room": "ex:Room"}
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"


@pytest.fixture
def fast_settings(tmp_path: Path) -> Settings:
    """Settings with a short @context download timeout."""
    return load_settings(
        flags={
            "db": str(tmp_path / "burgo.db"),
            "sqlite_synchronous": "NORMAL",
            "context_fetch_timeout": TIMEOUT,
        },
        environ={},
        config_path=None,
    )


@pytest.fixture
def api(fast_settings: Settings) -> Iterator[TestClient]:
    """A running app with the short timeout."""
    with TestClient(create_app(fast_settings)) as client:
        yield client


@pytest.fixture
def server() -> Iterator[ContextServer]:
    """A local HTTP server for @context documents."""
    with context_server() as running:
        yield running


def room(**attrs: Any) -> dict[str, Any]:
    return entity("urn:ngsi-ld:Room:1", **attrs)


def cached(api: TestClient) -> list[Any]:
    response = api.get("/ngsi-ld/v1/jsonldContexts", params={"kind": "Cached"})
    assert response.status_code == 200
    listed: list[Any] = response.json()
    return listed


def test_a_linked_context_is_downloaded_once_and_used_both_ways(
    api: TestClient, server: ContextServer
) -> None:
    url = server.serve_context("/ctx.jsonld", USER_CONTEXT)
    created = api.post(
        "/ngsi-ld/v1/entities",
        json=room(temp={"type": "Property", "value": 21}),
        headers={**JSON, **link(url)},
    )
    assert created.status_code == 201, created.text
    read = api.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1", headers=link(url))
    assert read.status_code == 200
    assert read.json()["type"] == "Room"
    assert read.json()["temp"]["value"] == 21
    expanded = api.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1").json()
    assert expanded["type"] == "http://example.org/ns#Room"
    assert "http://example.org/ns#temperature" in expanded
    assert server.hits["/ctx.jsonld"] == 1
    assert cached(api) == [url]


def test_the_cache_survives_a_restart(fast_settings: Settings, server: ContextServer) -> None:
    url = server.serve_context("/ctx.jsonld", USER_CONTEXT)
    with TestClient(create_app(fast_settings)) as first:
        body = room(temp={"type": "Property", "value": 1})
        assert first.post(
            "/ngsi-ld/v1/entities", json=body, headers={**JSON, **link(url)}
        ).is_success
    server.routes.clear()
    with TestClient(create_app(fast_settings)) as second:
        read = second.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1", headers=link(url))
        assert read.status_code == 200
        assert read.json()["temp"]["value"] == 1
    assert server.hits["/ctx.jsonld"] == 1


def test_nested_remote_contexts_inline_in_the_body(api: TestClient, server: ContextServer) -> None:
    inner = server.serve_context("/inner.jsonld", {"speed": "http://example.org/speed"})
    outer = server.serve_context("/outer.jsonld", [USER_CONTEXT, inner])
    body = {**room(temp={"type": "Property", "value": 3}, speed={"type": "Property", "value": 4})}
    body["@context"] = [outer]
    assert api.post("/ngsi-ld/v1/entities", json=body, headers=LD).status_code == 201
    read = api.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1", headers=link(outer)).json()
    assert {"temp", "speed"} <= set(read)
    again = api.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1", headers=link(inner)).json()
    assert "speed" in again
    assert server.hits == {"/outer.jsonld": 1, "/inner.jsonld": 1}
    assert sorted(cached(api)) == sorted([outer, inner])


def _refused(api: TestClient, url: str, expected_status: int, problem: str) -> None:
    response = api.post(
        "/ngsi-ld/v1/entities",
        json=room(temp={"type": "Property", "value": 1}),
        headers={**JSON, **link(url)},
    )
    assert response.status_code == expected_status, response.text
    assert response.json()["type"] == ERRORS + problem
    assert api.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1").status_code == 404
    assert cached(api) == []


def test_a_closed_port_gives_503_quickly(api: TestClient) -> None:
    started = time.monotonic()
    _refused(api, closed_port_url(), 503, "LdContextNotAvailable")
    assert time.monotonic() - started < TIMEOUT * 4


def test_a_server_slower_than_the_timeout_gives_503(api: TestClient, server: ContextServer) -> None:
    url = server.serve_context("/slow.jsonld", USER_CONTEXT, delay=TIMEOUT * 6)
    started = time.monotonic()
    _refused(api, url, 503, "LdContextNotAvailable")
    assert time.monotonic() - started < TIMEOUT * 4


def test_a_missing_document_gives_503(api: TestClient, server: ContextServer) -> None:
    _refused(api, server.url("/nothing-here.jsonld"), 503, "LdContextNotAvailable")
    assert server.hits["/nothing-here.jsonld"] == 1


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"<html>not json</html>", "text/html"),
        (b'{"no": "context"}', "application/json"),
        (b'{"@context": {"temp": 5}}', "application/ld+json"),
    ],
)
def test_a_document_that_is_not_a_context_gives_400(
    api: TestClient, server: ContextServer, body: bytes, content_type: str
) -> None:
    url = server.serve("/bad.jsonld", body, content_type=content_type)
    _refused(api, url, 400, "BadRequestData")


@pytest.mark.parametrize(
    "url",
    [
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld",
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.3.jsonld",
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld",
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld",
    ],
)
def test_core_context_urls_never_touch_the_network(api: TestClient, url: str) -> None:
    body = room(temp={"type": "Property", "value": 1})
    created = api.post("/ngsi-ld/v1/entities", json=body, headers={**JSON, **link(url)})
    assert created.status_code == 201, created.text
    read = api.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1", headers=link(url))
    assert read.json()["temp"]["value"] == 1
    assert cached(api) == []


SDM = Path(__file__).resolve().parents[1] / "data" / "smart-data-models"


SAMPLES = sorted(SDM.glob("*/*/example-normalized.jsonld"))


def test_the_smart_data_models_samples_are_there() -> None:
    assert len(SAMPLES) >= 10, f"expected the Smart Data Models samples under {SDM}"


@pytest.mark.parametrize("sample", SAMPLES, ids=str)
def test_smart_data_models_contexts_are_shipped(api: TestClient, sample: Path) -> None:
    body = orjson.loads(sample.read_bytes())
    contexts = body["@context"] if isinstance(body["@context"], list) else [body["@context"]]
    created = api.post("/ngsi-ld/v1/entities", content=orjson.dumps(body), headers=LD)
    assert created.status_code == 201, created.text
    sdm_urls = [c for c in contexts if "smart-data-models" in c]
    read = api.get(f"/ngsi-ld/v1/entities/{body['id']}", headers=link(sdm_urls[0])).json()
    names = set(body) - {"@context", "id", "type", "createdAt", "modifiedAt"}
    assert names <= set(read)
    assert read["type"] == body["type"]
    assert cached(api) == []


def test_reload_downloads_a_cached_context_again(api: TestClient, server: ContextServer) -> None:
    url = server.serve_context("/ctx.jsonld", {"temp": "http://example.org/v1/temp"})
    body = room(temp={"type": "Property", "value": 1})
    assert api.post("/ngsi-ld/v1/entities", json=body, headers={**JSON, **link(url)}).is_success
    server.serve_context("/ctx.jsonld", {"temp": "http://example.org/v2/temp"})
    assert (
        api.delete(f"/ngsi-ld/v1/jsonldContexts/{url}", params={"reload": "true"}).status_code
        == 204
    )
    assert server.hits["/ctx.jsonld"] == 2
    read = api.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1", headers=link(url)).json()
    assert "http://example.org/v1/temp" in read
    assert "temp" not in read


def test_a_failed_reload_keeps_the_cached_copy(api: TestClient, server: ContextServer) -> None:
    url = server.serve_context("/ctx.jsonld", USER_CONTEXT)
    body = room(temp={"type": "Property", "value": 1})
    assert api.post("/ngsi-ld/v1/entities", json=body, headers={**JSON, **link(url)}).is_success
    server.routes.clear()
    reload = api.delete(f"/ngsi-ld/v1/jsonldContexts/{url}", params={"reload": "true"})
    assert reload.status_code == 503
    assert cached(api) == [url]
    read = api.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1", headers=link(url)).json()
    assert "temp" in read
