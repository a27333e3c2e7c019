"""Store tests run on asyncio, through the anyio pytest plugin, against every backend.

The ``store`` fixture is one freshly opened, empty store per backend: a SQLite file of its own,
and a PostgreSQL database (of the session's private cluster) emptied before each test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from burgo.store.base import Store
from burgo.store.postgres import PostgresStore
from burgo.store.sqlite import SqliteStore
from tests.services import PostgresServer

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture
def anyio_backend() -> str:
    """Burgo serves on asyncio (uvloop), so its stores are tested there."""
    return "asyncio"


@pytest.fixture(scope="session")
def postgres_database(postgres_server: PostgresServer) -> str:
    """The URL of a database of the private cluster for the store tests."""
    with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE burgo_store")
    return postgres_server.url("burgo_store")


@pytest.fixture
def empty_postgres(postgres_database: str) -> str:
    """The store tests' database with every table of Burgo emptied (the schema stays)."""
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename NOT IN ('burgo_schema', 'spatial_ref_sys')"
        ).fetchall()
        if rows:
            tables = sql.SQL(", ").join(sql.Identifier(row[0]) for row in rows)
            conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(tables))
    return postgres_database


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A freshly opened, empty store of each backend."""
    opened: SqliteStore | PostgresStore
    if request.param == "sqlite":
        opened = SqliteStore(tmp_path / "burgo.db", synchronous="NORMAL")
    else:
        opened = PostgresStore(request.getfixturevalue("empty_postgres"), max_connections=4)
    await opened.open()
    yield opened
    await opened.close()
