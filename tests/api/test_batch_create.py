"""POST /entityOperations/create and /upsert: what is stored, what is reported, what is left."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.batch_checks import (
    OPS,
    PARKING,
    WASTE,
    errors_of,
    new_tenant,
    post,
    read,
    room,
)
from tests.api.entity_checks import (
    BACKENDS,
    START,
    Broker,
    assert_problem,
    backend_database,
    running_broker,
    unchanged,
)
from tests.conftest import CORE, LD, link


@pytest.fixture(scope="module", params=BACKENDS)
def broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Broker]:
    """One broker (manual clock) for the module; each test works in a tenant of its own."""
    with running_broker(tmp_path_factory.mktemp("batch"), db=backend_database(request)) as shared:
        yield shared


@pytest.fixture
def client(broker: Broker) -> TestClient:
    """The module's broker, its clock set back to START."""
    broker.clock.moment = START
    return broker.client


@pytest.fixture
def tenant() -> dict[str, str]:
    """A tenant header no other test uses."""
    return new_tenant()


# -- create ---------------------------------------------------------------------------------------


def test_create_stores_every_entity_and_answers_their_ids(
    client: TestClient, tenant: dict[str, str]
) -> None:
    batch = [
        room(1, temperature={"type": "Property", "value": 21.5, "unitCode": "CEL"}),
        room(2, temperature=19, name="Sala 2"),
    ]
    response = post(client, "create", batch, tenant)
    assert response.status_code == 201
    assert response.json() == ["urn:ngsi-ld:Room:1", "urn:ngsi-ld:Room:2"]
    assert response.headers["NGSILD-Tenant"] == tenant["NGSILD-Tenant"]
    first = read(client, "urn:ngsi-ld:Room:1", tenant, options="sysAttrs")
    assert first is not None
    assert first["temperature"]["value"] == 21.5
    assert first["createdAt"] == first["modifiedAt"] == "2024-05-01T08:00:00.000Z"
    assert read(client, "urn:ngsi-ld:Room:2", tenant) == {
        "id": "urn:ngsi-ld:Room:2",
        "type": "Room",
        "temperature": {"type": "Property", "value": 19},
        "name": {"type": "Property", "value": "Sala 2"},
    }


def test_create_expands_names_with_the_link_header_context(
    client: TestClient, tenant: dict[str, str]
) -> None:
    spot = {"id": "urn:ngsi-ld:ParkingSpot:1", "type": "ParkingSpot", "category": ["onStreet"]}
    response = post(client, "create", [spot], {**tenant, **link(PARKING)})
    assert response.status_code == 201
    expanded = read(client, spot["id"], tenant)
    assert expanded is not None
    assert expanded["type"] == "https://smartdatamodels.org/dataModel.Parking/ParkingSpot"
    assert read(client, spot["id"], {**tenant, **link(PARKING)}) == {
        "id": spot["id"],
        "type": "ParkingSpot",
        "category": {"type": "Property", "value": ["onStreet"]},
    }


def test_create_in_json_ld_uses_each_entitys_own_context(
    client: TestClient, tenant: dict[str, str]
) -> None:
    spot = {"id": "urn:ngsi-ld:ParkingSpot:2", "type": "ParkingSpot", "@context": [PARKING, CORE]}
    bin_ = {"id": "urn:ngsi-ld:WasteContainer:1", "type": "WasteContainer", "@context": WASTE}
    missing = {"id": "urn:ngsi-ld:WasteContainer:2", "type": "WasteContainer"}
    response = post(client, "create", [spot, bin_, missing], {**tenant, **LD})
    assert errors_of(response) == {missing["id"]: "BadRequestData"}
    assert response.json()["success"] == [spot["id"], bin_["id"]]
    stored_spot, stored_bin = read(client, spot["id"], tenant), read(client, bin_["id"], tenant)
    assert stored_spot is not None and stored_bin is not None
    assert stored_spot["type"] == "https://smartdatamodels.org/dataModel.Parking/ParkingSpot"
    assert stored_bin["type"] == (
        "https://smartdatamodels.org/dataModel.WasteManagement/WasteContainer"
    )
    assert read(client, missing["id"], tenant) is None


def test_a_context_in_a_json_body_fails_that_entity_only(
    client: TestClient, tenant: dict[str, str]
) -> None:
    response = post(client, "create", [room(1), {**room(2), "@context": CORE}], tenant)
    assert errors_of(response) == {"urn:ngsi-ld:Room:2": "BadRequestData"}
    assert read(client, "urn:ngsi-ld:Room:1", tenant) is not None
    assert read(client, "urn:ngsi-ld:Room:2", tenant) is None


def test_an_unreachable_context_fails_the_entities_that_name_it(
    client: TestClient, tenant: dict[str, str]
) -> None:
    far = {**room(2), "@context": "file:///etc/passwd"}
    response = post(client, "create", [{**room(1), "@context": CORE}, far], {**tenant, **LD})
    assert errors_of(response) == {"urn:ngsi-ld:Room:2": "BadRequestData"}
    assert read(client, "urn:ngsi-ld:Room:1", tenant) is not None


def test_existing_and_invalid_entities_fail_alone(
    client: TestClient, tenant: dict[str, str]
) -> None:
    assert post(client, "create", [room(1, temperature=20)], tenant).status_code == 201
    batch = [
        room(1, temperature=99),
        room(2, temperature=18),
        {"id": "urn:ngsi-ld:Room:3", "temperature": 1},
        room(4, temperature={"type": "Property"}),
        {"id": "not a uri", "type": "Room"},
        room(5, temperature=17),
    ]
    with unchanged(client, "urn:ngsi-ld:Room:1", tenant):
        response = post(client, "create", batch, tenant)
    assert errors_of(response) == {
        "urn:ngsi-ld:Room:1": "AlreadyExists",
        "urn:ngsi-ld:Room:3": "BadRequestData",
        "urn:ngsi-ld:Room:4": "BadRequestData",
        "not a uri": "BadRequestData",
    }
    assert response.json()["success"] == ["urn:ngsi-ld:Room:2", "urn:ngsi-ld:Room:5"]
    for missing in ("urn:ngsi-ld:Room:3", "urn:ngsi-ld:Room:4"):
        assert read(client, missing, tenant) is None
    assert read(client, "urn:ngsi-ld:Room:5", tenant) is not None


def test_a_repeated_id_is_created_once_and_then_already_exists(
    client: TestClient, tenant: dict[str, str]
) -> None:
    batch = [room(1, temperature=1), room(2), room(1, temperature=2)]
    response = post(client, "create", batch, tenant)
    assert errors_of(response) == {"urn:ngsi-ld:Room:1": "AlreadyExists"}
    assert response.json()["success"] == ["urn:ngsi-ld:Room:1", "urn:ngsi-ld:Room:2"]
    first = read(client, "urn:ngsi-ld:Room:1", tenant)
    assert first is not None and first["temperature"]["value"] == 1


def test_a_batch_where_nothing_is_created_is_still_a_207(
    client: TestClient, tenant: dict[str, str]
) -> None:
    response = post(client, "create", [{"id": "urn:ngsi-ld:Room:1"}], tenant)
    assert errors_of(response) == {"urn:ngsi-ld:Room:1": "BadRequestData"}
    assert response.json()["success"] == []


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"id": "urn:ngsi-ld:Room:1", "type": "Room"},
        [room(1), None],
        [room(1), 3],
        [room(1), {}],
    ],
    ids=["empty", "object", "null item", "number item", "item without id"],
)
def test_a_malformed_batch_is_refused_whole(
    client: TestClient, tenant: dict[str, str], body: Any
) -> None:
    for operation in ("create", "upsert", "update", "merge"):
        assert_problem(post(client, operation, body, tenant), 400, "BadRequestData")
    assert read(client, "urn:ngsi-ld:Room:1", tenant) is None


def test_request_level_errors(client: TestClient, tenant: dict[str, str]) -> None:
    bad_json = client.post(
        f"{OPS}/create", content=b"[{", headers={"Content-Type": "application/json"}
    )
    assert_problem(bad_json, 400, "InvalidRequest")
    plain = client.post(f"{OPS}/create", content=b"[]", headers={"Content-Type": "text/plain"})
    assert plain.status_code == 415
    both = post(client, "create", [{**room(1), "@context": CORE}], {**LD, **link(PARKING)})
    assert_problem(both, 400, "BadRequestData")
    assert_problem(
        post(client, "create", [room(1)], tenant, options="update"), 400, "BadRequestData"
    )
    bad_tenant = post(client, "create", [room(1)], {"NGSILD-Tenant": "no spaces"})
    assert_problem(bad_tenant, 400, "BadRequestData")
    assert read(client, "urn:ngsi-ld:Room:1", tenant) is None


def test_a_body_over_the_limit_is_413(tmp_path_factory: pytest.TempPathFactory) -> None:
    with running_broker(tmp_path_factory.mktemp("small"), max_body_bytes=2048) as small:
        batch = [room(n, name="x" * 100) for n in range(30)]
        assert_problem(post(small.client, "create", batch), 413, "PayloadTooLarge")
        assert read(small.client, "urn:ngsi-ld:Room:0") is None


def test_create_makes_the_tenant_and_keeps_tenants_apart(client: TestClient) -> None:
    tenant = new_tenant()
    assert client.get("/ngsi-ld/v1/types", headers=tenant).status_code == 404
    assert post(client, "create", [room(77)], tenant).status_code == 201
    assert read(client, "urn:ngsi-ld:Room:77", tenant) is not None
    assert read(client, "urn:ngsi-ld:Room:77") is None
    assert read(client, "urn:ngsi-ld:Room:77", new_tenant()) is None


# -- upsert ---------------------------------------------------------------------------------------


def test_upsert_creates_new_and_replaces_existing(
    client: TestClient, broker: Broker, tenant: dict[str, str]
) -> None:
    post(client, "create", [room(1, temperature=20, humidity=0.4, scope="/a")], tenant)
    broker.clock.advance(60)
    response = post(client, "upsert", [room(1, temperature=21), room(2, temperature=5)], tenant)
    assert response.status_code == 201
    assert response.json() == ["urn:ngsi-ld:Room:2"]
    replaced = read(client, "urn:ngsi-ld:Room:1", tenant, options="sysAttrs")
    assert replaced is not None
    assert set(replaced) == {"id", "type", "temperature", "createdAt", "modifiedAt"}
    assert replaced["temperature"]["value"] == 21
    assert replaced["createdAt"] == "2024-05-01T08:00:00.000Z"
    assert replaced["modifiedAt"] == "2024-05-01T08:01:00.000Z"


def test_upsert_of_existing_entities_only_is_204(
    client: TestClient, tenant: dict[str, str]
) -> None:
    post(client, "create", [room(1), room(2)], tenant)
    response = post(client, "upsert", [room(1, a=1), room(2, a=2)], tenant, options="replace")
    assert response.status_code == 204
    assert response.content == b""
    stored = read(client, "urn:ngsi-ld:Room:2", tenant)
    assert stored is not None and stored["a"]["value"] == 2


def test_upsert_replace_replaces_the_types(client: TestClient, tenant: dict[str, str]) -> None:
    post(client, "create", [room(1, a=1)], tenant)
    response = post(
        client, "upsert", [{"id": "urn:ngsi-ld:Room:1", "type": ["Office", "Lab"]}], tenant
    )
    assert response.status_code == 204
    stored = read(client, "urn:ngsi-ld:Room:1", tenant)
    assert stored == {"id": "urn:ngsi-ld:Room:1", "type": ["Office", "Lab"]}


def test_upsert_update_appends_and_overwrites(client: TestClient, tenant: dict[str, str]) -> None:
    post(client, "create", [room(1, temperature=20, humidity=0.4, scope="/a")], tenant)
    batch = [{"id": "urn:ngsi-ld:Room:1", "type": "Office", "temperature": 22, "co2": 800}]
    response = post(client, "upsert", [*batch, room(3)], tenant, options="update")
    assert response.status_code == 201
    assert response.json() == ["urn:ngsi-ld:Room:3"]
    assert read(client, "urn:ngsi-ld:Room:1", tenant) == {
        "id": "urn:ngsi-ld:Room:1",
        "type": ["Room", "Office"],
        "scope": "/a",
        "temperature": {"type": "Property", "value": 22},
        "humidity": {"type": "Property", "value": 0.4},
        "co2": {"type": "Property", "value": 800},
    }


def test_upsert_of_one_id_twice_leaves_the_last(client: TestClient, tenant: dict[str, str]) -> None:
    response = post(client, "upsert", [room(1, speed=1, old=True), room(1, speed=2)], tenant)
    assert response.status_code == 201
    assert response.json() == ["urn:ngsi-ld:Room:1"]
    assert read(client, "urn:ngsi-ld:Room:1", tenant) == {
        "id": "urn:ngsi-ld:Room:1",
        "type": "Room",
        "speed": {"type": "Property", "value": 2},
    }


def test_an_invalid_upsert_leaves_the_stored_entity(
    client: TestClient, tenant: dict[str, str]
) -> None:
    post(client, "create", [room(1, temperature=20)], tenant)
    batch = [
        {"id": "urn:ngsi-ld:Room:1", "temperature": 30},
        room(2, temperature=5),
        room(3, bad={"type": "Relationship", "object": "not a uri"}),
    ]
    with unchanged(client, "urn:ngsi-ld:Room:1", tenant):
        response = post(client, "upsert", batch, tenant)
    assert errors_of(response) == {
        "urn:ngsi-ld:Room:1": "BadRequestData",
        "urn:ngsi-ld:Room:3": "BadRequestData",
    }
    assert response.json()["success"] == ["urn:ngsi-ld:Room:2"]


def test_upsert_refuses_replace_and_update_together(
    client: TestClient, tenant: dict[str, str]
) -> None:
    response = post(client, "upsert", [room(1)], tenant, options="replace,update")
    assert_problem(response, 400, "BadRequestData")
    assert_problem(
        post(client, "upsert", [room(1)], tenant, options="noOverwrite"), 400, "BadRequestData"
    )
    assert read(client, "urn:ngsi-ld:Room:1", tenant) is None
