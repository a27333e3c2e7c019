"""The subscription contract on SQLite, and what survives a reopen."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from burgo.store.base import DEFAULT_TENANT, Store
from burgo.store.sqlite import SqliteStore
from tests.store.contract import SubscriptionContract, room, subscription

pytestmark = pytest.mark.anyio


class TestSqliteSubscriptions(SubscriptionContract):
    """The contract on a SQLite file of its own."""

    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[Store]:
        """An opened SqliteStore on a new file."""
        sqlite_store = SqliteStore(tmp_path / "burgo.db", synchronous="NORMAL")
        await sqlite_store.open()
        yield sqlite_store
        await sqlite_store.close()


async def test_subscriptions_and_queued_notifications_survive_a_reopen(tmp_path: Path) -> None:
    first = SqliteStore(tmp_path / "burgo.db")
    await first.open()
    await first.create_subscription(DEFAULT_TENANT, subscription())
    await first.create_entity(DEFAULT_TENANT, room())
    await first.close()
    second = SqliteStore(tmp_path / "burgo.db")
    await second.open()
    try:
        lanes, high = await second.outbox_lanes(0)
        assert len(lanes) == 1
        assert second.outbox_written() == high
        await second.create_entity(DEFAULT_TENANT, room("urn:ngsi-ld:Room:2"))
        pending = await second.pending_notifications(
            DEFAULT_TENANT, lanes[0].subscription_id, limit=5
        )
        assert [p.changes[0].entity.id for p in pending] == [room().id, "urn:ngsi-ld:Room:2"]
    finally:
        await second.close()
