# ruff: noqa: S608 - SQL is built from placeholders and fixed names only
"""History in SQLite: recorded by a change hook in every entity write's transaction, read back
over time, aggregated from rollups, imported, corrected and pruned by retention policy."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from burgo.ngsild.duration import DAY
from burgo.ngsild.errors import BadRequestData, ResourceNotFound
from burgo.ngsild.model import Attribute, Instances
from burgo.ngsild.temporal import (
    Aggregation,
    TemporalQuery,
    from_millis,
    to_millis,
)
from burgo.store.history_rows import (
    parse_instance_id,
    raw_days,
    recorded_at,
    temporal_entity,
)
from burgo.store.sqlite.core import SqliteCore, StoredChange
from burgo.store.sqlite.temporal_read import (
    aggregate_series,
    read_instances,
    select_entities,
    select_series,
)
from burgo.store.sqlite.temporal_write import (
    HistoryWriter,
    Row,
    add_to_rollups,
    numeric_points,
    recompute_rollups,
    record_changes,
    record_created,
    series_id,
    touch_entity,
)
from burgo.store.temporal import (
    HistoryPage,
    HistorySelection,
    PruneReport,
    RetentionPolicy,
)

_HISTORY_TABLES = (
    "history",
    "history_rollups",
    "history_series",
    "history_series_key",
    "history_shapes",
    "sqlite_autoindex_history_shapes_1",
    "history_entities",
)


class SqliteTemporal(SqliteCore):
    """The history of entities (the temporal API) on SQLite."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._history = HistoryWriter()
        self._history_figures: dict[str, float] = {}
        self._batch_hooks.append(self._record_history)
        self._plain_forms[self._record_history] = self._record_created

    async def open(self) -> None:
        """Open the store, then measure the history for /metrics."""
        await super().open()
        await self.history_stats()

    def _record_history(self, conn: sqlite3.Connection, changes: Sequence[StoredChange]) -> None:
        record_changes(conn, self._history, changes)

    def _record_created(
        self, conn: sqlite3.Connection, keys: str, changes: Sequence[StoredChange]
    ) -> None:
        record_created(conn, self._history, keys, changes)

    # -- reading ---------------------------------------------------------------------------------

    async def query_history(
        self,
        tenant: str,
        selection: HistorySelection,
        query: TemporalQuery,
        *,
        max_instances: int,
        aggregation: Aggregation | None = None,
    ) -> HistoryPage:
        """Entities with their instances in range (or aggregated), a page of them."""
        self._check_tenant(tenant)

        def read(conn: sqlite3.Connection) -> HistoryPage:
            rows = select_entities(conn, tenant, selection, query)
            rows = rows[selection.offset : selection.offset + selection.limit]
            if not rows:
                return HistoryPage([])
            by_entity: dict[str, dict[str, list[Any]]] = {row.id: {} for row in rows}
            truncated, times = False, list[int]()
            for series in select_series(conn, tenant, list(by_entity), selection.attrs):
                attrs = by_entity[series.entity_id]
                if aggregation is not None:
                    aggregated = aggregate_series(conn, series, query, aggregation)
                    if aggregated is not None:
                        attrs.setdefault(series.attr, []).append(aggregated)
                    continue
                instances, more = read_instances(conn, series, query, max_instances)
                truncated = truncated or more
                if instances:
                    times += (instances[0].time, instances[-1].time)
                    attrs.setdefault(series.attr, []).extend(instances)
            entities = [
                temporal_entity(row, by_entity[row.id], aggregation is not None) for row in rows
            ]
            return HistoryPage(
                entities, truncated, min(times) if times else None, max(times) if times else None
            )

        return await self._read_in_thread(read)

    async def count_history(
        self, tenant: str, selection: HistorySelection, query: TemporalQuery | None = None
    ) -> int:
        """Entities with history matching the selection (q and geo-query in ``query``'s range)."""
        self._check_tenant(tenant)
        return len(
            await self._read_in_thread(lambda c: select_entities(c, tenant, selection, query))
        )

    # -- provision -------------------------------------------------------------------------------

    async def add_history(
        self,
        tenant: str,
        entity_id: str,
        types: tuple[str, ...] | None,
        attrs: Mapping[str, Instances],
    ) -> bool:
        """Import instances (e.g. historic data); instances already recorded at the same time
        are skipped, so an import can be run again. An instance is recorded at its modifiedAt
        when it has one (a copied history keeps its times), else now."""
        now = to_millis(self.clock.now())
        writer = self._history

        def job(conn: sqlite3.Connection) -> bool:
            if types is None:
                self._check_tenant(tenant)
                known = conn.execute(
                    "SELECT 1 FROM history_entities WHERE tenant = ? AND id = ?",
                    (tenant, entity_id),
                ).fetchone()
                if known is None:
                    raise ResourceNotFound(f"Entity {entity_id} has no history")
                created = False
            else:
                self._ensure_tenant(conn, tenant, from_millis(now))
                created = touch_entity(conn, tenant, entity_id, types, now)
            for name, instances in attrs.items():
                by_dataset: dict[str | None, list[Row]] = {}
                for attr in instances:
                    by_dataset.setdefault(attr.dataset_id, []).append(
                        writer.encode(conn, attr, recorded_at(attr, now))
                    )
                for dataset_id, rows in by_dataset.items():
                    _import_rows(conn, (tenant, entity_id, name, dataset_id or ""), instances, rows)
            return created

        created = await self._write(job)
        self._tenants.add(tenant)
        return created

    async def delete_history(self, tenant: str, entity_id: str) -> None:
        """Forget an entity's whole history."""
        self._check_tenant(tenant)

        def job(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                "DELETE FROM history_entities WHERE tenant = ? AND id = ?", (tenant, entity_id)
            )
            if cursor.rowcount == 0:
                raise ResourceNotFound(f"Entity {entity_id} has no history")
            ids = [r[0] for r in conn.execute(
                "SELECT id FROM history_series WHERE tenant = ? AND entity_id = ?",
                (tenant, entity_id),
            )]  # fmt: skip
            _delete_series(conn, ids)

        await self._write(job)

    async def delete_history_attr(
        self, tenant: str, entity_id: str, attr: str, dataset_id: str | None, delete_all: bool
    ) -> None:
        """Forget one attribute's history (one datasetId, or all of them)."""
        self._check_tenant(tenant)

        def job(conn: sqlite3.Connection) -> None:
            sql = "SELECT id FROM history_series WHERE tenant = ? AND entity_id = ? AND attr = ?"
            args: list[Any] = [tenant, entity_id, attr]
            if not delete_all:
                sql += " AND dataset_id = ?"
                args.append(dataset_id or "")
            ids = [r[0] for r in conn.execute(sql, args)]
            if not ids:
                raise ResourceNotFound(f"Entity {entity_id} has no history of {attr}")
            _delete_series(conn, ids)

        await self._write(job)

    async def modify_history_instance(
        self,
        tenant: str,
        entity_id: str,
        attr: str,
        instance_id: str,
        change: Callable[[Attribute], Attribute],
    ) -> None:
        """Replace one recorded instance by ``change`` of it (observedAt cannot move)."""
        self._check_tenant(tenant)
        key = parse_instance_id(instance_id)
        writer = self._history

        def job(conn: sqlite3.Connection) -> None:
            found = None
            if key is not None:
                found = conn.execute(
                    "SELECT s.id, s.dataset_id, s.kind, s.mixed FROM history_series s "
                    "JOIN history h ON h.series = s.id AND h.t = ? AND h.seq = ? "
                    "WHERE s.id = ? AND s.tenant = ? AND s.entity_id = ? AND s.attr = ? "
                    "AND (h.shape IS NULL OR h.shape >= 0)",
                    (key[1], key[2], key[0], tenant, entity_id, attr),
                ).fetchone()
            if found is None or key is None:
                raise ResourceNotFound(f"No instance {instance_id} of {attr} in {entity_id}")
            series = next(
                s
                for s in select_series(conn, tenant, [entity_id], frozenset({attr}))
                if s.id == key[0]
            )
            instances, _ = read_instances(conn, series, TemporalQuery(key[1], key[1] + 1), 10_000)
            current = next(i for i in instances if i.instance_id == instance_id)
            new = change(current.attribute)
            if new.observed_at != current.attribute.observed_at:
                raise BadRequestData("The observedAt of a recorded instance cannot be changed")
            rec = to_millis(self.clock.now())
            _, num, shape, doc, _ = writer.encode(conn, new, rec)
            doc = _with_modified_at(conn, shape, doc, from_millis(rec))
            shape = None
            if num is None:
                conn.execute("UPDATE history_series SET mixed = 1 WHERE id = ?", (key[0],))
            conn.execute(
                "UPDATE history SET num = ?, shape = ?, doc = ? "
                "WHERE series = ? AND t = ? AND seq = ?",
                (num, shape, doc, *key),
            )
            recompute_rollups(conn, key[0], (key[1],))

        await self._write(job)

    # -- retention -------------------------------------------------------------------------------

    async def set_retention(self, tenant: str, entity_type: str, raw_days: int | None) -> None:
        """Keep raw instances ``raw_days`` for the tenant and entity type (None: no policy)."""

        def job(conn: sqlite3.Connection) -> None:
            if raw_days is None:
                conn.execute(
                    "DELETE FROM history_retention WHERE tenant = ? AND entity_type = ?",
                    (tenant, entity_type),
                )
            else:
                conn.execute(
                    "INSERT OR REPLACE INTO history_retention VALUES (?, ?, ?)",
                    (tenant, entity_type, raw_days),
                )

        await self._write(job)

    async def list_retention(self) -> Sequence[RetentionPolicy]:
        """Every retention policy, by tenant and type."""
        rows = await self._read_in_thread(
            lambda c: c.execute(
                "SELECT tenant, entity_type, raw_days FROM history_retention ORDER BY 1, 2"
            ).fetchall()
        )
        return [RetentionPolicy(*row) for row in rows]

    async def prune_history(self, now_ms: int, default_raw_days: int | None) -> PruneReport:
        """Remove raw instances older than their policy allows, whole days at a time."""
        policies = {(p.tenant, p.entity_type): p.raw_days for p in await self.list_retention()}

        def plan(conn: sqlite3.Connection) -> list[tuple[list[int], int]]:
            work = []
            for tenant, entity_id, types in conn.execute(
                "SELECT tenant, id, types FROM history_entities"
            ).fetchall():
                days = raw_days(policies, tenant, orjson.loads(types), default_raw_days)
                if days is None:
                    continue
                cutoff = now_ms - days * DAY
                cutoff -= cutoff % DAY
                ids = [r[0] for r in conn.execute(
                    "SELECT id FROM history_series WHERE tenant = ? AND entity_id = ?",
                    (tenant, entity_id),
                )]  # fmt: skip
                work.append((ids, cutoff))
            return work

        removed, touched = 0, 0
        for ids, cutoff in await self._read_in_thread(plan):
            for sid in ids:

                def job(conn: sqlite3.Connection, sid: int = sid, cutoff: int = cutoff) -> int:
                    return conn.execute(
                        "DELETE FROM history WHERE series = ? AND t < ?", (sid, cutoff)
                    ).rowcount

                count = await self._write(job)
                removed += count
                touched += 1 if count else 0
        await self.history_stats()
        return PruneReport(removed, touched)

    async def history_stats(self) -> dict[str, float]:
        """Instances, rollup rows and bytes of the history tables (cached for ``stats``)."""

        def read(conn: sqlite3.Connection) -> dict[str, float]:
            instances = conn.execute("SELECT count(*) FROM history").fetchone()[0]
            rollups = conn.execute("SELECT count(*) FROM history_rollups").fetchone()[0]
            marks = ",".join("?" * len(_HISTORY_TABLES))
            size = conn.execute(
                f"SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name IN ({marks})",
                _HISTORY_TABLES,
            ).fetchone()[0]
            return {
                "burgo_history_instances": instances,
                "burgo_history_rollup_rows": rollups,
                "burgo_history_bytes": size,
            }

        self._history_figures = await self._read_in_thread(read)
        return dict(self._history_figures)

    def stats(self) -> dict[str, float]:
        """The core's gauges plus the history's (as last measured)."""
        return {**super().stats(), **self._history_figures}


def _with_modified_at(
    conn: sqlite3.Connection, shape: int | None, doc: str | None, modified_at: str
) -> str:
    """The stored document of a corrected instance: its members and when it was corrected
    (a row with a document is read on the general path, which shows that ``modifiedAt``)."""
    if doc is not None:
        members = orjson.loads(doc)
    elif shape is not None:
        found = conn.execute("SELECT doc FROM history_shapes WHERE id = ?", (shape,)).fetchone()
        members = orjson.loads(found[0])
    else:
        members = {"type": "Property"}
    members["modifiedAt"] = modified_at
    return orjson.dumps(members).decode()


def _import_rows(
    conn: sqlite3.Connection,
    key: tuple[str, str, str, str],
    instances: Instances,
    rows: list[Row],
) -> None:
    numeric = all(row[1] is not None for row in rows)
    sid = series_id(conn, key, instances[0].kind.value, mixed=not numeric)
    low, high = min(r[0] for r in rows), max(r[0] for r in rows)
    existing = {
        r[0]
        for r in conn.execute(
            "SELECT t FROM history WHERE series = ? AND t >= ? AND t <= ?", (sid, low, high)
        )
    }
    fresh: dict[int, Row] = {}
    for row in rows:
        if row[0] not in existing:
            fresh.setdefault(row[0], row)
    conn.executemany(
        "INSERT INTO history (series, t, seq, num, shape, doc, rec) VALUES (?, ?, 0, ?, ?, ?, ?)",
        [(sid, *row) for row in fresh.values()],
    )
    for series, points in numeric_points([(sid, r) for r in fresh.values()]).items():
        add_to_rollups(conn, series, points)


def _delete_series(conn: sqlite3.Connection, ids: Sequence[int]) -> None:
    for table, column in (("history", "series"), ("history_rollups", "series"),
                          ("history_series", "id")):  # fmt: skip
        conn.executemany(f"DELETE FROM {table} WHERE {column} = ?", [(i,) for i in ids])
