"""Temporal provision: importing historic instances, adding to them, deleting and correcting
them; and refusing bad input without changing what is stored."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.api.entity_checks import (
    BACKENDS,
    START,
    Broker,
    assert_problem,
    backend_database,
    running_broker,
)

TEMPORAL = "/ngsi-ld/v1/temporal/entities"
ENTITIES = "/ngsi-ld/v1/entities"
DATASET = "urn:ngsi-ld:Dataset:backup"


@pytest.fixture(scope="module", params=BACKENDS)
def broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Broker]:
    """One broker for the module."""
    directory: Path = tmp_path_factory.mktemp("provision")
    with running_broker(directory, db=backend_database(request)) as running:
        yield running


def week(entity_id: str, hours: int = 3, dataset_id: str | None = None) -> dict[str, Any]:
    """A temporal entity with hourly soil moisture readings."""
    instances = []
    for hour in range(hours):
        instance: dict[str, Any] = {
            "type": "Property", "value": 30 + hour, "unitCode": "P1",
            "observedAt": f"2024-04-01T{hour:02d}:00:00Z",
        }  # fmt: skip
        if dataset_id:
            instance["datasetId"] = dataset_id
        instances.append(instance)
    return {"id": entity_id, "type": "SoilProbe", "soilMoisture": instances}


def values(broker: Broker, entity_id: str, **params: Any) -> list[Any]:
    """The recorded soil moisture values of an entity, oldest first."""
    response = broker.client.get(f"{TEMPORAL}/{entity_id}", params=params)
    assert response.status_code == 200, response.text
    return [i["value"] for i in response.json().get("soilMoisture", [])]


def test_import_creates_then_adds_and_is_idempotent(broker: Broker) -> None:
    client = broker.client
    entity_id = "urn:ngsi-ld:SoilProbe:import"
    created = client.post(TEMPORAL, json=week(entity_id))
    assert created.status_code == 201, created.text
    assert created.headers["Location"] == f"{TEMPORAL}/{entity_id}"
    assert values(broker, entity_id) == [30, 31, 32]
    again = client.post(TEMPORAL, json=week(entity_id, hours=4))
    assert again.status_code == 204
    assert values(broker, entity_id) == [30, 31, 32, 33]
    # Imported history does not create a current entity.
    assert client.get(f"{ENTITIES}/{entity_id}").status_code == 404
    aggregated = client.get(f"{TEMPORAL}/{entity_id}", params={
        "options": "aggregatedValues", "aggrMethods": "sum,max", "aggrPeriodDuration": "P1D",
        "timerel": "after", "timeAt": "2024-04-01T00:00:00Z"})  # fmt: skip
    assert aggregated.json()["soilMoisture"]["sum"] == [
        [126.0, "2024-04-01T00:00:00.000Z", "2024-04-02T00:00:00.000Z"]
    ]


def test_add_attrs_needs_an_entity_with_history(broker: Broker) -> None:
    client = broker.client
    entity_id = "urn:ngsi-ld:SoilProbe:attrs"
    client.post(TEMPORAL, json=week(entity_id, hours=1))
    more = {"soilMoisture": {"type": "Property", "value": 99, "observedAt": "2024-04-02T00:00:00Z"}}
    assert client.post(f"{TEMPORAL}/{entity_id}/attrs", json=more).status_code == 204
    assert values(broker, entity_id) == [30, 99]
    missing = client.post(f"{TEMPORAL}/urn:ngsi-ld:SoilProbe:none/attrs", json=more)
    assert_problem(missing, 404, "ResourceNotFound")


@pytest.mark.parametrize(
    "body",
    [
        {"type": "SoilProbe", "soilMoisture": []},
        {"id": "not a uri", "type": "SoilProbe"},
        {"id": "urn:ngsi-ld:SoilProbe:bad", "soilMoisture": []},
        {"id": "urn:ngsi-ld:SoilProbe:bad", "type": "SoilProbe",
         "soilMoisture": [{"type": "Property", "value": 1}]},
        {"id": "urn:ngsi-ld:SoilProbe:bad", "type": "SoilProbe",
         "soilMoisture": [{"type": "Property", "value": 1, "observedAt": "noon"}]},
        {"id": "urn:ngsi-ld:SoilProbe:bad", "type": "SoilProbe", "soilMoisture": [3]},
        {"id": "urn:ngsi-ld:SoilProbe:bad", "type": "SoilProbe", "soilMoisture": []},
    ],
)  # fmt: skip
def test_bad_imports_change_nothing(broker: Broker, body: dict[str, Any]) -> None:
    response = broker.client.post(TEMPORAL, json=body)
    assert_problem(response, 400, "BadRequestData")
    assert broker.client.get(f"{TEMPORAL}/urn:ngsi-ld:SoilProbe:bad").status_code == 404


def test_a_half_bad_import_stores_nothing(broker: Broker) -> None:
    body = week("urn:ngsi-ld:SoilProbe:half")
    body["soilMoisture"].append({"type": "Property", "value": 1})
    assert_problem(broker.client.post(TEMPORAL, json=body), 400, "BadRequestData")
    assert broker.client.get(f"{TEMPORAL}/urn:ngsi-ld:SoilProbe:half").status_code == 404


def test_delete_an_attribute_by_dataset_id_or_all(broker: Broker) -> None:
    client = broker.client
    entity_id = "urn:ngsi-ld:SoilProbe:delattr"
    client.post(TEMPORAL, json=week(entity_id, hours=2))
    client.post(TEMPORAL, json=week(entity_id, hours=1, dataset_id=DATASET))
    url = f"{TEMPORAL}/{entity_id}/attrs/soilMoisture"
    assert client.delete(url, params={"datasetId": DATASET}).status_code == 204
    assert values(broker, entity_id) == [30, 31]
    assert_problem(client.delete(url, params={"datasetId": DATASET}), 404, "ResourceNotFound")
    bad = client.delete(url, params={"datasetId": DATASET, "deleteAll": "true"})
    assert_problem(bad, 400, "BadRequestData")
    assert_problem(client.delete(url, params={"deleteAll": "maybe"}), 400, "BadRequestData")
    assert client.delete(url, params={"deleteAll": "true"}).status_code == 204
    assert values(broker, entity_id) == []
    assert_problem(client.delete(f"{TEMPORAL}/{entity_id}/attrs/id"), 400, "BadRequestData")


def test_delete_an_entity_history(broker: Broker) -> None:
    client = broker.client
    entity_id = "urn:ngsi-ld:SoilProbe:delete"
    client.post(TEMPORAL, json=week(entity_id))
    assert client.delete(f"{TEMPORAL}/{entity_id}").status_code == 204
    assert_problem(client.get(f"{TEMPORAL}/{entity_id}"), 404, "ResourceNotFound")
    assert_problem(client.delete(f"{TEMPORAL}/{entity_id}"), 404, "ResourceNotFound")
    assert_problem(client.delete(f"{TEMPORAL}/not-a-uri"), 400, "BadRequestData")


def test_patch_one_instance(broker: Broker) -> None:
    client = broker.client
    entity_id = "urn:ngsi-ld:SoilProbe:patch"
    client.post(TEMPORAL, json=week(entity_id))
    sys_attrs = {"options": "sysAttrs"}
    second = client.get(f"{TEMPORAL}/{entity_id}", params=sys_attrs).json()["soilMoisture"][1]
    url = f"{TEMPORAL}/{entity_id}/attrs/soilMoisture/{second['instanceId']}"
    broker.clock.moment = START + timedelta(hours=1)
    assert client.patch(url, json={"value": 12.5}).status_code == 204
    patched = client.get(f"{TEMPORAL}/{entity_id}", params=sys_attrs).json()["soilMoisture"][1]
    assert patched["value"] == 12.5
    assert patched["unitCode"] == "P1"
    assert patched["instanceId"] == second["instanceId"]
    assert patched["observedAt"] == second["observedAt"]
    assert patched["createdAt"] == second["createdAt"]
    assert patched["modifiedAt"] == "2024-05-01T09:00:00.000Z" != second["modifiedAt"]
    daily = client.get(f"{TEMPORAL}/{entity_id}", params={
        "options": "aggregatedValues", "aggrMethods": "min", "aggrPeriodDuration": "P1D",
        "timerel": "after", "timeAt": "2024-04-01T00:00:00Z"}).json()  # fmt: skip
    assert daily["soilMoisture"]["min"][0][0] == 12.5
    moved = client.patch(url, json={"value": 1, "observedAt": "2024-01-01T00:00:00Z"})
    assert_problem(moved, 400, "BadRequestData")
    unknown = f"{TEMPORAL}/{entity_id}/attrs/soilMoisture/urn:ngsi-ld:Instance:999.1.0"
    assert_problem(client.patch(unknown, json={"value": 1}), 404, "ResourceNotFound")
    other_attr = f"{TEMPORAL}/{entity_id}/attrs/temperature/{second['instanceId']}"
    assert_problem(client.patch(other_attr, json={"value": 1}), 404, "ResourceNotFound")
    assert_problem(client.patch(url, json=[1]), 400, "BadRequestData")
    assert values(broker, entity_id) == [30, 12.5, 32]
