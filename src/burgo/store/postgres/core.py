"""The core of the PostgreSQL backend: the connection pool, schema, tenants and change hooks.

Each concern of the store is a mixin over this core, in a module of its own;
:class:`~burgo.store.postgres.store.PostgresStore` combines them. Every transaction goes through
:meth:`PostgresCore._transaction`, which turns psycopg errors into NGSI-LD errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import replace
from typing import Any, LiteralString

import orjson
import psycopg
from psycopg import AsyncClientCursor, AsyncConnection, AsyncCursor, errors
from psycopg.pq import TransactionStatus
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from burgo.clock import Clock, SystemClock
from burgo.ngsild.errors import (
    BadRequestData,
    InternalError,
    NgsiLdError,
    NonexistentTenant,
    ServiceUnavailable,
)
from burgo.ngsild.times import format_datetime
from burgo.store.base import DEFAULT_TENANT, EntityChangeRecord
from burgo.store.postgres.migrations import migrate

Connection = AsyncConnection[tuple[Any, ...]]

# Called inside the write transaction after each entity write (notification outbox, ...);
# a coroutine it returns is awaited there.
ChangeHook = Callable[[Connection, EntityChangeRecord], Awaitable[None] | None]
# A change hook's set-based form: the changes of many entities (each entity at most once) in a
# few statements deferred to the end of the write block, where the hook costs statements per
# entity. Batch writes call it in place of the hook it is registered for.
ChangesHook = Callable[[Connection, Sequence[EntityChangeRecord]], Awaitable[None]]

# SQLSTATE classes: 08 connection, 53 insufficient resources, 57 operator intervention.
_UNAVAILABLE_CLASSES = ("08", "53", "57")
# Values PostgreSQL cannot hold in text: NUL characters (22021, 22P05).
_UNSTORABLE = (errors.CharacterNotInRepertoire, errors.UntranslatableCharacter)
# What to do once the current task's transaction has committed (wake the notifier, ...).
_after_commit: ContextVar[list[Callable[[], None]] | None] = ContextVar(
    "burgo_after_commit", default=None
)
# Conflicts between concurrent transactions: the same write may well succeed when run again.
RETRY_LATER = (errors.SerializationFailure, errors.DeadlockDetected, errors.LockNotAvailable)
# While the database is lost: seconds a request waits for a connection, and between probes.
_WAIT_WHILE_LOST = 1.0
_PROBE_INTERVAL = 1.0

log = logging.getLogger(__name__)


def translate_error(exc: Exception) -> NgsiLdError:
    """The Burgo error for a psycopg or pool error (server down, busy, value it cannot hold)."""
    if isinstance(exc, PoolTimeout):
        return ServiceUnavailable("No database connection is free or the database is unreachable")
    if isinstance(exc, _UNSTORABLE) or (isinstance(exc, psycopg.DataError) and "NUL" in str(exc)):
        return BadRequestData(
            "The database cannot store this value (text with a NUL character \\u0000)"
        )
    if isinstance(exc, RETRY_LATER):
        return ServiceUnavailable("The database is busy; try again shortly")
    sqlstate = getattr(exc, "sqlstate", None) or ""
    if isinstance(exc, psycopg.OperationalError) and (
        not sqlstate or sqlstate[:2] in _UNAVAILABLE_CLASSES
    ):
        return ServiceUnavailable(f"The database is unavailable: {_first_line(exc)}")
    if sqlstate[:2] in _UNAVAILABLE_CLASSES:
        return ServiceUnavailable(f"The database is unavailable: {_first_line(exc)}")
    return InternalError(f"Database error: {_first_line(exc)}")


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def redacted(url: str) -> str:
    """The database URL without its password, for logs and messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(unparsable address)"
    host = info.get("host") or "localhost"
    port = info.get("port") or "5432"
    user = f"{info['user']}@" if info.get("user") else ""
    return f"postgresql://{user}{host}:{port}/{info.get('dbname') or ''}"


async def _configure(conn: Connection) -> None:
    set_json_loads(orjson.loads, conn)
    # Burgo's queries are short: compiling them (JIT) costs more than it saves. Statements that
    # psycopg prepares are planned for their values each time: how rare a value is (a type, a
    # q term) decides the plan, which a generic plan cannot see.
    await conn.execute("SET jit = off")
    await conn.execute("SET plan_cache_mode = force_custom_plan")
    await conn.commit()


class _WriteBlock:
    """The transaction of :meth:`PostgresCore._write_block`: whether BEGIN is still to be sent,
    and the statements deferred to its end (rows to hand over in one statement are gathered in
    a list that stands for it until then)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.cursor = AsyncClientCursor(conn)
        self.begun = False
        self.deferred: list[str | list[Any]] = []
        self.gathered: dict[tuple[str, tuple[Any, ...]], list[Any]] = {}
        # What to do with the rows of deferred statements, by their place in ``deferred``.
        self.on_rows: dict[int, Callable[[list[Any]], None]] = {}

    async def finish(self) -> None:
        """Send what was deferred, and COMMIT, in one message; then hand the rows of the
        statements that return some to their callbacks."""
        merged = {id(rows): (query, params) for (query, params), rows in self.gathered.items()}
        statements: list[str] = [] if self.begun else ["BEGIN"]
        first = len(statements)
        for each in self.deferred:
            if isinstance(each, str):
                statements.append(each)
            else:
                query, params = merged[id(each)]
                statements.append(self.cursor.mogrify(query, _with_rows(params, each)))
        on_rows = self.on_rows
        self.deferred, self.gathered, self.on_rows = [], {}, {}
        await self.cursor.execute("; ".join([*statements, "COMMIT"]))
        at = 0
        for place, callback in sorted(on_rows.items()):
            while at < first + place:
                self.cursor.nextset()
                at += 1
            callback(await self.cursor.fetchall())


_write_block: ContextVar[_WriteBlock | None] = ContextVar("burgo_write_block", default=None)


def text_array(values: Iterable[str]) -> str:
    """A text[] literal of ``values`` (for ``%s::text[]``): bound as one text, which costs
    psycopg much less than a list."""
    quoted = ('"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"' for value in values)
    return "{" + ",".join(quoted) + "}"


async def read(conn: Connection, query: LiteralString, params: Any = None) -> AsyncCursor[Any]:
    """Run a statement whose result is wanted now; in a write block, the first one carries the
    block's BEGIN."""
    block = _write_block.get()
    if block is None or block.conn is not conn or block.begun:
        return await conn.execute(query, params)
    block.begun = True
    cursor = block.cursor
    await cursor.execute("BEGIN; " + cursor.mogrify(query, params))
    cursor.nextset()
    return cursor


async def read_all(
    conn: Connection, statements: Sequence[tuple[LiteralString, Any]]
) -> list[list[Any]]:
    """The rows of each statement, all of them sent in one message (with the block's BEGIN,
    as :func:`read` does): each statement sees what the ones before it did."""
    block = _write_block.get()
    if block is None or block.conn is not conn:
        results = []
        for query, params in statements:
            cursor = await conn.execute(query, params)
            results.append(await cursor.fetchall() if cursor.description else [])
        return results
    cursor = block.cursor
    texts = [cursor.mogrify(query, params) for query, params in statements]
    if not block.begun:
        block.begun = True
        texts.insert(0, "BEGIN")
        await cursor.execute("; ".join(texts))
        cursor.nextset()
    else:
        await cursor.execute("; ".join(texts))
    results = []
    for n in range(len(statements)):
        if n:
            cursor.nextset()
        results.append(await cursor.fetchall() if cursor.description else [])
    return results


async def defer(conn: Connection, query: LiteralString, params: Any = None) -> None:
    """Run a statement whose result nobody reads and whose effect nothing later in the
    transaction reads: in a write block, at its end with COMMIT; elsewhere at once."""
    block = _write_block.get()
    if block is None or block.conn is not conn:
        await conn.execute(query, params)
    else:
        block.deferred.append(block.cursor.mogrify(query, params))


async def defer_returning(
    conn: Connection,
    query: LiteralString,
    params: Any,
    on_rows: Callable[[list[Any]], None],
) -> None:
    """Like :func:`defer` for a statement whose rows only matter once the transaction has
    committed: in a write block, ``on_rows`` gets them after COMMIT; elsewhere at once."""
    block = _write_block.get()
    if block is None or block.conn is not conn:
        cursor = await conn.execute(query, params)
        on_rows(await cursor.fetchall())
        return
    block.on_rows[len(block.deferred)] = on_rows
    block.deferred.append(block.cursor.mogrify(query, params))


# Stands for the rows in the values of :func:`defer_rows`.
ROWS: Any = object()


async def defer_rows(
    conn: Connection, query: LiteralString, params: tuple[Any, ...], rows: Sequence[Any]
) -> None:
    """Like :func:`defer` for a statement that takes its rows as one JSON array (where ROWS
    stands in ``params``): in a write block, the rows of every such statement with the same
    ``query`` and other values go together in one statement, sent where the first one would
    have been (so it must not matter to the statements deferred between them)."""
    block = _write_block.get()
    if block is None or block.conn is not conn:
        await conn.execute(query, _with_rows(params, rows))
        return
    gathered = block.gathered.get((query, params))
    if gathered is None:
        gathered = block.gathered[(query, params)] = []
        block.deferred.append(gathered)
    gathered.extend(rows)


def _with_rows(params: tuple[Any, ...], rows: Sequence[Any]) -> tuple[Any, ...]:
    text = orjson.dumps(rows).decode()
    return tuple(text if value is ROWS else value for value in params)


def net_changes(records: Sequence[EntityChangeRecord]) -> list[EntityChangeRecord]:
    """Each entity's net change over ``records``, in the order entities first appear: its first
    ``before`` and its last ``after``; an entity made and removed again has none."""
    net: dict[tuple[str, str], EntityChangeRecord] = {}
    for record in records:
        key = (record.tenant, record.entity_id)
        first = net.get(key)
        net[key] = record if first is None else replace(record, before=first.before)
    return [r for r in net.values() if r.before is not None or r.after is not None]


class PostgresCore:
    """The pool, the schema and the tenants of one PostgreSQL database."""

    def __init__(
        self,
        url: str,
        *,
        clock: Clock | None = None,
        min_connections: int = 1,
        max_connections: int = 10,
        connect_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._min = min_connections
        self._max = max_connections
        self._connect_timeout = connect_timeout
        self._pool: AsyncConnectionPool[Connection] | None = None
        self._tenants: set[str] = {DEFAULT_TENANT}
        self._change_hooks: list[ChangeHook] = []
        # Hooks that need only each entity's net change in a transaction (the query indexes):
        # a message of 25 readings rewrites an entity's index rows once, not 25 times.
        self._net_change_hooks: list[ChangeHook] = []
        self._set_based_hooks: dict[ChangeHook, ChangesHook] = {}
        self._commits = 0
        self._probe: asyncio.Task[None] | None = None
        self._reconnecting = False
        # Names this process in the leases it takes (lanes of notifications, scheduled jobs).
        self.process_name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    # -- lifecycle ------------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, create or upgrade the schema and load the tenants."""
        await self.upgrade()
        try:
            self._pool = await self._new_pool()
        except (psycopg.Error, PoolTimeout) as exc:
            raise self._named(translate_error(exc)) from exc
        async with self._transaction() as conn:
            cursor = await conn.execute("SELECT name FROM tenants")
            self._tenants.update(row[0] for row in await cursor.fetchall())

    async def _new_pool(self) -> AsyncConnectionPool[Connection]:
        pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            self.url,
            min_size=self._min,
            max_size=self._max,
            open=False,
            configure=_configure,
            timeout=self._connect_timeout,
            name="burgo",
        )
        try:
            await pool.open(wait=True, timeout=self._connect_timeout)
        except BaseException:  # a connection error, or the store closing meanwhile
            await pool.close()
            raise
        return pool

    async def upgrade(self) -> tuple[int, list[int]]:
        """Create or upgrade the schema only: the schema version now, and the versions applied."""
        try:
            conn = await psycopg.AsyncConnection.connect(
                self.url, connect_timeout=max(1, int(self._connect_timeout))
            )
        except psycopg.Error as exc:
            raise self._named(translate_error(exc)) from exc
        try:
            return await migrate(conn)
        except psycopg.Error as exc:
            raise self._named(translate_error(exc)) from exc
        finally:
            await conn.close()

    async def close(self) -> None:
        """Close every connection (transactions in progress finish first)."""
        if self._probe is not None:
            if self._reconnecting:
                self._probe.cancel()  # else it is closing the pool it replaced: let it finish
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
            self._probe = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    # -- the database going away and coming back ------------------------------------------------

    def _lost(self, error: NgsiLdError) -> None:
        """A connection failed: until a probe connects again, wait briefly for connections
        (requests answer 503 at once rather than after the whole connect timeout)."""
        if self._probe is not None or self._pool is None:
            return
        log.warning("Lost the database %s: %s", redacted(self.url), error.detail)
        self._reconnecting = True
        self._probe = asyncio.create_task(self._reconnect(), name="burgo-database-probe")

    async def _reconnect(self) -> None:
        """Try the database every second; once it answers, swap in a fresh pool (the old one
        may still be waiting out its back-off before reconnecting) and close the old one."""
        try:
            while True:
                try:
                    pool = await self._new_pool()  # open once it has a working connection
                    break
                except (psycopg.Error, PoolTimeout):
                    await asyncio.sleep(_PROBE_INTERVAL)
            old, self._pool = self._pool, pool
            self._reconnecting = False
            log.info("The database %s answers again", redacted(self.url))
            if old is not None:
                await old.close(timeout=self._connect_timeout)
        finally:
            self._reconnecting = False
            self._probe = None

    def _named(self, error: NgsiLdError) -> NgsiLdError:
        return type(error)(f"{error.detail} (database {redacted(self.url)})")

    # -- transactions ---------------------------------------------------------------------------

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Connection]:
        """A pooled connection inside one transaction: committed when the block ends, rolled
        back when it raises; driver errors leave as NGSI-LD errors."""
        if self._pool is None:
            raise ServiceUnavailable("The store is not open")
        actions: list[Callable[[], None]] = []
        token = _after_commit.set(actions)
        wait = _WAIT_WHILE_LOST if self._reconnecting else None
        try:
            async with self._pool.connection(timeout=wait) as conn:
                yield conn
        except (psycopg.Error, PoolTimeout) as exc:
            error = translate_error(exc)
            if isinstance(error, ServiceUnavailable) and not isinstance(exc, RETRY_LATER):
                self._lost(error)
            raise error from exc
        finally:
            _after_commit.reset(token)
        self._commits += 1
        for action in actions:
            action()

    @asynccontextmanager
    async def _write_block(self) -> AsyncIterator[Connection]:
        """A transaction like :meth:`_transaction` that costs two round trips to the database:
        BEGIN travels with the first statement sent through :func:`read`, and the statements
        sent through :func:`defer` travel together with COMMIT when the block ends (in one
        message, their values bound by psycopg). Each statement sent costs Burgo a turn of the
        event loop and the database a wake-up, which for a small write cost more than the work."""
        async with self._transaction() as conn:
            # BEGIN and COMMIT sent as statements of ours: psycopg would wait for each.
            await conn.set_autocommit(True)
            block = _WriteBlock(conn)
            token = _write_block.set(block)
            try:
                yield conn
                await block.finish()
            finally:
                _write_block.reset(token)
                if not conn.broken:
                    if conn.info.transaction_status != TransactionStatus.IDLE:
                        await conn.rollback()
                    await conn.set_autocommit(False)

    def _on_commit(self, action: Callable[[], None]) -> None:
        """Run ``action`` once the current transaction has committed (not if it rolls back)."""
        actions = _after_commit.get()
        if actions is not None and action not in actions:
            actions.append(action)

    async def _check_tenant(self, tenant: str) -> None:
        if not await self.tenant_exists(tenant):
            raise NonexistentTenant(f"Tenant {tenant!r} does not exist")

    async def _ensure_tenant(self, conn: Connection, tenant: str, now: str) -> None:
        if tenant not in self._tenants:
            await conn.execute(
                "INSERT INTO tenants (name, created_at) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (tenant, now),
            )

    async def _entity_changed(self, conn: Connection, record: EntityChangeRecord) -> None:
        """Tell every change hook about an entity write, inside the same transaction."""
        await self._entities_changed(conn, [record])

    async def _entities_changed(
        self, conn: Connection, records: Sequence[EntityChangeRecord]
    ) -> None:
        """Tell the change hooks about a transaction's entity writes, in order: every write to
        the hooks that keep each change (history, notifications), and each entity's net change
        (its first ``before``, its last ``after``) to those that keep only the latest state."""
        for record in records:
            for hook in self._change_hooks:
                outcome = hook(conn, record)
                if outcome is not None:
                    await outcome
        if not self._net_change_hooks:
            return
        for record in net_changes(records):
            for hook in self._net_change_hooks:
                outcome = hook(conn, record)
                if outcome is not None:
                    await outcome

    def _now(self) -> str:
        """The current time in canonical NGSI-LD form, from the store's clock."""
        return format_datetime(self.clock.now())

    # -- tenants --------------------------------------------------------------------------------

    async def tenant_exists(self, tenant: str) -> bool:
        """Whether the tenant exists (another worker may have created it)."""
        if tenant in self._tenants:
            return True
        async with self._transaction() as conn:
            cursor = await conn.execute("SELECT 1 FROM tenants WHERE name = %s", (tenant,))
            found = await cursor.fetchone() is not None
        if found:
            self._tenants.add(tenant)
        return found

    async def list_tenants(self) -> list[str]:
        """All tenants, the default one first."""
        async with self._transaction() as conn:
            cursor = await conn.execute("SELECT name FROM tenants")
            self._tenants.update(row[0] for row in await cursor.fetchall())
        return sorted(self._tenants)

    # -- scheduled jobs -------------------------------------------------------------------------

    async def claim_job(self, job: str, every: float) -> bool:
        """Whether this process runs ``job`` now: the first process to ask in each period of
        ``every`` seconds gets it (a row of ``burgo_jobs`` per job, compared and set)."""
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "INSERT INTO burgo_jobs AS j (name, owner, ran_at) VALUES (%s, %s, now()) "
                "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, ran_at = excluded.ran_at "
                "WHERE j.owner = excluded.owner "
                "OR j.ran_at <= excluded.ran_at - make_interval(secs => %s)",
                (job, self.process_name, every * 0.9),
            )
            return cursor.rowcount > 0

    # -- metrics --------------------------------------------------------------------------------

    def stats(self) -> dict[str, float]:
        """Connections of the pool (open, idle, requests waiting) and transactions run."""
        pool = self._pool.get_stats() if self._pool is not None else {}
        return {
            "burgo_store_connections": pool.get("pool_size", 0),
            "burgo_store_connections_idle": pool.get("pool_available", 0),
            "burgo_store_connection_waits": pool.get("requests_waiting", 0),
            "burgo_store_transactions_total": self._commits,
        }
