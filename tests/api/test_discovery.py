"""GET /types, /types/{type}, /attributes and /attributes/{attrId}: what a tenant holds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.batch_checks import PARKING, WASTE, new_tenant, post
from tests.api.entity_checks import (
    BACKENDS,
    Broker,
    assert_problem,
    backend_database,
    running_broker,
)
from tests.conftest import CORE, LD, link

TYPES = "/ngsi-ld/v1/types"
ATTRIBUTES = "/ngsi-ld/v1/attributes"
SDM_PARKING = "https://smartdatamodels.org/dataModel.Parking/"
SDM_WASTE = "https://smartdatamodels.org/dataModel.WasteManagement/"


def _town() -> list[dict[str, Any]]:
    """Two parking spots, a waste container, and a container that is also a parking spot."""
    return [
        {
            "id": "urn:ngsi-ld:ParkingSpot:1",
            "type": "ParkingSpot",
            "@context": [PARKING, CORE],
            "status": "free",
            "name": "A-1",
            "refParkingSite": {"object": "urn:ngsi-ld:OnStreetParking:1"},
            "location": {"type": "Point", "coordinates": [-7.5, 40.1]},
        },
        {
            "id": "urn:ngsi-ld:ParkingSpot:2",
            "type": "ParkingSpot",
            "@context": PARKING,
            "status": "occupied",
        },
        {
            "id": "urn:ngsi-ld:WasteContainer:1",
            "type": "WasteContainer",
            "@context": WASTE,
            "fillingLevel": 0.8,
            "status": [
                {"type": "Property", "value": "ok"},
                {"type": "Property", "value": "lid open", "datasetId": "urn:ngsi-ld:Dataset:lid"},
            ],
        },
        {
            "id": "urn:ngsi-ld:Thing:1",
            "type": ["WasteContainer", "Robot"],
            "@context": WASTE,
            "status": {"type": "Relationship", "object": "urn:ngsi-ld:Status:1"},
        },
    ]


@pytest.fixture(scope="module", params=BACKENDS)
def broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Broker]:
    """One broker whose tenant ``town`` holds :func:`_town` and whose default tenant is empty."""
    with running_broker(
        tmp_path_factory.mktemp("discovery"), db=backend_database(request)
    ) as shared:
        created = post(shared.client, "create", _town(), {"NGSILD-Tenant": "town", **LD})
        assert created.status_code == 201, created.text
        yield shared


@pytest.fixture
def client(broker: Broker) -> TestClient:
    """The module's broker."""
    return broker.client


TOWN = {"NGSILD-Tenant": "town"}


def test_types_lists_each_type_once(client: TestClient) -> None:
    response = client.get(TYPES, headers=TOWN)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert CORE in response.headers["Link"]
    assert response.headers["NGSILD-Tenant"] == "town"
    body = response.json()
    assert body["id"].startswith("urn:ngsi-ld:EntityTypeList:")
    assert body["type"] == "EntityTypeList"
    assert sorted(body["typeList"]) == sorted(
        [SDM_PARKING + "ParkingSpot", "Robot", SDM_WASTE + "WasteContainer"]
    )


def test_type_names_are_compacted_with_the_request_context(client: TestClient) -> None:
    body = client.get(TYPES, headers={**TOWN, **link(WASTE)}).json()
    assert sorted(body["typeList"]) == sorted(
        [SDM_PARKING + "ParkingSpot", "Robot", "WasteContainer"]
    )
    response = client.get(TYPES, headers={**TOWN, **link(PARKING), "Accept": LD["Content-Type"]})
    assert response.headers["content-type"] == "application/ld+json"
    assert "Link" not in response.headers
    assert response.json()["@context"] == PARKING
    assert "ParkingSpot" in response.json()["typeList"]


def test_types_in_detail_name_their_attributes(client: TestClient) -> None:
    response = client.get(TYPES, headers={**TOWN, **link(WASTE)}, params={"details": "true"})
    assert response.status_code == 200
    by_name = {item["typeName"]: item for item in response.json()}
    assert set(by_name) == {SDM_PARKING + "ParkingSpot", "Robot", "WasteContainer"}
    container = by_name["WasteContainer"]
    assert container["id"] == SDM_WASTE + "WasteContainer"
    assert container["type"] == "EntityType"
    assert sorted(container["attributeNames"]) == ["fillingLevel", "status"]
    assert by_name["Robot"]["attributeNames"] == ["status"]
    assert sorted(by_name[SDM_PARKING + "ParkingSpot"]["attributeNames"]) == sorted(
        ["location", "status", "name", SDM_PARKING + "refParkingSite"]
    )


def test_one_type_counts_entities_and_attribute_kinds(client: TestClient) -> None:
    response = client.get(f"{TYPES}/WasteContainer", headers={**TOWN, **link(WASTE)})
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == SDM_WASTE + "WasteContainer"
    assert body["type"] == "EntityTypeInfo"
    assert body["typeName"] == "WasteContainer"
    assert body["entityCount"] == 2
    details = {d["attributeName"]: d for d in body["attributeDetails"]}
    assert details["status"] == {
        "id": "https://uri.etsi.org/ngsi-ld/status",
        "type": "Attribute",
        "attributeName": "status",
        "attributeTypes": ["Property", "Relationship"],
    }
    assert details["fillingLevel"]["attributeTypes"] == ["Property"]


def test_a_type_can_be_named_by_its_full_iri(client: TestClient) -> None:
    response = client.get(f"{TYPES}/{SDM_PARKING}ParkingSpot", headers=TOWN)
    assert response.status_code == 200
    assert response.json()["entityCount"] == 2
    robot = client.get(f"{TYPES}/Robot", headers=TOWN).json()
    assert (robot["entityCount"], robot["typeName"]) == (1, "Robot")


def test_an_unknown_type_or_attribute_is_404(client: TestClient) -> None:
    assert_problem(client.get(f"{TYPES}/Bench", headers=TOWN), 404, "ResourceNotFound")
    assert_problem(client.get(f"{TYPES}/ParkingSpot", headers=TOWN), 404, "ResourceNotFound")
    assert_problem(client.get(f"{ATTRIBUTES}/colour", headers=TOWN), 404, "ResourceNotFound")
    assert_problem(client.get(f"{TYPES}/Robot"), 404, "ResourceNotFound")


def test_attributes_list_each_name_once(client: TestClient) -> None:
    body = client.get(ATTRIBUTES, headers={**TOWN, **link(PARKING)}).json()
    assert body["id"].startswith("urn:ngsi-ld:AttributeList:")
    assert body["type"] == "AttributeList"
    assert sorted(body["attributeList"]) == sorted(
        ["location", "status", "name", "refParkingSite", SDM_WASTE + "fillingLevel"]
    )


def test_attributes_in_detail_count_instances_and_holders(client: TestClient) -> None:
    response = client.get(ATTRIBUTES, headers={**TOWN, **link(WASTE)}, params={"details": "true"})
    by_name = {item["attributeName"]: item for item in response.json()}
    assert by_name["status"] == {
        "id": "https://uri.etsi.org/ngsi-ld/status",
        "type": "Attribute",
        "attributeName": "status",
        "attributeCount": 5,
        "attributeTypes": ["Property", "Relationship"],
        "typeNames": [SDM_PARKING + "ParkingSpot", "WasteContainer", "Robot"],
    }
    assert by_name["location"]["attributeTypes"] == ["GeoProperty"]
    assert by_name["fillingLevel"]["attributeCount"] == 1


def test_one_attribute_described(client: TestClient) -> None:
    response = client.get(f"{ATTRIBUTES}/refParkingSite", headers={**TOWN, **link(PARKING)})
    assert response.status_code == 200
    assert response.json() == {
        "id": SDM_PARKING + "refParkingSite",
        "type": "Attribute",
        "attributeName": "refParkingSite",
        "attributeCount": 1,
        "attributeTypes": ["Relationship"],
        "typeNames": ["ParkingSpot"],
    }
    accept_ld = client.get(
        f"{ATTRIBUTES}/{SDM_WASTE}fillingLevel", headers={**TOWN, "Accept": "application/ld+json"}
    )
    assert accept_ld.json()["@context"] == CORE


def test_tenants_are_apart_and_unknown_tenants_are_404(client: TestClient) -> None:
    assert client.get(TYPES).json()["typeList"] == []
    assert client.get(ATTRIBUTES).json()["attributeList"] == []
    assert client.get(TYPES, params={"details": "true"}).json() == []
    for path in (TYPES, f"{TYPES}/Robot", ATTRIBUTES, f"{ATTRIBUTES}/status"):
        assert_problem(client.get(path, headers=new_tenant()), 404, "NonexistentTenant")


def test_bad_parameters_and_media_types(client: TestClient) -> None:
    response = client.get(TYPES, params={"details": "yes"}, headers=TOWN)
    assert_problem(response, 400, "BadRequestData")
    assert client.get(TYPES, headers={"Accept": "application/geo+json"}).status_code == 406
    assert client.get(ATTRIBUTES, headers={"Accept": "text/csv"}).status_code == 406
