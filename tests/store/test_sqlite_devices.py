"""The device registry contract on SQLite, and its data surviving a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from burgo.store.base import DEFAULT_TENANT
from burgo.store.sqlite import SqliteStore
from tests.store.contract import device

pytestmark = pytest.mark.anyio


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
