"""The embedded SQLite backend: WAL, one writer thread, readers on their own connections."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any, TypeVar

import orjson

from burgo.ngsild.errors import (
    AlreadyExists,
    InternalError,
    NgsiLdError,
    NonexistentTenant,
    ResourceNotFound,
    ServiceUnavailable,
)
from burgo.ngsild.model import Entity, entity_from_storage, entity_to_storage
from burgo.store.base import DEFAULT_TENANT, EntityChange, StoredContext
from burgo.store.sqlite.migrations import migrate, schema_version
from burgo.store.sqlite.writer import SqliteWriter

T = TypeVar("T")


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


class SqliteStore:
    """The Store protocol on one SQLite file.

    >>> store = SqliteStore("burgo-data/burgo.db")   # then: await store.open()
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "FULL",
        busy_timeout: float = 30.0,
    ) -> None:
        self.path = Path(path)
        self._synchronous = synchronous
        self._busy_timeout = busy_timeout
        self._writer = SqliteWriter(self._connect_writer)
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._tenants: set[str] = {DEFAULT_TENANT}
        self._opened = False

    # -- connections -------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=self._busy_timeout
        )
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        conn.execute("PRAGMA foreign_keys = ON")
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
                    (
                        tenant,
                        entity.id,
                        types,
                        entity.created_at or "",
                        entity.modified_at or "",
                        doc,
                    ),
                )
            except sqlite3.IntegrityError as exc:
                if exc.sqlite_errorcode == sqlite3.SQLITE_CONSTRAINT_UNIQUE:
                    raise AlreadyExists(f"Entity {entity.id} already exists") from exc
                raise
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
                    new.modified_at or "",
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
        [(pk, tenant, t) for t in dict.fromkeys(types)],
    )
