"""``burgo history``: retention policies and pruning from the command line, on a real SQLite file
and a real PostgreSQL database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from burgo.cli import app
from burgo.ngsild.duration import DAY
from burgo.ngsild.model import Attribute, AttrKind
from burgo.ngsild.temporal import TemporalQuery, from_millis, to_millis
from burgo.store.base import Store
from burgo.store.postgres import PostgresStore
from burgo.store.sqlite import SqliteStore
from burgo.store.temporal import HistorySelection
from tests.services import PostgresServer

ROOM = "https://uri.etsi.org/ngsi-ld/default-context/Room"
TEMPERATURE = "https://uri.etsi.org/ngsi-ld/default-context/temperature"


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the history lives: a SQLite file, or a new database of the private cluster."""
    if request.param == "sqlite":
        return str(tmp_path / "burgo.db")
    server: PostgresServer = request.getfixturevalue("postgres_server")
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute('DROP DATABASE IF EXISTS "burgo_history_cli"')
        conn.execute('CREATE DATABASE "burgo_history_cli"')
    return server.url("burgo_history_cli")


def _store(db: str) -> Store:
    return PostgresStore(db) if db.startswith("postgresql://") else SqliteStore(Path(db))


def _seed(db: str) -> int:
    """Twenty days of daily readings ending today; returns today's start (epoch ms)."""
    from datetime import UTC, datetime

    today = to_millis(datetime.now(UTC))
    today -= today % DAY

    async def seed() -> None:
        store = _store(db)
        await store.open()
        points = tuple(
            Attribute(AttrKind.PROPERTY, n, observed_at=from_millis(today - n * DAY))
            for n in range(20)
        )
        await store.add_history("", "urn:ngsi-ld:Room:1", (ROOM,), {TEMPERATURE: points})
        await store.close()

    asyncio.run(seed())
    return today


def _remaining(db: str) -> list[int]:
    async def read() -> list[int]:
        store = _store(db)
        await store.open()
        page = await store.query_history("", HistorySelection(), TemporalQuery(), max_instances=99)
        await store.close()
        return [i.attribute.value for i in page.entities[0].attrs[TEMPERATURE]]

    return asyncio.run(read())


def test_retention_and_prune(db: str, tmp_path: Path) -> None:
    _seed(db)
    runner = CliRunner()
    none = tmp_path / "none.toml"
    base = ["--db", db, "--config", str(none)]
    listed = runner.invoke(app, ["history", "retention", *base])
    assert listed.exit_code == 0 and listed.output == ""
    set_policy = runner.invoke(
        app, ["history", "retention", "--type", "Room", "--days", "7", *base]
    )
    assert set_policy.exit_code == 0, set_policy.output
    assert "Room: 7 days" in set_policy.output
    pruned = runner.invoke(app, ["history", "prune", *base])
    assert pruned.exit_code == 0, pruned.output
    assert pruned.output.startswith("Removed 12 raw instances from 1 series")
    assert _remaining(db) == [7, 6, 5, 4, 3, 2, 1, 0]
    cleared = runner.invoke(app, ["history", "retention", "--type", "Room", "--clear", *base])
    assert cleared.exit_code == 0 and cleared.output == ""


def test_prune_needs_a_database(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["history", "prune", "--db", str(tmp_path / "no.db"),
                                      "--config", str(tmp_path / "none.toml")])  # fmt: skip
    assert result.exit_code == 1
    assert "no database" in result.output


def test_prune_says_when_postgresql_is_unreachable(tmp_path: Path) -> None:
    unreachable = "postgresql://burgo@127.0.0.1:9/burgo?connect_timeout=1"
    result = CliRunner().invoke(app, ["history", "prune", "--db", unreachable,
                                      "--config", str(tmp_path / "none.toml")])  # fmt: skip
    assert result.exit_code == 1
    assert "unavailable" in result.output
    assert "Traceback" not in result.output
