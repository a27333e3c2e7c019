"""A batch create shows a user exactly what creating the same entities one by one shows: each
entity, its history (raw and aggregated), queries with q and geo filters, types and attributes.

On SQLite a batch of plain entities has its history and index rows written by SQL from the
stored documents (store/sqlite/plain.py); one by one, each entity goes through the Python hooks.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.entity_checks import BASE, Broker, running_broker

OPS = "/ngsi-ld/v1/entityOperations"
TEMPORAL = "/ngsi-ld/v1/temporal/entities"
OBSERVED = ("2024-05-01T07:10:00Z", "2024-05-01T06:59:59.999Z", "2024-04-30T23:00:00.5Z")


def air_quality(number: int) -> dict[str, Any]:
    """An AirQualityObserved (Smart Data Models, normalized), values varying with ``number``."""
    observed = OBSERVED[number % 3]
    return {
        "id": f"urn:ngsi-ld:AirQualityObserved:eq:{number}",
        "type": "AirQualityObserved",
        "no2": {"type": "Property", "value": 40 + number % 50, "unitCode": "GQ",
                "observedAt": observed},
        "pm10": {"type": "Property", "value": 12.5 + number / 7, "unitCode": "GQ",
                 "observedAt": observed},
        "temperature": {"type": "Property", "value": -3.25 + number % 30, "unitCode": "CEL"},
        "relativeHumidity": {"type": "Property", "value": 0.54},
        "airQualityLevel": {"type": "Property", "value": ["good", "moderate"][number % 2]},
        "reliable": {"type": "Property", "value": number % 4 == 0},
        "dateObserved": {"type": "Property",
                         "value": {"@type": "DateTime", "@value": "2024-05-01T07:00:00Z"}},
        "location": {"type": "GeoProperty", "value": {
            "type": "Point", "coordinates": [-7.5 + number / 1e4, 40.1 + number / 3e4]}},
        "refDevice": {"type": "Relationship", "object": f"urn:ngsi-ld:Device:aq-{number}"},
    }  # fmt: skip


def parking_spot(number: int) -> dict[str, Any]:
    """A ParkingSpot, some with two instances of their status (datasetIds)."""
    spot: dict[str, Any] = {
        "id": f"urn:ngsi-ld:ParkingSpot:eq:{number}",
        "type": "ParkingSpot",
        "name": {"type": "Property", "value": f"A-{number} \"ção\"\n"},
        "status": {"type": "Property", "value": ["free", "occupied"][number % 2],
                   "observedAt": OBSERVED[number % 3]},
        "category": {"type": "Property", "value": ["onStreet", 3, 2.5, True]},
        "location": {"type": "GeoProperty", "value": {
            "type": "Point", "coordinates": [-7.5 + number / 1e4, 40.14, 510]}},
    }  # fmt: skip
    if number % 5 == 0:
        spot["status"] = [
            spot["status"],
            {"type": "Property", "value": "reserved", "datasetId": "urn:ngsi-ld:Dataset:app"},
        ]
    return spot


def waste_container(number: int) -> dict[str, Any]:
    """A WasteContainer; some carry an attribute the batch leaves to the Python hooks."""
    container: dict[str, Any] = {
        "id": f"urn:ngsi-ld:WasteContainer:eq:{number}",
        "type": "WasteContainer",
        "fillingLevel": {"type": "Property", "value": (number % 100) / 100,
                         "observedAt": OBSERVED[number % 3]},
        "wasteType": {"type": "Property", "value": ["organic"]},
        "location": {"type": "GeoProperty", "value": {
            "type": "Point", "coordinates": [-7.49 + number / 1e4, 40.13]}},
    }  # fmt: skip
    if number % 40 == 2:
        container["fillingLevel"]["accuracy"] = {"type": "Property", "value": 0.05}
    if number % 60 == 5:
        container["description"] = {"type": "LanguageProperty", "languageMap": {"en": "bin"}}
    return container


def town(count: int) -> list[dict[str, Any]]:
    """``count`` entities of the three models in turn."""
    models = (air_quality, parking_spot, waste_container)
    return [models[n % 3](n) for n in range(count)]


ENTITIES = town(240)

QUERIES = [
    {"type": "AirQualityObserved", "q": "no2>60;airQualityLevel==\"moderate\"", "limit": "100"},
    {"type": "AirQualityObserved", "q": "temperature<0|reliable==true", "limit": "100"},
    {"type": "ParkingSpot", "q": "status==\"free\",\"reserved\"", "limit": "100"},
    {"type": "ParkingSpot", "q": "category==\"onStreet\";category==2.5", "count": "true"},
    {"type": "WasteContainer", "q": "fillingLevel>=0.5", "limit": "100", "count": "true"},
    {"q": "refDevice==\"urn:ngsi-ld:Device:aq-3\""},
    {"q": "name~=\"ção\"", "limit": "100"},
    {"type": "AirQualityObserved,WasteContainer", "q": "description", "limit": "100"},
    {"type": "ParkingSpot,WasteContainer", "georel": "near;maxDistance==500",
     "geometry": "Point", "coordinates": "[-7.488,40.132]", "limit": "100"},
    {"type": "AirQualityObserved", "georel": "within", "geometry": "Polygon",
     "coordinates": "[[[-7.6,40],[-7.48,40],[-7.48,40.2],[-7.6,40.2],[-7.6,40]]]",
     "limit": "100", "options": "sysAttrs"},
]  # fmt: skip


@pytest.fixture(scope="module")
def brokers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Broker, Broker]]:
    """Two brokers on SQLite with the same entities: created in batches, and one by one."""
    with (
        running_broker(Path(tmp_path_factory.mktemp("batched"))) as batched,
        running_broker(Path(tmp_path_factory.mktemp("single"))) as single,
    ):
        for start in range(0, len(ENTITIES), 120):
            response = batched.client.post(f"{OPS}/create", json=ENTITIES[start : start + 120])
            assert response.status_code == 201, response.text
        for entity in ENTITIES:
            response = single.client.post(BASE, json=entity)
            assert response.status_code == 201, response.text
        yield batched, single


def both(brokers: tuple[Broker, Broker], path: str, **params: str) -> Any:
    """The JSON answer of both brokers to one GET, checked equal."""
    answers = []
    for broker in brokers:
        response = broker.client.get(path, params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        if isinstance(body, dict) and body.get("type") in ("EntityTypeList", "AttributeList"):
            body.pop("id")  # a new id on every answer
        answers.append((body, response.headers.get("NGSILD-Results-Count")))
    assert answers[0] == answers[1]
    return answers[0][0]


@pytest.mark.parametrize("number", [0, 1, 2, 3, 4, 5, 10, 12, 100, 239])
def test_each_entity_reads_the_same(brokers: tuple[Broker, Broker], number: int) -> None:
    entity_id = ENTITIES[number]["id"]
    body = both(brokers, f"{BASE}/{entity_id}", options="sysAttrs")
    assert body["id"] == entity_id
    both(brokers, f"{BASE}/{entity_id}", options="keyValues")


@pytest.mark.parametrize("number", [0, 1, 2, 3, 4, 5, 10, 12, 100, 239])
def test_each_entity_has_the_same_history(brokers: tuple[Broker, Broker], number: int) -> None:
    entity_id = ENTITIES[number]["id"]
    raw = both(brokers, f"{TEMPORAL}/{entity_id}")
    assert len(raw) > 3
    both(brokers, f"{TEMPORAL}/{entity_id}", options="temporalValues")
    both(brokers, f"{TEMPORAL}/{entity_id}", timerel="after", timeAt="2024-05-01T07:00:00Z")


def test_aggregated_history_is_the_same(brokers: tuple[Broker, Broker]) -> None:
    for period in ("PT1H", "P1D"):
        body = both(
            brokers,
            TEMPORAL,
            type="AirQualityObserved,WasteContainer",
            format="aggregatedValues",
            aggrMethods="avg,min,max,sum,sumsq,totalCount",
            aggrPeriodDuration=period,
            timerel="after",
            timeAt="2024-04-30T00:00:00Z",
            limit="100",
        )
        assert len(body) == 100
        assert body[0]["no2"]["avg"]


@pytest.mark.parametrize("params", QUERIES, ids=[str(i) for i in range(len(QUERIES))])
def test_queries_answer_the_same(brokers: tuple[Broker, Broker], params: dict[str, str]) -> None:
    body = both(brokers, BASE, **params)
    assert body, "every query of the test matches some entities"


def test_types_and_attributes_are_the_same(brokers: tuple[Broker, Broker]) -> None:
    assert len(both(brokers, "/ngsi-ld/v1/types")["typeList"]) == 3
    both(brokers, "/ngsi-ld/v1/types", details="true")
    both(brokers, "/ngsi-ld/v1/types/ParkingSpot")
    assert both(brokers, "/ngsi-ld/v1/attributes")["attributeList"]
    both(brokers, "/ngsi-ld/v1/attributes", details="true")
    both(brokers, "/ngsi-ld/v1/attributes/fillingLevel")


def test_a_client_error_in_the_batch_spoils_nothing(brokers: tuple[Broker, Broker]) -> None:
    batched, _ = brokers
    client: TestClient = batched.client
    good = air_quality(1000)
    bad = {**air_quality(1001), "no2": {"type": "Property", "value": None}}
    response = client.post(f"{OPS}/create", json=[good, bad, ENTITIES[0]])
    assert response.status_code == 207
    body = response.json()
    assert body["success"] == [good["id"]]
    assert {e["entityId"] for e in body["errors"]} == {bad["id"], ENTITIES[0]["id"]}
    history = client.get(f"{TEMPORAL}/{good['id']}").json()
    assert history["no2"][0]["value"] == good["no2"]["value"]
    assert client.get(f"{TEMPORAL}/{bad['id']}").status_code == 404
