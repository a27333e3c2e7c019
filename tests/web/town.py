"""A small town for the dashboard tests, seeded through the public API only: devices registered
and fed over HTTP (with a day of readings), plain NGSI-LD entities, and a second tenant."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.conftest import DATA

SCHOOL_TENANT = "escola-lab"
TTS_SECRET = "town-tts-secret"
CHIRPSTACK_SECRET = "town-chirpstack-secret"
LORAWAN_DEVICE = "eco-17"
CENTRE = (-7.5003, 40.1372)  # Fundão


@dataclass
class Town:
    """What was seeded: located things by id (with their vertical), devices, the CO2 history."""

    located: dict[str, str] = field(default_factory=dict)
    unlocated: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    classroom: str = ""
    co2: list[tuple[str, float]] = field(default_factory=list)
    school_tenant_things: list[str] = field(default_factory=list)


# (device id, name, profile, vertical, offset east, offset north, latest reading)
# fmt: off
DEVICES: list[tuple[str, str, str, str, float, float, dict[str, Any]]] = [
    ("ar-centro", "Ar: Praça do Município", "air-quality", "city", 0.0, 0.0,
     {"pm25": 8.5, "pm10": 17.0, "no2": 21.0, "o3": 60.0, "temperature": 12.5, "humidity": 70}),
    ("ruido-av", "Ruído: Avenida da Liberdade", "noise", "city", 0.003, 0.002,
     {"laeq": 58.2, "lamax": 71.0, "las": 55.0}),
    ("parque-7", "Estacionamento 7", "parking", "city", -0.002, 0.001, {"status": "occupied"}),
    ("eco-17", "Ecoponto 17", "waste-fill", "city", 0.001, -0.003, {"fill": 95, "temperature": 9}),
    ("solo-cereja", "Sonda: Pomar de cerejas", "soil-moisture", "agro", 0.03, 0.02,
     {"moisture": 9, "soil_temperature": 11.0, "conductivity": 0.4}),
    ("meteo-quinta", "Meteo: Quinta do Souto", "weather", "agro", 0.035, 0.025,
     {"temperature": 11.0, "humidity": 80, "pressure": 1012, "wind_speed": 2.5, "rain": 0.0}),
    ("energia-hub", "Energia: Business Hub", "energy-meter", "enterprise", -0.004, -0.002,
     {"energy": 15234.5, "power_factor": 0.93}),
    ("sala-5b", "Escola Secundária, sala 5B", "classroom", "education", 0.002, 0.004,
     {"co2": 1720, "temperature": 22.5, "humidity": 55, "battery": 87}),
]
# fmt: on


def _reg(client: httpx.Client, tenant: str, device: dict[str, Any]) -> str:
    headers = {"NGSILD-Tenant": tenant} if tenant else {}
    answer = client.post("/api/v1/devices", json=device, headers=headers)
    assert answer.status_code == 201, answer.text
    key: str = answer.json()["apiKey"]
    return key


def _send(client: httpx.Client, tenant: str, device_id: str, key: str, body: Any) -> None:
    headers = {"X-Api-Key": key, **({"NGSILD-Tenant": tenant} if tenant else {})}
    answer = client.post(f"/api/v1/devices/{device_id}/measurements", json=body, headers=headers)
    assert answer.status_code == 202, answer.text


def _uplink(client: httpx.Client, reading: dict[str, Any], at: str) -> None:
    """A recorded The Things Stack uplink, carrying ``reading`` from the LoRaWAN device."""
    body = json.loads((DATA / "lorawan" / "tts-v3-uplink-example.json").read_text())
    body["end_device_ids"]["device_id"] = LORAWAN_DEVICE
    body["received_at"] = body["uplink_message"]["received_at"] = at
    body["uplink_message"]["decoded_payload"] = reading
    answer = client.post("/api/v1/lorawan/tts", json=body, headers={"X-Burgo-Secret": TTS_SECRET})
    assert answer.status_code == 202, answer.text


def seed_town(client: httpx.Client, now: datetime | None = None) -> Town:
    """Register and feed the town's devices (one over LoRaWAN, through The Things Stack webhook
    with secret ``TTS_SECRET``), add a street light and a care kit, and a school tenant; every
    reading is timed in the last day before ``now``."""
    now = now or datetime.now(UTC)
    town = Town()
    for device_id, name, profile, vertical, east, north, latest in DEVICES:
        location = {"type": "Point", "coordinates": [CENTRE[0] + east, CENTRE[1] + north]}
        registration = {
            "id": device_id,
            "name": name,
            "profile": profile,
            "protocol": "http",
            "location": location,
        }
        if device_id == LORAWAN_DEVICE:
            registration.update(protocol="lorawan", devEUI="0004A30B001C0530")
        key = _reg(client, "", registration)
        entity_id = client.get(f"/api/v1/devices/{device_id}").json()["entityId"]
        town.located[entity_id] = vertical
        town.devices.append(device_id)
        readings = []
        if profile == "classroom":
            town.classroom = entity_id
            for step in range(24, 0, -1):
                at = (now - timedelta(hours=step)).strftime("%Y-%m-%dT%H:%M:%SZ")
                co2 = 450.0 + 40 * ((24 - step) % 9)
                readings.append({"co2": co2, "temperature": 21.0, "humidity": 50, "observedAt": at})
                town.co2.append((at, co2))
        latest_at = (now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
        readings.append({**latest, "observedAt": latest_at})
        if profile == "classroom":
            town.co2.append((latest_at, float(latest["co2"])))
        if device_id == LORAWAN_DEVICE:
            _uplink(client, latest, latest_at)
        else:
            _send(client, "", device_id, key, readings)
    stamp = (now - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    lamp = {
        "id": "urn:ngsi-ld:Streetlight:rua-direita-3",
        "type": "Streetlight",
        "name": {"type": "Property", "value": "Candeeiro Rua Direita 3"},
        "status": {"type": "Property", "value": "defectiveLamp", "observedAt": stamp},
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [CENTRE[0] - 0.001, CENTRE[1]]},
        },
    }
    care = {
        "id": "urn:ngsi-ld:IndoorEnvironmentObserved:care-home-a7f3",
        "type": "IndoorEnvironmentObserved",
        "temperature": {"type": "Property", "value": 19.5, "unitCode": "CEL", "observedAt": stamp},
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [CENTRE[0] + 0.006, CENTRE[1]]},
        },
    }
    unplaced = {
        "id": "urn:ngsi-ld:WeatherForecast:fundao",
        "type": "WeatherForecast",
        "temperature": {"type": "Property", "value": 14, "observedAt": stamp},
    }
    for body in (lamp, care, unplaced):
        answer = client.post("/ngsi-ld/v1/entities", json=body)
        assert answer.status_code == 201, answer.text
    town.located[lamp["id"]] = "city"
    town.located[care["id"]] = "care"
    town.unlocated.append(unplaced["id"])
    key = _reg(
        client,
        SCHOOL_TENANT,
        {
            "id": "kit-1",
            "name": "Kit de aula 1",
            "profile": "classroom",
            "protocol": "http",
            "location": {"latitude": 40.14, "longitude": -7.49},
        },
    )
    _send(client, SCHOOL_TENANT, "kit-1", key, {"co2": 600, "temperature": 20, "humidity": 45})
    town.school_tenant_things.append("urn:ngsi-ld:IndoorEnvironmentObserved:kit-1")
    return town
