"""The device registry contract on SQLite, and its data surviving a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from burgo.store.base import DEFAULT_TENANT, Store
from burgo.store.sqlite import SqliteStore
from tests.store.contract import DeviceContract, device

pytestmark = pytest.mark.anyio


class TestSqliteDevices(DeviceContract):
    """The device contract on a SQLite file of its own."""

    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[Store]:
        """An opened SqliteStore on a new file."""
        sqlite_store = SqliteStore(tmp_path / "burgo.db", synchronous="NORMAL")
        await sqlite_store.open()
        yield sqlite_store
        await sqlite_store.close()


async def test_devices_survive_a_restart(tmp_path: Path) -> None:
    first = SqliteStore(tmp_path / "burgo.db")
    await first.open()
    await first.create_device(device(tenant="fundao"))
    await first.close()
    second = SqliteStore(tmp_path / "burgo.db")
    await second.open()
    try:
        assert await second.get_device("fundao", "aq-1") == device(tenant="fundao")
        assert "fundao" in await second.list_tenants()
        assert await second.get_device(DEFAULT_TENANT, "aq-1") is None
    finally:
        await second.close()
