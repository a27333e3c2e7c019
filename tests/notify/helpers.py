"""Shared by the subscription tests: a module-scoped broker with a manual clock, a receiver, and
helpers to subscribe and change entities."""

from __future__ import annotations

import itertools
from typing import Any

from fastapi.testclient import TestClient

from tests.api.entity_checks import Broker

SUBS = "/ngsi-ld/v1/subscriptions"
ENTITIES = "/ngsi-ld/v1/entities"
_names = itertools.count()


def unique_type() -> str:
    """An entity type no other test uses, so subscriptions of different tests never overlap."""
    return f"Kind{next(_names)}"


def subscribe(
    client: TestClient, uri: str, *, headers: dict[str, str] | None = None, **fields: Any
) -> str:
    """Create a subscription (notification fields under ``notification``); its id."""
    notification = {"endpoint": {"uri": uri}, **fields.pop("notification", {})}
    body = {"type": "Subscription", **fields, "notification": notification}
    response = client.post(SUBS, json=body, headers=headers)
    assert response.status_code == 201, response.text
    location: str = response.headers["Location"]
    return location.rsplit("/", 1)[1]


def create(client: TestClient, entity_id: str, type_: str, **attrs: Any) -> None:
    """Create an entity whose attributes are plain Property values."""
    body = {"id": entity_id, "type": type_}
    body.update({k: {"type": "Property", "value": v} for k, v in attrs.items()})
    response = client.post(ENTITIES, json=body)
    assert response.status_code == 201, response.text


def update(client: TestClient, entity_id: str, **attrs: Any) -> None:
    """PATCH attribute values (attrs must exist)."""
    body = {k: {"type": "Property", "value": v} for k, v in attrs.items()}
    response = client.patch(f"{ENTITIES}/{entity_id}/attrs", json=body)
    assert response.status_code == 204, response.text


def status(client: TestClient, sub_id: str, headers: dict[str, str] | None = None) -> Any:
    """The subscription as GET shows it."""
    response = client.get(f"{SUBS}/{sub_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


__all__ = ["Broker", "create", "status", "subscribe", "unique_type", "update"]
