"""The entity API tests share one broker per module (real SQLite file, manual clock), reset
between tests: fast, and each test still starts from an empty broker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.api.entity_checks import Broker, ManualClock, running_broker


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One broker for the tests of the module that imports this fixture."""
    with running_broker(tmp_path_factory.mktemp("broker")) as shared:
        yield shared


@pytest.fixture
def client(broker: Broker) -> TestClient:
    """The module's broker, its test entities deleted and its clock set back."""
    return broker.reset()


@pytest.fixture
def clock(broker: Broker) -> ManualClock:
    """The module's broker's clock (it starts at START and moves only when told)."""
    return broker.clock
