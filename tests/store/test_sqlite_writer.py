"""The single SQLite writer: jobs committed in groups, each job isolated by its own SAVEPOINT."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio.to_thread
import pytest

from burgo.store.sqlite.writer import SqliteWriter

pytestmark = pytest.mark.anyio


@pytest.fixture
def database(tmp_path: Path) -> Path:
    """A database with one table of unique numbers."""
    path = tmp_path / "writer.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE numbers (n INTEGER UNIQUE)")
    conn.close()
    return path


@pytest.fixture
def writer(database: Path) -> Iterator[SqliteWriter]:
    """A running writer on ``database``."""

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(database, isolation_level=None, check_same_thread=False)

    the_writer = SqliteWriter(connect)
    the_writer.start()
    yield the_writer
    the_writer.stop()


def numbers(database: Path) -> list[int]:
    """The numbers committed to ``database``, read on a connection of its own."""
    conn = sqlite3.connect(database)
    try:
        return [row[0] for row in conn.execute("SELECT n FROM numbers ORDER BY n")]
    finally:
        conn.close()


def insert(*values: int, then_fail: bool = False) -> Callable[[sqlite3.Connection], int]:
    """A job inserting ``values``, optionally failing after its writes."""

    def job(conn: sqlite3.Connection) -> int:
        for value in values:
            conn.execute("INSERT INTO numbers (n) VALUES (?)", (value,))
        if then_fail:
            raise ValueError("job failed after writing")
        return len(values)

    return job


async def test_failing_jobs_roll_back_alone_inside_one_commit(
    writer: SqliteWriter, database: Path
) -> None:
    entered, release = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection) -> None:
        entered.set()
        release.wait(10)

    first = writer.submit(hold)
    await anyio.to_thread.run_sync(entered.wait, 10)
    group = [
        writer.submit(insert(1, 2)),
        writer.submit(insert(3, 4, then_fail=True)),
        writer.submit(insert(5)),
        writer.submit(insert(6, 1)),  # 1 is taken: a constraint error after inserting 6
        writer.submit(insert(7)),
    ]
    assert writer.depth == len(group)
    release.set()
    await first
    outcomes = await asyncio.gather(*group, return_exceptions=True)

    assert outcomes[0] == 2
    assert isinstance(outcomes[1], ValueError)
    assert outcomes[2] == 1
    assert isinstance(outcomes[3], sqlite3.IntegrityError)
    assert outcomes[4] == 1
    assert numbers(database) == [1, 2, 5, 7]
    assert (writer.commits, writer.jobs) == (2, 6)


async def test_stop_writes_what_is_queued(writer: SqliteWriter, database: Path) -> None:
    futures = [writer.submit(insert(n)) for n in range(50)]
    writer.stop()
    assert numbers(database) == list(range(50))
    assert await asyncio.gather(*futures) == [1] * 50


async def test_a_stopped_writer_refuses_jobs(writer: SqliteWriter) -> None:
    writer.stop()
    with pytest.raises(RuntimeError, match="not running"):
        writer.submit(insert(1))
