"""Batches of 10,000 Smart Data Models entities: one request, one bad entity among them."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.testclient import TestClient

from tests.api.batch_checks import OPS, PARKING, errors_of, read
from tests.conftest import link

COUNT = 10_000


def spot(number: int) -> dict[str, Any]:
    """A ParkingSpot as the Smart Data Models example has it (normalized)."""
    return {
        "id": f"urn:ngsi-ld:ParkingSpot:fundao:{number}",
        "type": "ParkingSpot",
        "name": {"type": "Property", "value": f"A-{number}"},
        "status": {
            "type": "Property",
            "value": "free" if number % 3 else "occupied",
            "observedAt": "2024-05-01T10:00:00.000Z",
        },
        "category": {"type": "Property", "value": ["onStreet"]},
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [-7.50 + number / 1e5, 40.14]},
        },
        "refParkingSite": {
            "type": "Relationship",
            "object": f"urn:ngsi-ld:OnStreetParking:fundao:{number // 100}",
        },
    }


def test_ten_thousand_entities_in_one_batch(client: TestClient) -> None:
    batch = [spot(n) for n in range(COUNT)]
    batch[4_321] = {**spot(4_321), "status": {"type": "Property"}}
    body = orjson.dumps(batch)
    assert len(body) < client.app.state.services.settings.max_body_bytes  # type: ignore[attr-defined]
    headers = {"Content-Type": "application/json", **link(PARKING)}
    response = client.post(f"{OPS}/create", content=body, headers=headers)
    assert errors_of(response) == {"urn:ngsi-ld:ParkingSpot:fundao:4321": "BadRequestData"}
    assert len(response.json()["success"]) == COUNT - 1
    info = client.get("/ngsi-ld/v1/types/ParkingSpot", headers=link(PARKING)).json()
    assert info["entityCount"] == COUNT - 1

    again = [{**spot(n), "name": f"B-{n}"} for n in (0, 4_321, COUNT - 1)]
    response = client.post(f"{OPS}/upsert", content=orjson.dumps(again), headers=headers)
    assert response.status_code == 201
    assert response.json() == ["urn:ngsi-ld:ParkingSpot:fundao:4321"]
    last = read(client, f"urn:ngsi-ld:ParkingSpot:fundao:{COUNT - 1}", link(PARKING))
    assert last is not None and last["name"]["value"] == f"B-{COUNT - 1}"
