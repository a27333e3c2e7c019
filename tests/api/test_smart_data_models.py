"""Every Smart Data Models example in tests/data is created and read back in both JSON-LD styles.

The examples name their @context by raw.githubusercontent.com URLs; Burgo ships those contexts, so
nothing here reaches the internet.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from tests.api.entity_checks import BASE, Broker, running_broker
from tests.conftest import DATA, JSON, LD, link

EXAMPLES = sorted((DATA / "smart-data-models").glob("*/*/example*.jsonld"))
_CORE_URL = re.compile(r"^https://uri\.etsi\.org/ngsi-ld/v1/ngsi-ld-core-context")
_OBSERVED_AT = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z$")


def _load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads(path.read_bytes())
    return document


def _domain_context(example: dict[str, Any]) -> str:
    """The example's own @context URL (the last one that is not the NGSI-LD core context)."""
    context = example["@context"]
    urls = [context] if isinstance(context, str) else context
    return [url for url in urls if not _CORE_URL.match(url)][-1]


def _label(path: Path) -> str:
    return str(path.relative_to(DATA / "smart-data-models"))


def _canonical_times(value: Any) -> Any:
    """The example with each observedAt written as Burgo writes it (milliseconds, Z)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            match = _OBSERVED_AT.match(item) if key == "observedAt" else None
            if match:
                millis = ((match[2] or ".") + "000")[:4]
                item = f"{match[1]}{millis}Z"
            out[key] = _canonical_times(item)
        return out
    if isinstance(value, list):
        return [_canonical_times(item) for item in value]
    return value


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One broker for the module's tests."""
    with running_broker(tmp_path_factory.mktemp("broker")) as shared:
        yield shared


@pytest.fixture(params=EXAMPLES, ids=_label)
def example(request: pytest.FixtureRequest, broker: Broker) -> Iterator[dict[str, Any]]:
    """One example, with the broker emptied of it before and after the test."""
    document = _load(request.param)
    broker.reset((document["id"],))
    yield document
    broker.reset((document["id"],))


# Members the broker does not take from a client: the @context, and system times it sets itself.
_NOT_STORED = ("@context", "createdAt", "modifiedAt")


def _expected(example: dict[str, Any], normalized: bool) -> dict[str, Any]:
    body = {key: value for key, value in example.items() if key not in _NOT_STORED}
    return _canonical_times(body) if normalized else body


def _is_normalized(example: dict[str, Any]) -> bool:
    return all(
        isinstance(value, dict) and "type" in value
        for key, value in example.items()
        if key not in ("id", "type", *_NOT_STORED)
    )


def _retrieve(client: TestClient, example: dict[str, Any]) -> dict[str, Any]:
    normalized = _is_normalized(example)
    params = {} if normalized else {"format": "keyValues"}
    response = client.get(
        f"{BASE}/{example['id']}", params=params, headers=link(_domain_context(example))
    )
    assert response.status_code == 200, response.text
    got: dict[str, Any] = response.json()
    assert got == _expected(example, normalized)
    return got


def test_examples_are_there() -> None:
    assert len(EXAMPLES) >= 20
    assert {p.parent.parent.name for p in EXAMPLES} >= {"Environment", "Parking", "Weather"}


def test_create_as_json_ld(broker: Broker, example: dict[str, Any]) -> None:
    client = broker.client
    response = client.post(BASE, content=orjson.dumps(example), headers=LD)
    assert response.status_code == 201, response.text
    _retrieve(client, example)


def test_create_as_json_with_link(broker: Broker, example: dict[str, Any]) -> None:
    client = broker.client
    body = {key: value for key, value in example.items() if key != "@context"}
    headers = {**JSON, **link(_domain_context(example))}
    response = client.post(BASE, content=orjson.dumps(body), headers=headers)
    assert response.status_code == 201, response.text
    _retrieve(client, example)


def test_retrieve_as_json_ld_names_the_request_context(
    broker: Broker, example: dict[str, Any]
) -> None:
    client = broker.client
    client.post(BASE, content=orjson.dumps(example), headers=LD)
    context = _domain_context(example)
    response = client.get(
        f"{BASE}/{example['id']}", headers={"Accept": "application/ld+json", **link(context)}
    )
    assert response.status_code == 200
    assert response.json()["@context"] == context
    assert response.json()["type"] == example["type"]
