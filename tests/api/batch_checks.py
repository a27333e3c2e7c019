"""Helpers for the batch operation tests: posting batches and reading their results."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from fastapi.testclient import TestClient

from tests.api.entity_checks import BASE, ERRORS

OPS = "/ngsi-ld/v1/entityOperations"
PARKING = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Parking/master/context.jsonld"
)
WASTE = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.WasteManagement/master/"
    "context.jsonld"
)
_tenants = itertools.count()


def new_tenant() -> dict[str, str]:
    """The header of a tenant no other test uses (created by the test's first create)."""
    return {"NGSILD-Tenant": f"batch-{next(_tenants)}"}


def room(number: int, **attrs: Any) -> dict[str, Any]:
    """A Room entity with concise or normalized attributes."""
    return {"id": f"urn:ngsi-ld:Room:{number}", "type": "Room", **attrs}


def post(
    client: TestClient,
    operation: str,
    body: Any,
    headers: Mapping[str, str] | None = None,
    **params: str,
) -> Any:
    """POST a batch as application/json (unless ``headers`` say otherwise)."""
    return client.post(
        f"{OPS}/{operation}",
        json=body,
        headers={"Content-Type": "application/json", **(headers or {})},
        params=params,
    )


def errors_of(response: Any) -> dict[str, str]:
    """A 207's errors as {entity id: problem type}, after checking the result's shape."""
    assert response.status_code == 207, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"success", "errors"}
    found = {}
    for error in body["errors"]:
        assert set(error) == {"entityId", "error"}
        problem = error["error"]
        assert problem["type"].startswith(ERRORS) and problem["title"] and problem["detail"]
        found[error["entityId"]] = problem["type"].removeprefix(ERRORS)
    return found


def read(
    client: TestClient, entity_id: str, headers: Mapping[str, str] | None = None, **params: str
) -> dict[str, Any] | None:
    """The entity (None when it does not exist)."""
    response = client.get(f"{BASE}/{entity_id}", headers=headers, params=params)
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
