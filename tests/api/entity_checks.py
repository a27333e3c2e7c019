"""Helpers shared by the entity API tests: one broker per module, reset between tests; reading an
entity back and proving it unchanged."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from burgo.app import create_app
from burgo.config import load_settings

BASE = "/ngsi-ld/v1/entities"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
START = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
# The entities the tests create; deleted between tests so each starts with an empty broker.
TEST_IDS = (
    "urn:ngsi-ld:Room:1",
    "urn:ngsi-ld:Room:2",
    "urn:ngsi-ld:Room:9",
    "urn:a:b",
)


def stored(
    client: TestClient, entity_id: str, headers: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The entity as stored, with system attributes (so any write shows in modifiedAt)."""
    response = client.get(f"{BASE}/{entity_id}", params={"options": "sysAttrs"}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@contextmanager
def unchanged(
    client: TestClient, entity_id: str, headers: Mapping[str, str] | None = None
) -> Iterator[None]:
    """Assert that the stored entity is the same after the block as before it (the broker's
    manual clock, if it has one, is moved on first, so a needless rewrite shows in modifiedAt)."""
    before = stored(client, entity_id, headers)
    clock = client.app.state.services.clock  # type: ignore[attr-defined]
    if isinstance(clock, ManualClock):
        clock.advance(60)
    yield
    assert stored(client, entity_id, headers) == before


def assert_problem(response: Any, status: int, problem: str) -> dict[str, Any]:
    """Assert an NGSI-LD problem-details response (application/json) and return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["type"] == ERRORS + problem
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    return body


class ManualClock:
    """A clock the test moves forward by hand."""

    def __init__(self, start: datetime) -> None:
        self.moment = start

    def now(self) -> datetime:
        """The current (test) time."""
        return self.moment

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.moment += timedelta(seconds=seconds)


class Broker:
    """A running Burgo app on its own database, shared by the tests of one module."""

    def __init__(self, client: TestClient, clock: ManualClock) -> None:
        self.client = client
        self.clock = clock

    def reset(self, entity_ids: Iterable[str] = TEST_IDS) -> TestClient:
        """Delete the tests' entities, set the clock back to START and return the client."""
        for entity_id in entity_ids:
            self.client.delete(f"{BASE}/{entity_id}")
        self.clock.moment = START
        return self.client


BACKENDS = ["sqlite", "postgresql"]


def backend_database(request: pytest.FixtureRequest) -> str | None:
    """For a fixture parametrized by BACKENDS: None on SQLite (a file in the test's folder), or
    the URL of a new database of the session's private PostgreSQL cluster for the module."""
    if request.param == "sqlite":
        return None
    server = request.getfixturevalue("postgres_server")
    name = "burgo_" + request.module.__name__.rsplit(".", 1)[-1]
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    url: str = server.url(name)
    return url


@contextmanager
def running_broker(directory: Path, db: str | None = None, **flags: Any) -> Iterator[Broker]:
    """Start a broker whose database lives in ``directory`` (or at the URL ``db``) and whose
    clock starts at START."""
    settings = load_settings(
        flags={
            "db": db or str(directory / "burgo.db"),
            "sqlite_synchronous": "NORMAL",
            **flags,
        },
        environ={},
        config_path=None,
    )
    clock = ManualClock(START)
    with TestClient(create_app(settings, clock=clock)) as client:
        yield Broker(client, clock)
