"""Versioned schema migrations: a user who upgrades Burgo keeps their data."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from burgo.ngsild.errors import InternalError
from burgo.store.base import DEFAULT_TENANT
from burgo.store.sqlite import SqliteStore
from burgo.store.sqlite.migrations import (
    Migration,
    available_migrations,
    migrate,
    schema_version,
)
from tests.store.contract import every_kind, room

LATEST = available_migrations()[-1].version

# Steps a future Burgo could ship, to upgrade a database made by this one.
ADD_NOTE = Migration(
    LATEST + 1, "add_note", "ALTER TABLE entities ADD COLUMN note TEXT DEFAULT 'n/a';"
)
INDEX_NOTE = Migration(
    LATEST + 2, "index_note", "-- an index\nCREATE INDEX entities_note ON entities (note);"
)
BROKEN = Migration(LATEST + 3, "broken", "CREATE TABLE half_done (x);\nCREATE TABLE (;")


def connect(path: Path) -> closing[sqlite3.Connection]:
    """An autocommit connection, as the store's own, closed on leaving its block."""
    return closing(sqlite3.connect(path, isolation_level=None))


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A connection to a new, empty database file."""
    with connect(tmp_path / "burgo.db") as new:
        yield new


def tables(conn: sqlite3.Connection) -> set[str]:
    """Names of the tables in the database."""
    return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


async def populated(path: Path) -> None:
    """Write a few entities through the store at the current schema."""
    store = SqliteStore(path)
    await store.open()
    await store.create_entity(DEFAULT_TENANT, every_kind())
    await store.create_entity("fundao", room())
    await store.close()


def test_shipped_migrations_are_numbered_one_by_one() -> None:
    versions = [m.version for m in available_migrations()]
    assert versions == list(range(1, len(versions) + 1))
    assert all(m.sql.strip() for m in available_migrations())


def test_a_new_database_gets_every_migration_once(conn: sqlite3.Connection) -> None:
    assert schema_version(conn) == 0
    assert migrate(conn) == list(range(1, LATEST + 1))
    assert schema_version(conn) == LATEST
    assert {"tenants", "entities", "entity_types", "jsonld_contexts"} <= tables(conn)
    assert migrate(conn) == []


def test_migrations_apply_in_steps(conn: sqlite3.Connection) -> None:
    steps = [*available_migrations(), ADD_NOTE, INDEX_NOTE]
    assert migrate(conn, steps[:-1]) == [*range(1, LATEST + 1), ADD_NOTE.version]
    assert schema_version(conn) == ADD_NOTE.version
    assert migrate(conn, steps) == [INDEX_NOTE.version]
    assert schema_version(conn) == INDEX_NOTE.version


@pytest.mark.anyio
async def test_an_older_database_is_upgraded_in_place_keeping_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "burgo.db"
    await populated(path)
    with connect(path) as conn:
        before = conn.execute("SELECT tenant, id, doc FROM entities ORDER BY pk").fetchall()
        assert migrate(conn, [*available_migrations(), ADD_NOTE, INDEX_NOTE]) == [
            ADD_NOTE.version,
            INDEX_NOTE.version,
        ]
        assert schema_version(conn) == INDEX_NOTE.version
        after = conn.execute("SELECT tenant, id, doc, note FROM entities ORDER BY pk").fetchall()
        assert [row[:3] for row in after] == before
        assert {row[3] for row in after} == {"n/a"}
        assert len(before) == 2


def test_a_failing_step_is_rolled_back_alone(conn: sqlite3.Connection) -> None:
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, [*available_migrations(), ADD_NOTE, BROKEN])
    assert schema_version(conn) == ADD_NOTE.version
    assert "half_done" not in tables(conn)
    assert not conn.in_transaction


@pytest.mark.anyio
async def test_a_database_newer_than_burgo_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "burgo.db"
    await populated(path)
    with connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {LATEST + 5}")

    store = SqliteStore(path)
    with pytest.raises(InternalError, match=rf"version {LATEST + 5}, newer .*\({LATEST}\)"):
        await store.open()
    with connect(path) as conn:
        assert schema_version(conn) == LATEST + 5
        assert conn.execute("SELECT count(*) FROM entities").fetchone()[0] == 2
