"""Tenants through the NGSILD-Tenant header: created on first write, isolated, 404 when unknown."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.entity_checks import (  # noqa: F401 - fixtures
    BASE,
    Broker,
    assert_problem,
    running_broker,
    stored,
    unchanged,
)
from tests.conftest import JSON, entity

ROOM = "urn:ngsi-ld:Room:1"
URL = f"{BASE}/{ROOM}"
_numbers = itertools.count()


@pytest.fixture
def tenant() -> dict[str, str]:
    """The header of a tenant no test has used yet."""
    return {"NGSILD-Tenant": f"urn:ngsi-ld:tenant:{next(_numbers)}"}


def _create(client: TestClient, tenant: dict[str, str], **attrs: Any) -> Any:
    return client.post(BASE, json=entity(**attrs), headers={**JSON, **tenant})


def test_first_create_makes_the_tenant_and_echoes_it(
    client: TestClient, tenant: dict[str, str]
) -> None:
    response = _create(client, tenant, temperature=1)
    assert response.status_code == 201
    assert response.headers["ngsild-tenant"] == tenant["NGSILD-Tenant"]
    got = client.get(URL, headers=tenant)
    assert got.status_code == 200
    assert got.headers["ngsild-tenant"] == tenant["NGSILD-Tenant"]
    assert got.json()["temperature"]["value"] == 1


def test_same_id_in_two_tenants_and_the_default_one(
    client: TestClient, tenant: dict[str, str]
) -> None:
    other = {"NGSILD-Tenant": tenant["NGSILD-Tenant"] + ":other"}
    assert _create(client, tenant, temperature=1).status_code == 201
    assert _create(client, other, temperature=2).status_code == 201
    assert _create(client, {}, temperature=3).status_code == 201
    assert client.get(URL, headers=tenant).json()["temperature"]["value"] == 1
    assert client.get(URL, headers=other).json()["temperature"]["value"] == 2
    assert client.get(URL).json()["temperature"]["value"] == 3


def test_writes_stay_in_their_tenant(client: TestClient, tenant: dict[str, str]) -> None:
    _create(client, tenant, temperature=1)
    _create(client, {}, temperature=3)
    with unchanged(client, ROOM):
        patched = client.patch(URL, json={"temperature": 9}, headers={**JSON, **tenant})
        assert patched.status_code == 204
        assert client.delete(f"{URL}/attrs/temperature", headers=tenant).status_code == 204
        assert client.delete(URL, headers=tenant).status_code == 204
    assert_problem(client.get(URL, headers=tenant), 404, "ResourceNotFound")


def test_entity_of_a_tenant_is_invisible_elsewhere(
    client: TestClient, tenant: dict[str, str]
) -> None:
    _create(client, tenant, temperature=1)
    assert_problem(client.get(URL), 404, "ResourceNotFound")
    assert_problem(client.delete(URL), 404, "ResourceNotFound")
    assert client.get(URL, headers=tenant).status_code == 200


UNKNOWN_TENANT_OPS: list[tuple[str, str, Any]] = [
    ("GET", "", None),
    ("DELETE", "", None),
    ("PUT", "", {"type": "Room"}),
    ("PATCH", "", {"temperature": 1}),
    ("POST", "/attrs", {"temperature": 1}),
    ("PATCH", "/attrs", {"temperature": 1}),
    ("PATCH", "/attrs/temperature", {"value": 1}),
    ("PUT", "/attrs/temperature", {"type": "Property", "value": 1}),
    ("DELETE", "/attrs/temperature", None),
]


@pytest.mark.parametrize(("method", "path", "body"), UNKNOWN_TENANT_OPS)
def test_unknown_tenant_is_404_nonexistent_tenant(
    client: TestClient, tenant: dict[str, str], method: str, path: str, body: Any
) -> None:
    _create(client, {}, temperature=1)
    with unchanged(client, ROOM):
        headers = {**tenant, **JSON} if body is not None else tenant
        response = client.request(method, f"{URL}{path}", json=body, headers=headers)
        problem = assert_problem(response, 404, "NonexistentTenant")
        assert tenant["NGSILD-Tenant"] in problem["detail"]
    assert_problem(client.get(URL, headers=tenant), 404, "NonexistentTenant")


def test_failed_create_does_not_make_the_tenant(client: TestClient, tenant: dict[str, str]) -> None:
    bad = client.post(BASE, json={"id": "not a uri", "type": "Room"}, headers={**JSON, **tenant})
    assert_problem(bad, 400, "BadRequestData")
    assert_problem(client.get(URL, headers=tenant), 404, "NonexistentTenant")


def test_tenant_survives_deleting_its_last_entity(
    client: TestClient, tenant: dict[str, str]
) -> None:
    _create(client, tenant)
    client.delete(URL, headers=tenant)
    assert_problem(client.get(URL, headers=tenant), 404, "ResourceNotFound")


def test_tenant_entities_keep_their_system_times(
    broker: Broker, client: TestClient, tenant: dict[str, str]
) -> None:
    _create(client, tenant, temperature=1)
    broker.clock.advance(30)
    client.patch(URL, json={"temperature": 2}, headers={**JSON, **tenant})
    got = stored(client, ROOM, tenant)
    assert (got["createdAt"], got["modifiedAt"]) == (
        "2024-05-01T08:00:00.000Z",
        "2024-05-01T08:00:30.000Z",
    )


@pytest.mark.parametrize("name", [b"bad tenant", b"a/b", b"x" * 200, "ü".encode()])
def test_malformed_tenant_names_are_rejected(client: TestClient, name: bytes) -> None:
    headers: dict[str, Any] = {**JSON, "NGSILD-Tenant": name}
    response = client.post(BASE, json=entity(), headers=headers)
    assert_problem(response, 400, "BadRequestData")
    assert_problem(client.get(URL, headers=headers), 400, "BadRequestData")
