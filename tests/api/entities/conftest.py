"""The entity API tests share one broker per module and backend (a SQLite file, a PostgreSQL
database; manual clock), reset between tests: fast, and each test still starts from an empty
broker. Every test runs on both backends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.api.entity_checks import (
    BACKENDS,
    Broker,
    ManualClock,
    backend_database,
    running_broker,
)


@pytest.fixture(scope="module", params=BACKENDS)
def broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Broker]:
    """One broker for the tests of the module that imports this fixture, on each backend."""
    url = backend_database(request)
    with running_broker(tmp_path_factory.mktemp("broker"), db=url) as shared:
        yield shared


@pytest.fixture
def client(broker: Broker) -> TestClient:
    """The module's broker, its test entities deleted and its clock set back."""
    return broker.reset()


@pytest.fixture
def clock(broker: Broker) -> ManualClock:
    """The module's broker's clock (it starts at START and moves only when told)."""
    return broker.clock
