"""POST /entityOperations/update, /merge and /delete: each entity on its own, 204 or 207."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.api.batch_checks import PARKING, errors_of, new_tenant, post, read, room
from tests.api.entity_checks import (
    BACKENDS,
    START,
    Broker,
    assert_problem,
    backend_database,
    running_broker,
    unchanged,
)
from tests.conftest import LD, link


@pytest.fixture(scope="module", params=BACKENDS)
def broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Broker]:
    """One broker (manual clock) for the module; each test works in a tenant of its own."""
    with running_broker(tmp_path_factory.mktemp("batch"), db=backend_database(request)) as shared:
        yield shared


@pytest.fixture
def tenant(broker: Broker) -> dict[str, str]:
    """A new tenant holding Room 1 (temperature 20 CEL, humidity 0.4) and Room 2 (20)."""
    headers = new_tenant()
    broker.clock.moment = START
    seeded = [
        room(1, temperature={"type": "Property", "value": 20, "unitCode": "CEL"}, humidity=0.4),
        room(2, temperature=20),
    ]
    assert post(broker.client, "create", seeded, headers).status_code == 201
    return headers


@pytest.fixture
def client(broker: Broker, tenant: dict[str, str]) -> TestClient:
    """The module's broker."""
    return broker.client


# -- update ---------------------------------------------------------------------------------------


def test_update_appends_and_overwrites_attributes(
    client: TestClient, broker: Broker, tenant: dict[str, str]
) -> None:
    broker.clock.advance(60)
    batch = [room(1, temperature=25, co2=900), {"id": "urn:ngsi-ld:Room:2", "humidity": 0.3}]
    response = post(client, "update", batch, tenant)
    assert response.status_code == 204
    assert response.headers["NGSILD-Tenant"] == tenant["NGSILD-Tenant"]
    first = read(client, "urn:ngsi-ld:Room:1", tenant, options="sysAttrs")
    assert first is not None
    assert first["temperature"]["value"] == 25
    assert "unitCode" not in first["temperature"]
    assert first["temperature"]["createdAt"] == "2024-05-01T08:00:00.000Z"
    assert first["temperature"]["modifiedAt"] == "2024-05-01T08:01:00.000Z"
    assert first["humidity"]["value"] == 0.4
    assert first["co2"]["value"] == 900
    second = read(client, "urn:ngsi-ld:Room:2", tenant)
    assert second is not None and second["humidity"]["value"] == 0.3


def test_update_reports_missing_entities_and_updates_the_rest(
    client: TestClient, tenant: dict[str, str]
) -> None:
    response = post(client, "update", [room(9, temperature=1), room(2, temperature=3)], tenant)
    assert errors_of(response) == {"urn:ngsi-ld:Room:9": "ResourceNotFound"}
    assert response.json()["success"] == ["urn:ngsi-ld:Room:2"]
    assert read(client, "urn:ngsi-ld:Room:9", tenant) is None
    second = read(client, "urn:ngsi-ld:Room:2", tenant)
    assert second is not None and second["temperature"]["value"] == 3


def test_update_no_overwrite_keeps_existing_attributes(
    client: TestClient, tenant: dict[str, str]
) -> None:
    response = post(
        client, "update", [room(1, temperature=99, co2=800)], tenant, options="noOverwrite"
    )
    assert errors_of(response) == {"urn:ngsi-ld:Room:1": "AlreadyExists"}
    assert "temperature" in response.json()["errors"][0]["error"]["detail"]
    first = read(client, "urn:ngsi-ld:Room:1", tenant)
    assert first is not None
    assert first["temperature"]["value"] == 20
    assert first["co2"]["value"] == 800
    only_new = post(client, "update", [room(2, co2=700)], tenant, options="noOverwrite")
    assert only_new.status_code == 204


def test_a_rejected_update_leaves_the_entity_untouched(
    client: TestClient, tenant: dict[str, str]
) -> None:
    batch = [
        room(1, temperature={"type": "Relationship", "object": "nope"}),
        room(2, temperature="urn:ngsi-ld:null"),
        {"id": "urn:ngsi-ld:Room:2", "@context": "https://example.org/ctx.jsonld"},
    ]
    with (
        unchanged(client, "urn:ngsi-ld:Room:1", tenant),
        unchanged(client, "urn:ngsi-ld:Room:2", tenant),
    ):
        response = post(client, "update", batch, tenant)
    assert errors_of(response) == {
        "urn:ngsi-ld:Room:1": "BadRequestData",
        "urn:ngsi-ld:Room:2": "BadRequestData",
    }
    assert len(response.json()["errors"]) == 3


def test_update_and_merge_need_an_existing_tenant(client: TestClient) -> None:
    for operation in ("update", "merge"):
        response = post(client, operation, [room(1, a=1)], {"NGSILD-Tenant": "never-created"})
        assert_problem(response, 404, "NonexistentTenant")
    response = post(client, "delete", ["urn:ngsi-ld:Room:1"], {"NGSILD-Tenant": "never-created"})
    assert_problem(response, 404, "NonexistentTenant")
    assert post(client, "update", [room(1, a=1)], new_tenant()).status_code == 404


def test_update_takes_names_from_the_link_header(
    client: TestClient, tenant: dict[str, str]
) -> None:
    response = post(client, "update", [room(2, name="A-13")], {**tenant, **link(PARKING)})
    assert response.status_code == 204
    stored = read(client, "urn:ngsi-ld:Room:2", tenant)
    assert stored is not None
    assert stored["https://smartdatamodels.org/name"]["value"] == "A-13"


# -- merge ----------------------------------------------------------------------------------------


def test_merge_patches_attributes_and_nulls_delete(
    client: TestClient, broker: Broker, tenant: dict[str, str]
) -> None:
    broker.clock.advance(60)
    batch = [
        {"id": "urn:ngsi-ld:Room:1", "temperature": {"value": 23}, "humidity": "urn:ngsi-ld:null"},
        {"id": "urn:ngsi-ld:Room:2", "type": "Office", "co2": 700},
    ]
    response = post(client, "merge", batch, tenant)
    assert response.status_code == 204
    first = read(client, "urn:ngsi-ld:Room:1", tenant)
    assert first == {
        "id": "urn:ngsi-ld:Room:1",
        "type": "Room",
        "temperature": {"type": "Property", "value": 23, "unitCode": "CEL"},
    }
    second = read(client, "urn:ngsi-ld:Room:2", tenant)
    assert second is not None
    assert second["type"] == ["Room", "Office"]
    assert second["co2"]["value"] == 700


def test_merge_reports_missing_and_invalid_entities(
    client: TestClient, tenant: dict[str, str]
) -> None:
    batch = [
        {"id": "urn:ngsi-ld:Room:9", "a": 1},
        {"id": "urn:ngsi-ld:Room:1", "temperature": {"type": "Relationship"}},
        {"id": "urn:ngsi-ld:Room:2", "a": 2},
    ]
    with unchanged(client, "urn:ngsi-ld:Room:1", tenant):
        response = post(client, "merge", batch, tenant)
    assert errors_of(response) == {
        "urn:ngsi-ld:Room:9": "ResourceNotFound",
        "urn:ngsi-ld:Room:1": "BadRequestData",
    }
    assert response.json()["success"] == ["urn:ngsi-ld:Room:2"]


def test_merge_accepts_json_ld_and_merge_patch_bodies(
    client: TestClient, tenant: dict[str, str]
) -> None:
    with_context = {"id": "urn:ngsi-ld:Room:1", "name": "A-13", "@context": PARKING}
    assert post(client, "merge", [with_context], {**tenant, **LD}).status_code == 204
    stored = read(client, "urn:ngsi-ld:Room:1", {**tenant, **link(PARKING)})
    assert stored is not None and stored["name"]["value"] == "A-13"
    patch_type = {"Content-Type": "application/merge-patch+json"}
    response = post(client, "merge", [room(2, a=1)], {**tenant, **patch_type})
    assert response.status_code == 204


# -- delete ---------------------------------------------------------------------------------------


def test_delete_removes_every_entity(client: TestClient, tenant: dict[str, str]) -> None:
    response = post(client, "delete", ["urn:ngsi-ld:Room:1", "urn:ngsi-ld:Room:2"], tenant)
    assert response.status_code == 204
    assert response.content == b""
    assert read(client, "urn:ngsi-ld:Room:1", tenant) is None
    assert read(client, "urn:ngsi-ld:Room:2", tenant) is None


def test_delete_reports_unknown_repeated_and_invalid_ids(
    client: TestClient, tenant: dict[str, str]
) -> None:
    ids = ["urn:ngsi-ld:Room:1", "urn:ngsi-ld:Room:1", "urn:ngsi-ld:Room:9", "no-uri"]
    response = post(client, "delete", ids, tenant)
    assert errors_of(response) == {
        "urn:ngsi-ld:Room:1": "ResourceNotFound",
        "urn:ngsi-ld:Room:9": "ResourceNotFound",
        "no-uri": "BadRequestData",
    }
    assert response.json()["success"] == ["urn:ngsi-ld:Room:1"]
    assert read(client, "urn:ngsi-ld:Room:1", tenant) is None
    assert read(client, "urn:ngsi-ld:Room:2", tenant) is not None


@pytest.mark.parametrize("body", [[], ["urn:ngsi-ld:Room:1", 3], [None], {"id": "urn:a:b"}])
def test_a_malformed_delete_is_refused_whole(
    client: TestClient, tenant: dict[str, str], body: object
) -> None:
    with unchanged(client, "urn:ngsi-ld:Room:1", tenant):
        assert_problem(post(client, "delete", body, tenant), 400, "BadRequestData")
