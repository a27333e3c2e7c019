"""Copying a town's data from its SQLite file into a PostgreSQL database (``burgo db copy``).

Two steps, each testable on its own:

- :func:`copy_tables` copies the tables both backends lay out alike (tenants, entities, @contexts,
  subscriptions with their delivery status and queued notifications, devices with their status
  and the message ids taken in), row by row with ``COPY``, in one PostgreSQL transaction.
- :func:`copy_history` copies the history (the temporal API) through the Store protocol, entity by
  entity, when both stores keep history; the target records the instances and its own rollups.

Each returns a :class:`TableCount` per table: rows in the source and in the target afterwards.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg import sql

from burgo.ngsild.errors import InvalidRequest, NgsiLdError, OperationNotSupported
from burgo.ngsild.temporal import TemporalQuery
from burgo.store.postgres.core import redacted, translate_error
from burgo.store.sqlite.migrations import available_migrations as sqlite_migrations
from burgo.store.temporal import HistorySelection, HistoryStore

DEFAULT_TENANT = ""

# Called with the table being copied and how many of its rows have been copied so far.
Progress = Callable[[str, int], None]


@dataclass(frozen=True, slots=True)
class Table:
    """A table copied as is: its columns (the same names on both sides) and the source's order."""

    name: str
    columns: tuple[str, ...]
    order: str
    convert: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None = None


@dataclass(frozen=True, slots=True)
class TableCount:
    """Rows of one table in the source and in the target."""

    table: str
    source: int
    target: int

    @property
    def matches(self) -> bool:
        """Whether the target holds as many rows as the source."""
        return self.source == self.target


def _entity_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    # SQLite keeps the types as a JSON array, PostgreSQL as text[].
    return (*row[:2], orjson.loads(row[2]), *row[3:])


def _subscription_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return (*row[:-1], bool(row[-1]))


_DEVICE_STATUS = (
    "tenant", "device_id", "state", "state_since", "last_seen", "battery", "rssi", "snr",
    "gateway", "frame_counter", "messages", "duplicates", "errors", "last_error", "last_error_at",
)  # fmt: skip

_SUBSCRIPTIONS = (
    "tenant", "id", "doc", "times_sent", "times_failed", "last_notification", "last_success",
    "last_failure", "failing",
)  # fmt: skip

# In an order that satisfies the foreign keys (devices before their status and messages).
TABLES: tuple[Table, ...] = (
    Table("tenants", ("name", "created_at"), "name"),
    Table(
        "jsonld_contexts",
        ("id", "url", "kind", "document", "created_at", "last_usage", "hits"),
        "id",
    ),
    Table(
        "entities",
        ("tenant", "id", "types", "created_at", "modified_at", "doc"),
        "pk",
        _entity_row,
    ),
    Table("subscriptions", _SUBSCRIPTIONS, "pk", _subscription_row),
    Table(
        "notification_outbox",
        ("tenant", "subscription_id", "changes", "created_at", "attempts"),
        "seq",
    ),
    Table("devices", ("tenant", "id", "dev_eui", "created_at", "doc"), "tenant, id"),
    Table("device_status", _DEVICE_STATUS, "tenant, device_id"),
    Table(
        "device_messages",
        ("tenant", "device_id", "message_id", "received_at"),
        "tenant, device_id, message_id",
    ),
)
HISTORY = "history (entities)"
# What PostgreSQL derives from the copied tables: the query indexes (rebuilt from the entities
# by the fill the next opening of the store runs) and the history (copied after the tables).
# ``--force`` empties them with the tables, so nothing of the replaced data stays behind.
DERIVED = (
    "entity_attr_values",
    "entity_type_ids",
    "entity_geo",
    "entity_type_counts",
    "history_rollups",
    "history",
    "history_series",
    "history_shapes",
    "history_entities",
)


def open_source(path: Path) -> sqlite3.Connection:
    """The SQLite file, read-only; InvalidRequest unless it is a Burgo database whose schema
    this Burgo knows."""
    if not path.is_file():
        raise InvalidRequest(f"No SQLite database at {path}")
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    latest = sqlite_migrations()[-1].version
    if version != latest:
        conn.close()
        raise InvalidRequest(
            f"{path} has schema version {version}, this Burgo copies version {latest}: run "
            f"`burgo db migrate --db {path}` first"
            if version < latest
            else f"{path} has schema version {version}, newer than this Burgo knows ({latest})"
        )
    return conn


def source_counts(source: sqlite3.Connection) -> dict[str, int]:
    """Rows per copied table in the SQLite file."""
    return {
        t.name: int(source.execute(f"SELECT count(*) FROM {t.name}").fetchone()[0])  # noqa: S608
        for t in TABLES
    }


def target_counts(target: psycopg.Connection[Any]) -> dict[str, int]:
    """Rows per copied table in the PostgreSQL database."""
    found = {}
    for table in TABLES:
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table.name))
        row = target.execute(query).fetchone()
        found[table.name] = int(row[0]) if row else 0
    return found


def copy_tables(
    source: sqlite3.Connection,
    url: str,
    *,
    replace: bool = False,
    progress: Progress | None = None,
    batch: int = 1000,
) -> list[TableCount]:
    """Copy every table of :data:`TABLES` into the (migrated) PostgreSQL database at ``url``,
    all or nothing; refuse a target holding data unless ``replace``, which empties it first."""
    try:
        with psycopg.connect(url) as target:
            before = target_counts(target)
            if any(before.values()) and not replace:
                held = ", ".join(f"{n} {name}" for name, n in before.items() if n)
                raise InvalidRequest(
                    f"The database {redacted(url)} already holds data ({held}); copy into an "
                    "empty database, or pass --force to replace its data"
                )
            if replace:
                emptied = [*(t.name for t in TABLES), *DERIVED]
                names = sql.SQL(", ").join(map(sql.Identifier, emptied))
                target.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(names))
            for table in TABLES:
                _copy_table(source, target, table, progress, batch)
            # The store indexes the copied entities when it next opens (a database that was
            # opened before has finished its first fill and would not index them).
            target.execute(
                "INSERT INTO burgo_backfill (name) VALUES ('query_indexes') ON CONFLICT DO NOTHING"
            )
            after = target_counts(target)
    except psycopg.Error as exc:
        raise translate_error(exc) from exc
    counts = source_counts(source)
    return [TableCount(t.name, counts[t.name], after[t.name]) for t in TABLES]


def _copy_table(
    source: sqlite3.Connection,
    target: psycopg.Connection[Any],
    table: Table,
    progress: Progress | None,
    batch: int,
) -> None:
    columns = ", ".join(table.columns)
    rows = source.execute(f"SELECT {columns} FROM {table.name} ORDER BY {table.order}")  # noqa: S608
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, table.columns))
    )
    done = 0
    with target.cursor() as cursor, cursor.copy(statement) as copy:
        while chunk := rows.fetchmany(batch):
            for row in chunk:
                copy.write_row(table.convert(row) if table.convert else row)
            done += len(chunk)
            if progress is not None:
                progress(table.name, done)


async def keeps_history(store: HistoryStore) -> bool:
    """Whether the store keeps history (a backend without it answers OperationNotSupported)."""
    try:
        await store.count_history(DEFAULT_TENANT, HistorySelection())
    except OperationNotSupported:
        return False
    return True


async def copy_history(
    source: HistoryStore,
    target: HistoryStore,
    tenants: Sequence[str],
    *,
    progress: Progress | None = None,
    page: int = 100,
) -> TableCount:
    """Copy every entity's recorded instances and the retention policies from ``source`` to
    ``target`` (both keeping history); entities with history in each, afterwards."""
    for policy in await source.list_retention():
        await target.set_retention(policy.tenant, policy.entity_type, policy.raw_days)
    done = 0
    everything = TemporalQuery()
    for tenant in tenants:
        offset = 0
        while True:
            selection = HistorySelection(limit=page, offset=offset)
            found = await source.query_history(
                tenant, selection, everything, max_instances=2**31 - 1
            )
            for entity in found.entities:
                attrs = {
                    name: tuple(i.attribute for i in instances if i.deleted_at is None)
                    for name, instances in entity.attrs.items()
                }
                await target.add_history(tenant, entity.id, entity.types, attrs)
            done += len(found.entities)
            if progress is not None:
                progress(HISTORY, done)
            if len(found.entities) < page:
                break
            offset += page
    source_total = target_total = 0
    for tenant in tenants:
        source_total += await _count(source, tenant)
        target_total += await _count(target, tenant)
    return TableCount(HISTORY, source_total, target_total)


async def _count(store: HistoryStore, tenant: str) -> int:
    try:
        return await store.count_history(tenant, HistorySelection())
    except NgsiLdError:
        return 0
