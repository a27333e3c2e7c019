"""Batch writes and discovery on SQLite: the contract, plus the change hooks inside a batch."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from burgo.ngsild.errors import BadRequestData
from burgo.store.base import DEFAULT_TENANT, EntityChangeRecord
from burgo.store.batch import EntityWrite
from burgo.store.sqlite import SqliteStore
from tests.store.contract import room, set_temperature

pytestmark = pytest.mark.anyio


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """An opened SqliteStore on a new file."""
    opened = SqliteStore(tmp_path / "burgo.db", synchronous="NORMAL")
    await opened.open()
    yield opened
    await opened.close()


async def test_every_batch_write_reaches_the_change_hooks(sqlite_store: SqliteStore) -> None:
    seen: list[tuple[str, bool, bool]] = []

    def hook(conn: sqlite3.Connection, record: EntityChangeRecord) -> None:
        seen.append((record.entity_id, record.before is None, record.after is None))

    sqlite_store._change_hooks.append(hook)
    await sqlite_store.write_entities(
        DEFAULT_TENANT,
        [
            EntityWrite("urn:ngsi-ld:Room:1", create=room()),
            EntityWrite("urn:ngsi-ld:Room:1", change=set_temperature(2.0)),
            EntityWrite("urn:ngsi-ld:Room:1", change=lambda e: (None, None)),
            EntityWrite("urn:ngsi-ld:Room:2", change=set_temperature(2.0)),
        ],
    )
    assert seen == [
        ("urn:ngsi-ld:Room:1", True, False),
        ("urn:ngsi-ld:Room:1", False, False),
        ("urn:ngsi-ld:Room:1", False, True),
    ]


async def test_a_failing_hook_undoes_only_its_own_entity(sqlite_store: SqliteStore) -> None:
    def hook(conn: sqlite3.Connection, record: EntityChangeRecord) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS audit (id TEXT)")
        conn.execute("INSERT INTO audit VALUES (?)", (record.entity_id,))
        if record.entity_id.endswith(":bad"):
            raise BadRequestData("the outbox refuses it")

    sqlite_store._change_hooks.append(hook)
    ids = ["urn:ngsi-ld:Room:1", "urn:ngsi-ld:Room:bad", "urn:ngsi-ld:Room:3"]
    outcomes = await sqlite_store.write_entities(
        DEFAULT_TENANT, [EntityWrite(i, create=room(i)) for i in ids]
    )
    assert [o.ok for o in outcomes] == [True, False, True]
    assert await sqlite_store.get_entity(DEFAULT_TENANT, ids[1]) is None
    assert await sqlite_store.count_entities(DEFAULT_TENANT) == 2
    audited = sqlite_store._read(lambda c: c.execute("SELECT id FROM audit").fetchall())
    assert [row[0] for row in audited] == [ids[0], ids[2]]
    # The id whose write was undone is free again, in the same batch's later entries too.
    outcomes = await sqlite_store.write_entities(
        DEFAULT_TENANT,
        [
            EntityWrite(ids[1], create=room(ids[1])),
            EntityWrite("urn:ngsi-ld:Room:4", create=room("urn:ngsi-ld:Room:4")),
        ],
    )
    assert not outcomes[0].ok and outcomes[1].ok


async def test_an_empty_batch_writes_nothing(sqlite_store: SqliteStore) -> None:
    assert await sqlite_store.write_entities(DEFAULT_TENANT, []) == []
