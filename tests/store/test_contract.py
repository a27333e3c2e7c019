"""The store contracts, run against every backend (the ``store`` fixture's parameters)."""

from __future__ import annotations

from tests.store.contract import BatchContract, DeviceContract, StoreContract, SubscriptionContract
from tests.store.contract_changes import EntityChangesContract
from tests.store.contract_temporal import HistoryContract
from tests.store.query_contract import QueryContract


class TestStore(StoreContract):
    """Tenants, entities, @contexts and stats."""


class TestBatch(BatchContract):
    """Batch writes and discovery."""


class TestSubscriptions(SubscriptionContract):
    """Subscriptions and their outbox."""


class TestDevices(DeviceContract):
    """The device registry."""


class TestQueries(QueryContract):
    """Entity queries and purges."""


class TestChanges(EntityChangesContract):
    """Sequences of entity changes in one transaction, and device reports with their readings."""


class TestHistory(HistoryContract):
    """History recorded with every entity write, read, aggregated, imported and pruned."""
