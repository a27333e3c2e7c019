"""Helpers of the device API tests: one app per module on a manual clock, emptied between tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from burgo.app import create_app
from burgo.config import load_settings
from tests.api.entity_checks import START, ManualClock

DEVICES = "/api/v1/devices"
TTS_SECRET = "tts-secret-for-tests"
CHIRPSTACK_SECRET = "chirpstack-secret-for-tests"
ENVIRONMENT = "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/context.jsonld"
DEVICE_CTX = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Device/master/context.jsonld"
)


def sdm_link(url: str) -> dict[str, str]:
    """A Link header naming a Smart Data Models @context (Burgo ships a copy)."""
    return {"Link": f'<{url}>; rel="http://www.w3.org/ns/json-ld#context"'}


def device_app(workdir: Path, **flags: Any) -> Iterator[tuple[TestClient, ManualClock]]:
    """A running app with both LoRaWAN integrations on, on a manual clock."""
    settings = load_settings(
        flags={
            "db": str(workdir / "burgo.db"),
            "sqlite_synchronous": "NORMAL",
            "lorawan_tts_secret": TTS_SECRET,
            "lorawan_chirpstack_secret": CHIRPSTACK_SECRET,
            **flags,
        },
        environ={},
        config_path=None,
    )
    clock = ManualClock(START)
    with TestClient(create_app(settings, clock=clock)) as client:
        yield client, clock


def empty(client: TestClient, tenant: str | None = None) -> None:
    """Remove every device (and the entities they fed) so the next test starts clean."""
    headers = {"NGSILD-Tenant": tenant} if tenant else {}
    for device in client.get(DEVICES, headers=headers).json():
        client.delete(f"{DEVICES}/{device['id']}", headers=headers)
        client.delete(f"/ngsi-ld/v1/entities/{device['entityId']}", headers=headers)


def register(client: TestClient, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    """Register a device and return the answer (with its apiKey)."""
    response = client.post(DEVICES, json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def entity(client: TestClient, entity_id: str, context: str = ENVIRONMENT) -> dict[str, Any]:
    """An entity as the NGSI-LD API returns it, compacted with a Smart Data Models @context."""
    response = client.get(f"/ngsi-ld/v1/entities/{entity_id}", headers=sdm_link(context))
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def status(client: TestClient, device_id: str) -> dict[str, Any]:
    """The device's status as the API shows it."""
    response = client.get(f"{DEVICES}/{device_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()["status"]
    return found
