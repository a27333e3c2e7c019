"""The device registry API: profiles, registration, the Device entity and its links, API keys,
and bad registrations refused with nothing stored."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.device_checks import (
    DEVICE_CTX,
    DEVICES,
    ENVIRONMENT,
    device_app,
    empty,
    entity,
    register,
    sdm_link,
)
from tests.api.entity_checks import BACKENDS, ManualClock, assert_problem, backend_database


@pytest.fixture(scope="module", params=BACKENDS)
def app(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, ManualClock]]:
    """One app for the module, on each backend."""
    url = backend_database(request)
    flags = {"db": url} if url else {}
    yield from device_app(tmp_path_factory.mktemp("devices"), **flags)


@pytest.fixture
def client(app: tuple[TestClient, ManualClock]) -> Iterator[TestClient]:
    yield app[0]
    empty(app[0])
    empty(app[0], "fundao")


def test_profiles_cover_the_common_sensor_kinds(client: TestClient) -> None:
    profiles = {p["name"]: p for p in client.get(f"{DEVICES}/profiles").json()}
    assert set(profiles) == {
        "air-quality",
        "noise",
        "parking",
        "waste-fill",
        "soil-moisture",
        "weather",
        "energy-meter",
        "classroom",
    }
    classroom = profiles["classroom"]
    assert classroom["entityType"] == "IndoorEnvironmentObserved"
    assert [m["measurement"] for m in classroom["mapping"]] == ["co2", "temperature", "humidity"]
    assert client.get(f"{DEVICES}/decoders").json()[:2] == ["cayenne-lpp", "json"]


def test_picking_a_profile_fills_the_mapping(client: TestClient) -> None:
    created = register(
        client,
        {
            "id": "class-5b",
            "name": "Sala 5B",
            "profile": "classroom",
            "location": {"latitude": 40.14, "longitude": -7.50},
            "staticAttributes": {"name": "Escola Secundária, sala 5B"},
        },
    )
    assert created["entityId"] == "urn:ngsi-ld:IndoorEnvironmentObserved:class-5b"
    assert created["entityType"] == "IndoorEnvironmentObserved"
    assert created["interval"] == 300
    assert created["mapping"][0] == {
        "measurement": "co2",
        "attribute": "co2",
        "unitCode": "59",
        "scale": 1.0,
        "offset": 0.0,
    }
    assert created["status"]["state"] == "unknown"
    assert created["apiKey"].startswith("bgk_")
    shown = client.get(f"{DEVICES}/class-5b").json()
    assert "apiKey" not in shown and "key" not in str(shown).lower().replace("apikey", "")
    assert shown["name"] == "Sala 5B"
    assert [d["id"] for d in client.get(DEVICES).json()] == ["class-5b"]


def test_each_device_is_a_device_entity_linked_to_its_target(client: TestClient) -> None:
    register(
        client,
        {
            "id": "aq-praca",
            "profile": "air-quality",
            "protocol": "lorawan",
            "devEUI": "70b3d57ed0041234",
            "location": {"type": "Point", "coordinates": [-7.5, 40.14]},
            "staticAttributes": {"name": "Praça do Município"},
        },
    )
    device = entity(client, "urn:ngsi-ld:Device:aq-praca", DEVICE_CTX)
    assert device["type"] == "Device"
    assert device["controlledAsset"] == {
        "type": "Relationship",
        "object": "urn:ngsi-ld:AirQualityObserved:aq-praca",
    }
    assert device["controlledProperty"]["value"] == [
        "pm25", "pm10", "NO2", "O3", "temperature", "relativeHumidity",
    ]  # fmt: skip
    assert device["supportedProtocol"]["value"] == ["lorawan"]
    assert device["serialNumber"]["value"] == "70B3D57ED0041234"
    assert device["deviceState"]["value"] == "unknown"
    target = entity(client, "urn:ngsi-ld:AirQualityObserved:aq-praca", ENVIRONMENT)
    assert target["type"] == "AirQualityObserved"
    assert target["refDevice"] == {"type": "Relationship", "object": "urn:ngsi-ld:Device:aq-praca"}
    assert target["name"]["value"] == "Praça do Município"
    assert target["location"]["value"] == {"type": "Point", "coordinates": [-7.5, 40.14]}


def test_an_existing_target_entity_is_linked_not_replaced(client: TestClient) -> None:
    existing = {
        "id": "urn:ngsi-ld:WasteContainer:ilha-3",
        "type": "WasteContainer",
        "binCapacity": {"type": "Property", "value": 800},
    }
    wm = (
        "https://raw.githubusercontent.com/smart-data-models/"
        "dataModel.WasteManagement/master/context.jsonld"
    )
    assert (
        client.post("/ngsi-ld/v1/entities", json=existing, headers=sdm_link(wm)).status_code == 201
    )
    register(
        client,
        {"id": "fill-3", "profile": "waste-fill", "entityId": "urn:ngsi-ld:WasteContainer:ilha-3"},
    )
    target = entity(client, "urn:ngsi-ld:WasteContainer:ilha-3", wm)
    assert target["refDevice"]["object"] == "urn:ngsi-ld:Device:fill-3"
    assert target["type"] == "WasteContainer"
    assert target["binCapacity"]["value"] == 800


def test_removing_a_device_keeps_its_data_and_drops_its_device_entity(client: TestClient) -> None:
    created = register(client, {"id": "n-1", "profile": "noise"})
    key = created["apiKey"]
    posted = client.post(
        f"{DEVICES}/n-1/measurements", json={"laeq": 61.2}, headers={"X-Api-Key": key}
    )
    assert posted.status_code == 202
    assert client.delete(f"{DEVICES}/n-1").status_code == 204
    assert client.get(f"{DEVICES}/n-1").status_code == 404
    assert client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Device:n-1").status_code == 404
    target = entity(client, "urn:ngsi-ld:NoiseLevelObserved:n-1")
    assert target["LAeq"]["value"] == 61.2
    assert "refDevice" not in target
    assert_problem(client.delete(f"{DEVICES}/n-1"), 404, "ResourceNotFound")


def test_devices_are_kept_per_tenant(client: TestClient) -> None:
    register(client, {"id": "w-1", "profile": "weather"}, **{"NGSILD-Tenant": "fundao"})
    assert client.get(DEVICES).json() == []
    assert [d["id"] for d in client.get(DEVICES, headers={"NGSILD-Tenant": "fundao"}).json()] == [
        "w-1"
    ]
    assert client.get(f"{DEVICES}/w-1").status_code == 404


def test_a_taken_id_or_dev_eui_is_refused(client: TestClient) -> None:
    register(
        client,
        {"id": "p-1", "profile": "parking", "protocol": "lorawan", "devEUI": "0101010101010101"},
    )
    again = client.post(DEVICES, json={"id": "p-1", "profile": "parking"})
    assert "id p-1" in assert_problem(again, 409, "AlreadyExists")["detail"]
    same_eui = client.post(
        DEVICES,
        json={
            "id": "p-2",
            "profile": "parking",
            "protocol": "lorawan",
            "devEUI": "0101010101010101",
        },
    )
    assert "DevEUI 0101010101010101" in assert_problem(same_eui, 409, "AlreadyExists")["detail"]
    assert [d["id"] for d in client.get(DEVICES).json()] == ["p-1"]
    assert client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Device:p-2").status_code == 404


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"id": "x", "profile": "toaster"}, "Unknown profile 'toaster'; profiles: air-quality"),
        ({"id": "x"}, "needs an entityType"),
        ({"id": "x", "entityType": "Room"}, "needs a mapping"),
        ({"id": "bad id!", "profile": "noise"}, "id: Value error, up to 64 letters"),
        ({"id": "x", "profile": "noise", "protocol": "lorawan"}, "LoRaWAN device needs its devEUI"),
        ({"id": "x", "profile": "noise", "devEUI": "12"}, "DevEUI must be 16 hexadecimal digits"),
        ({"id": "x", "profile": "noise", "decoder": "morse"}, "Unknown decoder 'morse'"),
        ({"id": "x", "profile": "noise", "interval": 1}, "interval: Input should be greater"),
        ({"id": "x", "profile": "noise", "colour": "red"}, "colour: Extra inputs"),
        ({"id": "x", "profile": "noise", "entityId": "not a uri"}, "entityId must be a URI"),
        (
            {"id": "x", "profile": "noise", "location": {"latitude": 91, "longitude": 0}},
            "out of range",
        ),
        (
            {"id": "x", "entityType": "Room", "mapping": [{"measurement": "t", "attribute": "id"}]},
            "'id' is reserved",
        ),
        (
            {
                "id": "x",
                "entityType": "Room",
                "mapping": [
                    {"measurement": "t", "attribute": "a"},
                    {"measurement": "t", "attribute": "b"},
                ],
            },
            "distinct measurements",
        ),
        ([{"id": "x"}], "A device must be a JSON object"),
    ],
)
def test_bad_registrations_are_refused_and_store_nothing(
    client: TestClient, body: Any, detail: str
) -> None:
    problem = assert_problem(client.post(DEVICES, json=body), 400, "BadRequestData")
    assert detail in problem["detail"]
    assert client.get(DEVICES).json() == []
    assert client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Device:x").status_code == 404


def test_a_registration_that_is_not_json_is_refused(client: TestClient) -> None:
    response = client.post(DEVICES, content=b"{id", headers={"Content-Type": "application/json"})
    assert_problem(response, 400, "InvalidRequest")
    response = client.post(DEVICES, content=b"id=x", headers={"Content-Type": "text/plain"})
    assert_problem(response, 415, "UnsupportedMediaType")
