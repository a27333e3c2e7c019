"""The core of the SQLite backend: connections, the writer, schema, tenants and change hooks.

Each concern of the store (entities, @contexts, and those added later) is a mixin over this core,
in a module of its own; :class:`~burgo.store.sqlite.store.SqliteStore` combines them.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import TypeVar

import orjson

from burgo.clock import Clock, SystemClock
from burgo.ngsild.errors import (
    InternalError,
    NgsiLdError,
    NonexistentTenant,
    ServiceUnavailable,
)
from burgo.ngsild.times import format_datetime
from burgo.store.base import DEFAULT_TENANT, EntityChangeRecord
from burgo.store.sqlite.decoded import DecodedEntities
from burgo.store.sqlite.migrations import migrate, schema_version
from burgo.store.sqlite.plain import clear_instances, fill_instances
from burgo.store.sqlite.qsql import register_functions
from burgo.store.sqlite.writer import SqliteWriter

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StoredChange:
    """An entity write as the SQLite hooks see it: the record and its row's key (None: deleted)."""

    record: EntityChangeRecord
    pk: int | None


# Called inside the write transaction after each entity write (history, notification outbox...).
ChangeHook = Callable[[sqlite3.Connection, EntityChangeRecord], None]
# Called inside the write transaction with the writes of several entities at once, in the order
# they were written: how the indexes, history and outbox keep up with a batch in a few statements.
# A sequence hook (history, outbox) takes every write, an entity possibly several times, each
# ``before`` the ``after`` of its previous write; a state hook (the query indexes, which follow
# only what is stored) takes each entity at most once, from its first ``before`` to its last
# ``after``.
BatchHook = Callable[[sqlite3.Connection, Sequence[StoredChange]], None]
# A hook's set-based form for entities just created in a plain shape (store/sqlite/plain.py):
# the connection, the JSON array of their rows' keys, and their changes in order.
PlainForm = Callable[[sqlite3.Connection, str, Sequence[StoredChange]], None]

_BUSY = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_CANNOT_WRITE = frozenset({sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY})


def translate_error(exc: sqlite3.Error) -> NgsiLdError:
    """The Burgo error for a driver error (busy or full database, corruption, ...)."""
    # Extended result codes carry the primary code in their low byte.
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary in _BUSY:
        return ServiceUnavailable("The database is busy; try again shortly")
    if primary in _CANNOT_WRITE:
        return ServiceUnavailable(f"The database cannot write ({exc}); check its disk and file")
    return InternalError(f"Database error: {exc}")


# Plain creates in a row below this many go through the Python hooks: each run costs the
# set-based forms a dozen statements, which only pays over several entities.
_MIN_PLAIN_RUN = 16


def _runs(
    changes: Sequence[StoredChange], plain: set[int]
) -> list[tuple[bool, list[StoredChange]]]:
    """``changes`` cut into runs, in order: runs of at least _MIN_PLAIN_RUN plain creates
    (``plain``: their ids), and runs of anything else."""
    runs: list[tuple[bool, list[StoredChange]]] = []
    for is_plain, group in groupby(changes, key=lambda change: id(change) in plain):
        run = list(group)
        is_plain = is_plain and len(run) >= _MIN_PLAIN_RUN
        if runs and not is_plain and not runs[-1][0]:
            runs[-1][1].extend(run)
        else:
            runs.append((is_plain, run))
    return runs


class SqliteCore:
    """Connections, the single writer and the schema of one SQLite file."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "FULL",
        busy_timeout: float = 30.0,
        clock: Clock | None = None,
    ) -> None:
        self.path = Path(path)
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._synchronous = synchronous
        self._busy_timeout = busy_timeout
        self._writer = SqliteWriter(self._connect_writer)
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        # Reads running on worker threads: close waits for them before closing connections.
        self._thread_reads = 0
        self._thread_reads_done = threading.Condition()
        self._tenants: set[str] = {DEFAULT_TENANT}
        # Entities the writer decoded or wrote lately (writer thread only).
        self._decoded = DecodedEntities()
        self._opened = False
        self._change_hooks: list[ChangeHook] = []
        self._batch_hooks: list[BatchHook] = []
        self._state_hooks: list[BatchHook] = []
        # The set-based forms of batch and state hooks, by hook.
        self._plain_forms: dict[BatchHook, PlainForm] = {}

    # -- connections -------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=self._busy_timeout
        )
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        conn.execute("PRAGMA foreign_keys = ON")
        register_functions(conn)
        return conn

    def _connect_writer(self) -> sqlite3.Connection:
        conn = self._connect()
        conn.execute("PRAGMA cache_size = -8192")
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only = ON")
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    async def open(self) -> None:
        """Create or upgrade the schema and start the writer."""
        self._prepare()
        self._guarded(self._writer.start)
        self._opened = True

    async def upgrade(self) -> tuple[int, list[int]]:
        """Create or upgrade the schema only: the schema version now, and the versions applied."""
        return self._prepare()

    def _prepare(self) -> tuple[int, list[int]]:
        def prepare() -> tuple[int, list[int]]:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with closing(self._connect()) as conn:
                applied = migrate(conn)
                rows = conn.execute("SELECT name FROM tenants").fetchall()
                version = schema_version(conn)
            self._tenants.update(row[0] for row in rows)
            return version, applied

        return self._guarded(prepare)

    def _guarded(self, action: Callable[[], T]) -> T:
        """Run ``action``, turning driver and file-system errors into errors naming the file."""
        try:
            return action()
        except sqlite3.Error as exc:
            error = translate_error(exc)
            raise type(error)(f"{error.detail} (database {self.path})") from exc
        except NgsiLdError as exc:
            raise type(exc)(f"{exc.detail} (database {self.path})") from exc
        except OSError as exc:
            raise InternalError(f"Cannot open the database {self.path}: {exc}") from exc

    async def close(self) -> None:
        """Write what is queued and close every connection."""
        self._writer.stop()
        await asyncio.to_thread(self._wait_for_thread_reads)
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        self._local = threading.local()
        self._opened = False

    # -- helpers -------------------------------------------------------------------------------

    async def _write(self, job: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return await self._writer.submit(job)
        except sqlite3.Error as exc:
            raise translate_error(exc) from exc

    def _read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return query(self._reader())
        except sqlite3.Error as exc:
            raise translate_error(exc) from exc

    def _check_tenant(self, tenant: str) -> None:
        if tenant not in self._tenants:
            raise NonexistentTenant(f"Tenant {tenant!r} does not exist")

    def _ensure_tenant(self, conn: sqlite3.Connection, tenant: str, now: str) -> None:
        if tenant not in self._tenants:
            conn.execute(
                "INSERT OR IGNORE INTO tenants (name, created_at) VALUES (?, ?)", (tenant, now)
            )

    # -- tenants -------------------------------------------------------------------------------

    async def tenant_exists(self, tenant: str) -> bool:
        """Whether the tenant exists."""
        return tenant in self._tenants

    async def list_tenants(self) -> list[str]:
        """All tenants, the default one first."""
        return sorted(self._tenants)

    async def _read_in_thread(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """Run a long read on a worker thread (its own connection) so the event loop stays free."""
        return await asyncio.to_thread(self._read_counted, query)

    def _read_counted(self, query: Callable[[sqlite3.Connection], T]) -> T:
        with self._thread_reads_done:
            self._thread_reads += 1
        try:
            return self._read(query)
        finally:
            with self._thread_reads_done:
                self._thread_reads -= 1
                self._thread_reads_done.notify_all()

    def _wait_for_thread_reads(self) -> None:
        """Until no read runs on a worker thread (closing a connection under a running query
        would crash the process), or a long read is interrupted after a few seconds."""
        with self._thread_reads_done:
            if self._thread_reads_done.wait_for(lambda: self._thread_reads == 0, timeout=5.0):
                return
        with self._readers_lock:
            for conn in self._readers:
                conn.interrupt()
        with self._thread_reads_done:
            self._thread_reads_done.wait_for(lambda: self._thread_reads == 0)

    def _now(self) -> str:
        """The current time in canonical NGSI-LD form, from the store's clock."""
        return format_datetime(self.clock.now())

    def _entity_changed(
        self, conn: sqlite3.Connection, record: EntityChangeRecord, pk: int | None = None
    ) -> None:
        """Tell every change hook about an entity write, inside the same transaction."""
        if pk is None and record.after is not None:
            row = conn.execute(
                "SELECT pk FROM entities WHERE tenant = ? AND id = ?",
                (record.tenant, record.entity_id),
            ).fetchone()
            pk = None if row is None else int(row[0])
        self._entities_changed(conn, (StoredChange(record, pk),))

    def _entities_changed(
        self,
        conn: sqlite3.Connection,
        changes: Sequence[StoredChange],
        plain: Sequence[StoredChange] = (),
    ) -> None:
        """Tell every hook about the writes of several entities (each at most once), in order.
        ``plain`` are those of ``changes`` that create an entity of a plain shape: a hook with a
        set-based form takes them through it, when enough of them come in a row. Runs of plain and
        other changes are handed over in turn, so ids (of history series, say) are given out in
        the order of ``changes``."""
        if not plain:
            self._entity_steps_changed(conn, changes, changes)
            return
        for is_plain, run in _runs(changes, {id(change) for change in plain}):
            if not is_plain:
                self._entity_steps_changed(conn, run, run)
                continue
            keys = orjson.dumps([change.pk for change in run]).decode()
            fill_instances(conn, keys)
            for hook in (*self._batch_hooks, *self._state_hooks):
                form = self._plain_forms.get(hook)
                if form is None:
                    hook(conn, run)
                else:
                    form(conn, keys, run)
            clear_instances(conn)
            for change_hook in self._change_hooks:
                for change in run:
                    change_hook(conn, change.record)

    def _entity_steps_changed(
        self,
        conn: sqlite3.Connection,
        steps: Sequence[StoredChange],
        finals: Sequence[StoredChange],
    ) -> None:
        """Tell the hooks about a sequence of writes: the sequence hooks every step (an entity
        possibly several times), the state hooks each entity's net change (``finals``)."""
        for batch_hook in self._batch_hooks:
            batch_hook(conn, steps)
        for state_hook in self._state_hooks:
            state_hook(conn, finals)
        for hook in self._change_hooks:
            for change in steps:
                hook(conn, change.record)

    async def claim_job(self, job: str, every: float) -> bool:
        """Always: one process owns a SQLite file."""
        return True

    # -- metrics -------------------------------------------------------------------------------

    def stats(self) -> dict[str, float]:
        """Writer queue depth, commits and the size of the database files."""
        size = 0
        for suffix in ("", "-wal", "-shm"):
            try:
                size += os.path.getsize(f"{self.path}{suffix}")
            except OSError:
                continue
        return {
            "burgo_store_write_queue_depth": self._writer.depth,
            "burgo_store_write_commits_total": self._writer.commits,
            "burgo_store_write_jobs_total": self._writer.jobs,
            "burgo_store_database_bytes": size,
        }
