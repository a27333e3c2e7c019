"""Shared fixtures: a real Burgo app on a real SQLite file, driven in process; real local peers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from burgo.app import create_app
from burgo.config import Settings, load_settings
from tests.services import Broker, PostgresServer, mosquitto, postgresql

DATA = Path(__file__).resolve().parent / "data"
CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld"
LD = {"Content-Type": "application/ld+json"}
JSON = {"Content-Type": "application/json"}


def link(url: str) -> dict[str, str]:
    """A Link header naming ``url`` as the request's JSON-LD @context."""
    return {
        "Link": f'<{url}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
    }


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for a test server on its own SQLite file."""
    return load_settings(
        flags={"db": str(tmp_path / "burgo.db"), "sqlite_synchronous": "NORMAL"},
        environ={},
        config_path=None,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """An HTTP client talking to a running Burgo app (lifespan started)."""
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def entity(entity_id: str = "urn:ngsi-ld:Room:1", **attrs: Any) -> dict[str, Any]:
    """A normalized entity of type Room with the given attributes."""
    return {"id": entity_id, "type": "Room", **attrs}


@pytest.fixture(scope="session")
def mqtt_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A private Mosquitto broker shared by the session's tests."""
    with mosquitto(tmp_path_factory.mktemp("mosquitto")) as broker:
        yield broker


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL cluster shared by the session's tests."""
    with postgresql() as server:
        yield server
