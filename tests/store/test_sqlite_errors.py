"""sqlite3 errors reach callers as Burgo errors, each produced here by a real condition."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest

from burgo.ngsild.errors import InternalError, NgsiLdError, ServiceUnavailable
from burgo.store.base import DEFAULT_TENANT
from burgo.store.sqlite import SqliteStore
from burgo.store.sqlite.store import translate_error
from tests.store.contract import TEMPERATURE, prop, room, set_temperature


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection to the store's file, there to take locks the store must respect."""
    with closing(sqlite3.connect(tmp_path / "burgo.db", isolation_level=None)) as conn:
        yield conn


def raised_by(action: Callable[[], object]) -> sqlite3.Error:
    """The sqlite3 error ``action`` raises."""
    with pytest.raises(sqlite3.Error) as caught:
        action()
    return caught.value


def busy_error(tmp_path: Path) -> sqlite3.Error:
    """A write while another connection holds the write lock."""
    path = tmp_path / "busy.db"
    with closing(sqlite3.connect(path, isolation_level=None)) as owner:
        owner.execute("CREATE TABLE t (x)")
        owner.execute("BEGIN IMMEDIATE")
        with closing(sqlite3.connect(path, isolation_level=None, timeout=0)) as other:
            return raised_by(lambda: other.execute("BEGIN IMMEDIATE"))


def full_error(tmp_path: Path) -> sqlite3.Error:
    """A write past the largest size the database may grow to."""
    with closing(sqlite3.connect(tmp_path / "full.db", isolation_level=None)) as conn:
        conn.execute("CREATE TABLE t (x)")
        conn.execute("PRAGMA max_page_count = 3")
        return raised_by(lambda: conn.execute("INSERT INTO t VALUES (zeroblob(100000))"))


def readonly_error(tmp_path: Path) -> sqlite3.Error:
    """A write on a connection that may only read."""
    with closing(sqlite3.connect(tmp_path / "ro.db", isolation_level=None)) as conn:
        conn.execute("PRAGMA query_only = ON")
        return raised_by(lambda: conn.execute("CREATE TABLE t (x)"))


def corrupt_error(tmp_path: Path) -> sqlite3.Error:
    """Opening a file that is not a database."""
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"this is not a database" * 100)
    with closing(sqlite3.connect(path)) as conn:
        return raised_by(lambda: conn.execute("SELECT * FROM sqlite_master"))


def misuse_error(tmp_path: Path) -> sqlite3.Error:
    """A statement naming a table that does not exist: a bug of ours, not the client's."""
    with closing(sqlite3.connect(tmp_path / "bug.db")) as conn:
        return raised_by(lambda: conn.execute("SELECT * FROM nowhere"))


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (busy_error, ServiceUnavailable),
        (full_error, ServiceUnavailable),
        (readonly_error, ServiceUnavailable),
        (corrupt_error, InternalError),
        (misuse_error, InternalError),
    ],
)
def test_every_sqlite_condition_has_its_burgo_error(
    tmp_path: Path,
    condition: Callable[[Path], sqlite3.Error],
    expected: type[NgsiLdError],
) -> None:
    error = condition(tmp_path)
    translated = translate_error(error)
    assert type(translated) is expected
    assert translated.status in (500, 503)


@pytest.mark.anyio
async def test_writes_to_a_locked_database_are_unavailable_then_recover(
    tmp_path: Path, holder: sqlite3.Connection
) -> None:
    store = SqliteStore(tmp_path / "burgo.db", busy_timeout=0.05)
    await store.open()
    try:
        await store.create_entity(DEFAULT_TENANT, room(temperature=20.0))
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(ServiceUnavailable, match="busy"):
            await store.modify_entity(DEFAULT_TENANT, room().id, set_temperature(30.0))
        with pytest.raises(ServiceUnavailable):
            await store.create_entity(DEFAULT_TENANT, room("urn:ngsi-ld:Room:2"))
        assert await store.get_entity(DEFAULT_TENANT, room().id) == room(temperature=20.0)
        holder.execute("ROLLBACK")

        await store.modify_entity(DEFAULT_TENANT, room().id, set_temperature(30.0))
        stored = await store.get_entity(DEFAULT_TENANT, room().id)
        assert stored is not None
        assert stored.instance(TEMPERATURE) == prop(30.0, unit_code="CEL")[0]
        assert await store.count_entities(DEFAULT_TENANT) == 1
    finally:
        await store.close()


@pytest.mark.anyio
async def test_a_file_that_is_not_a_database_fails_to_open_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "burgo.db"
    path.write_bytes(b"\x00not sqlite\xff" * 512)
    with pytest.raises(InternalError, match="not a database.*" + re.escape(str(path))):
        await SqliteStore(path).open()


@pytest.mark.anyio
async def test_a_database_path_under_a_file_fails_to_open_naming_it(tmp_path: Path) -> None:
    (tmp_path / "plain-file").write_text("x")
    path = tmp_path / "plain-file" / "burgo.db"
    with pytest.raises(InternalError, match=re.escape(str(path))):
        await SqliteStore(path).open()


@pytest.mark.anyio
async def test_a_directory_as_database_fails_to_open_naming_it(tmp_path: Path) -> None:
    with pytest.raises(InternalError, match="unable to open.*" + re.escape(str(tmp_path))):
        await SqliteStore(tmp_path).open()
