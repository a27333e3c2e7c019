"""Sequences of entity changes in one writer job, and device reports with their readings, on
SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from burgo.store.base import Store
from burgo.store.sqlite import SqliteStore
from tests.store.contract_changes import EntityChangesContract


class TestSqliteChanges(EntityChangesContract):
    """The contract on a SQLite file of its own."""

    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[Store]:
        """An opened SqliteStore on a new file."""
        sqlite_store = SqliteStore(tmp_path / "burgo.db", synchronous="NORMAL")
        await sqlite_store.open()
        yield sqlite_store
        await sqlite_store.close()
