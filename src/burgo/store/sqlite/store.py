"""The embedded SQLite backend: WAL, one writer thread, readers on their own connections."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import orjson

from burgo.ngsild.errors import (
    AlreadyExists,
    InternalError,
    NonexistentTenant,
    ResourceNotFound,
    ServiceUnavailable,
)
from burgo.ngsild.model import Entity, entity_from_storage, entity_to_storage
from burgo.store.base import DEFAULT_TENANT, EntityChange, StoredContext
from burgo.store.sqlite.migrations import migrate
from burgo.store.sqlite.writer import SqliteWriter

T = TypeVar("T")


def translate_error(exc: sqlite3.Error) -> Exception:
    """The Burgo error for a driver error (busy or full database, corruption, ...)."""
    message = str(exc).lower()
    if "locked" in message or "busy" in message:
        return ServiceUnavailable("The database is busy; try again shortly")
    if "full" in message or "disk i/o" in message:
        return ServiceUnavailable("The database cannot write: the disk is full or failing")
    return InternalError(f"Database error: {exc}")


class SqliteStore:
    """The Store protocol on one SQLite file.

    >>> store = SqliteStore("burgo-data/burgo.db")   # then: await store.open()
    """

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self._synchronous = synchronous
        self._writer = SqliteWriter(self._connect_writer)
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._tenants: set[str] = {DEFAULT_TENANT}
        self._opened = False

    # -- connections -------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 30000")
        return conn

    def _connect_writer(self) -> sqlite3.Connection:
        conn = self._connect()
        conn.execute("PRAGMA cache_size = -65536")
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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = self._connect()
            try:
                migrate(conn)
                rows = conn.execute("SELECT name FROM tenants").fetchall()
            finally:
                conn.close()
            self._tenants.update(row[0] for row in rows)
            self._writer.start()
        except sqlite3.Error as exc:
            raise translate_error(exc) from exc
        self._opened = True

    async def close(self) -> None:
        """Write what is queued and close every connection."""
        self._writer.stop()
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

    # -- entities ------------------------------------------------------------------------------

    async def create_entity(self, tenant: str, entity: Entity) -> None:
        """Insert a new entity."""
        doc = orjson.dumps(entity_to_storage(entity)).decode()
        types = orjson.dumps(list(entity.types)).decode()

        def job(conn: sqlite3.Connection) -> None:
            self._ensure_tenant(conn, tenant, entity.created_at or "")
            try:
                cursor = conn.execute(
                    "INSERT INTO entities (tenant, id, types, created_at, modified_at, doc) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (tenant, entity.id, types, entity.created_at, entity.modified_at, doc),
                )
            except sqlite3.IntegrityError as exc:
                raise AlreadyExists(f"Entity {entity.id} already exists") from exc
            _insert_types(conn, cursor.lastrowid, tenant, entity.types)

        await self._write(job)
        self._tenants.add(tenant)

    async def get_entity(self, tenant: str, entity_id: str) -> Entity | None:
        """The entity, or None."""
        self._check_tenant(tenant)
        row = self._read(
            lambda conn: conn.execute(
                "SELECT doc FROM entities WHERE tenant = ? AND id = ?", (tenant, entity_id)
            ).fetchone()
        )
        return entity_from_storage(orjson.loads(row[0])) if row else None

    async def modify_entity(self, tenant: str, entity_id: str, change: EntityChange[T]) -> T:
        """Read, change and write back one entity inside the writer's transaction."""
        self._check_tenant(tenant)

        def job(conn: sqlite3.Connection) -> T:
            row = conn.execute(
                "SELECT pk, doc FROM entities WHERE tenant = ? AND id = ?", (tenant, entity_id)
            ).fetchone()
            if row is None:
                raise ResourceNotFound(f"Entity {entity_id} was not found")
            pk, raw = row
            current = entity_from_storage(orjson.loads(raw))
            new, result = change(current)
            if new is None:
                conn.execute("DELETE FROM entities WHERE pk = ?", (pk,))
                return result
            conn.execute(
                "UPDATE entities SET types = ?, modified_at = ?, doc = ? WHERE pk = ?",
                (
                    orjson.dumps(list(new.types)).decode(),
                    new.modified_at,
                    orjson.dumps(entity_to_storage(new)).decode(),
                    pk,
                ),
            )
            if new.types != current.types:
                conn.execute("DELETE FROM entity_types WHERE entity_pk = ?", (pk,))
                _insert_types(conn, pk, tenant, new.types)
            return result

        return await self._write(job)

    async def delete_entity(self, tenant: str, entity_id: str) -> Entity:
        """Delete one entity and return what it was."""
        return await self.modify_entity(tenant, entity_id, lambda current: (None, current))

    async def count_entities(self, tenant: str) -> int:
        """Entities in the tenant."""
        self._check_tenant(tenant)
        count: int = self._read(
            lambda conn: conn.execute(
                "SELECT count(*) FROM entities WHERE tenant = ?", (tenant,)
            ).fetchone()[0]
        )
        return count

    # -- @contexts -----------------------------------------------------------------------------

    async def put_context(self, context: StoredContext) -> None:
        """Insert or replace a stored @context."""
        document = orjson.dumps(context.document).decode()

        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO jsonld_contexts "
                "(id, url, kind, document, created_at, last_usage, hits) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    context.id,
                    context.url,
                    context.kind,
                    document,
                    context.created_at,
                    context.last_usage,
                    context.hits,
                ),
            )

        await self._write(job)

    async def get_context(self, context_id: str) -> StoredContext | None:
        """A stored @context by id or by its original URL."""
        row = self._read(
            lambda conn: conn.execute(
                f"SELECT {_CONTEXT_COLUMNS} FROM jsonld_contexts WHERE id = ? OR url = ? "  # noqa: S608
                "ORDER BY id = ? DESC LIMIT 1",
                (context_id, context_id, context_id),
            ).fetchone()
        )
        return _context_from_row(row) if row else None

    async def list_contexts(self, kind: str | None = None) -> Sequence[StoredContext]:
        """Stored @contexts, oldest first."""
        sql = f"SELECT {_CONTEXT_COLUMNS} FROM jsonld_contexts"  # noqa: S608
        params: tuple[Any, ...] = ()
        if kind is not None:
            sql += " WHERE kind = ?"
            params = (kind,)
        rows = self._read(
            lambda conn: conn.execute(sql + " ORDER BY created_at, id", params).fetchall()
        )
        return [_context_from_row(row) for row in rows]

    async def touch_context(self, context_id: str, used_at: str) -> None:
        """Count a use of a stored @context."""
        await self._write(
            lambda conn: conn.execute(
                "UPDATE jsonld_contexts SET hits = hits + 1, last_usage = ? WHERE id = ?",
                (used_at, context_id),
            )
        )

    async def delete_context(self, context_id: str) -> bool:
        """Delete a stored @context."""
        cursor: sqlite3.Cursor = await self._write(
            lambda conn: conn.execute("DELETE FROM jsonld_contexts WHERE id = ?", (context_id,))
        )
        return cursor.rowcount > 0

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


_CONTEXT_COLUMNS = "id, url, kind, document, created_at, last_usage, hits"


def _context_from_row(row: tuple[Any, ...]) -> StoredContext:
    return StoredContext(
        id=row[0],
        url=row[1],
        kind=row[2],
        document=orjson.loads(row[3]),
        created_at=row[4],
        last_usage=row[5],
        hits=row[6],
    )


def _insert_types(
    conn: sqlite3.Connection, pk: int | None, tenant: str, types: tuple[str, ...]
) -> None:
    conn.executemany(
        "INSERT INTO entity_types (entity_pk, tenant, type) VALUES (?, ?, ?)",
        [(pk, tenant, t) for t in types],
    )
