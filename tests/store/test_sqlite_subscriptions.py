"""The subscription contract on SQLite, and what survives a reopen."""

from __future__ import annotations

from pathlib import Path

import pytest

from burgo.store.base import DEFAULT_TENANT
from burgo.store.sqlite import SqliteStore
from tests.store.contract import room, subscription

pytestmark = pytest.mark.anyio


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
