"""History in PostgreSQL: recorded by a change hook in every entity write's transaction, in a
history table partitioned by month, read back over time, aggregated from hourly and daily
rollups, imported, corrected and pruned by retention policy (whole months emptied at once when
every policy lets them go)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
from psycopg import sql
from psycopg_pool import PoolTimeout

from burgo.ngsild.duration import DAY
from burgo.ngsild.errors import BadRequestData, ResourceNotFound, ServiceUnavailable
from burgo.ngsild.model import Attribute, Instances
from burgo.ngsild.temporal import (
    Aggregation,
    TemporalQuery,
    from_millis,
    to_millis,
)
from burgo.store.base import EntityChangeRecord
from burgo.store.history_rows import (
    Memo,
    parse_instance_id,
    raw_days,
    recorded_at,
    temporal_entity,
)
from burgo.store.postgres.core import Connection, PostgresCore, translate_error
from burgo.store.postgres.temporal_read import (
    ShapeDocs,
    aggregate_series,
    read_instances,
    select_entities,
    select_series,
)
from burgo.store.postgres.temporal_write import (
    Encoded,
    add_to_rollups,
    encode,
    month_after,
    month_of,
    partition_name,
    recompute_rollups,
    record_change,
    record_changes,
    series_ids,
    touch_entity,
)
from burgo.store.temporal import (
    HistoryPage,
    HistorySelection,
    PruneReport,
    RetentionPolicy,
)

# Any fixed number: the key of the advisory lock under which a worker adds a partition.
_PARTITION_LOCK = 0x6275_7267_6F01
_HISTORY_TABLES = ("history_entities", "history_series", "history_shapes", "history_rollups")
_COPY = "COPY history (tenant, series, t, seq, whole, num, shape, doc, rec) FROM STDIN"


class PostgresTemporal(PostgresCore):
    """The history of entities (the temporal API) on PostgreSQL."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._shapes: dict[str, int] = {}
        self._shape_docs = ShapeDocs()
        self._months: set[int] = set()
        self._history_figures: dict[str, float] = {}
        self._change_hooks.append(self._record_history)
        self._set_based_hooks[self._record_history] = self._record_histories

    async def open(self) -> None:
        """Open the store, make sure this month and the next have partitions, and measure the
        history for /metrics."""
        await super().open()
        now = to_millis(self.clock.now())
        await self._ensure_months([now, month_after(month_of(now))])
        await self.history_stats()

    async def _record_history(self, conn: Connection, record: EntityChangeRecord) -> None:
        await record_change(conn, record, self._shape_ids, self._ensure_months)

    async def _record_histories(
        self, conn: Connection, records: Sequence[EntityChangeRecord]
    ) -> None:
        await record_changes(conn, records, self._shape_ids, self._ensure_months)

    # -- what is only ever added: shapes and partitions -------------------------------------------

    @asynccontextmanager
    async def _side_connection(self) -> AsyncIterator[Connection]:
        """A connection of its own (not the pool's) that commits each statement at once."""
        try:
            conn = await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, connect_timeout=max(1, int(self._connect_timeout))
            )
        except psycopg.Error as exc:
            raise translate_error(exc) from exc
        try:
            yield conn
        except psycopg.Error as exc:
            raise translate_error(exc) from exc
        finally:
            await conn.close()

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[Connection]:
        """A pooled connection for reads: each statement on its own (no BEGIN and COMMIT round
        trips, which a busy machine makes costly); driver errors leave as NGSI-LD errors."""
        if self._pool is None:
            raise ServiceUnavailable("The store is not open")
        try:
            async with self._pool.connection() as conn:
                await conn.set_autocommit(True)
                try:
                    yield conn
                finally:
                    await conn.set_autocommit(False)
        except (psycopg.Error, PoolTimeout) as exc:
            raise translate_error(exc) from exc

    async def _shape_ids(self, docs: Sequence[str]) -> Mapping[str, int]:
        """The ids of interned shapes, added (and committed) if new."""
        missing = [doc for doc in dict.fromkeys(docs) if doc not in self._shapes]
        if missing:
            async with self._side_connection() as side:
                for doc in missing:
                    await side.execute(
                        "INSERT INTO history_shapes (doc) VALUES (%s) ON CONFLICT DO NOTHING",
                        (doc,),
                    )
                cursor = await side.execute(
                    "SELECT doc, id FROM history_shapes WHERE doc = ANY(%s)", (missing,)
                )
                self._shapes.update(await cursor.fetchall())
        return self._shapes

    async def _ensure_months(self, times: Iterable[int]) -> None:
        """Make sure the history table has a partition for the month of each time."""
        missing = {month_of(t) for t in set(times)} - self._months  # writes share times
        if not missing:
            return
        async with self._side_connection() as side:
            await self._load_months(side)
            for start in sorted(missing - self._months):
                await self._add_partition(side, start)
                self._months.add(start)

    async def _load_months(self, conn: Connection) -> None:
        cursor = await conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'history'::regclass"
        )
        for (name,) in await cursor.fetchall():
            digits = name.removeprefix("history_")
            if len(digits) == 6 and digits.isdigit():
                self._months.add(month_of(_month_start(int(digits[:4]), int(digits[4:]))))

    async def _add_partition(self, side: Connection, start: int) -> None:
        """Create the month's partition, then attach it: attaching locks the history table
        only against other schema changes, never against the writes and reads going on."""
        name = sql.Identifier(partition_name(start))
        try:
            end: sql.Composable = sql.Literal(month_after(start))
        except (OverflowError, ValueError):
            end = sql.SQL("MAXVALUE")
        async with side.transaction():
            await side.execute("SELECT pg_advisory_xact_lock(%s)", (_PARTITION_LOCK,))
            cursor = await side.execute(
                "SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass(%s)",
                (partition_name(start),),
            )
            if await cursor.fetchone() is not None:
                return
            await side.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {} (LIKE history INCLUDING DEFAULTS)").format(
                    name
                )
            )
            await side.execute(
                sql.SQL(
                    "ALTER TABLE history ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})"
                ).format(name, sql.Literal(start), end)
            )

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
        await self._check_tenant(tenant)
        async with self._reading() as conn:
            rows = await select_entities(conn, tenant, selection, self._shape_docs, query)
            rows = rows[selection.offset : selection.offset + selection.limit]
            if not rows:
                return HistoryPage([])
            by_entity: dict[str, dict[str, list[Any]]] = {row.id: {} for row in rows}
            truncated, times = False, list[int]()
            for series in await select_series(conn, tenant, list(by_entity), selection.attrs):
                attrs = by_entity[series.entity_id]
                if aggregation is not None:
                    aggregated = await aggregate_series(
                        conn, tenant, series, query, aggregation, self._shape_docs
                    )
                    if aggregated is not None:
                        attrs.setdefault(series.attr, []).append(aggregated)
                    continue
                instances, more = await read_instances(
                    conn, tenant, series, query, max_instances, self._shape_docs
                )
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

    async def count_history(
        self, tenant: str, selection: HistorySelection, query: TemporalQuery | None = None
    ) -> int:
        """Entities with history matching the selection (q and geo-query in ``query``'s range)."""
        await self._check_tenant(tenant)
        async with self._reading() as conn:
            return len(await select_entities(conn, tenant, selection, self._shape_docs, query))

    # -- provision -------------------------------------------------------------------------------

    async def add_history(
        self,
        tenant: str,
        entity_id: str,
        types: tuple[str, ...] | None,
        attrs: Mapping[str, Instances],
    ) -> bool:
        """Import instances (e.g. historic data); instances already recorded at the same time
        are skipped, so an import can be run again."""
        now = to_millis(self.clock.now())
        if types is None:
            await self._check_tenant(tenant)
        memo = Memo()
        items = [
            encode((entity_id, name, attr.dataset_id or ""), attr, recorded_at(attr, now), memo)
            for name, instances in attrs.items()
            for attr in instances
        ]
        async with self._transaction() as conn:
            if types is None:
                cursor = await conn.execute(
                    "SELECT 1 FROM history_entities WHERE tenant = %s AND id = %s FOR UPDATE",
                    (tenant, entity_id),
                )
                if await cursor.fetchone() is None:
                    raise ResourceNotFound(f"Entity {entity_id} has no history")
                created = False
            else:
                await self._ensure_tenant(conn, tenant, from_millis(now))
                created = await touch_entity(conn, tenant, entity_id, types, now)
            if items:
                await self._import(conn, tenant, items)
        self._tenants.add(tenant)
        return created

    async def _import(self, conn: Connection, tenant: str, items: Sequence[Encoded]) -> None:
        ids = await series_ids(conn, tenant, items)
        by_series: dict[int, list[Encoded]] = {}
        for item, (series, _) in zip(items, ids, strict=True):
            by_series.setdefault(series, []).append(item)
        fresh: list[tuple[int, Encoded]] = []
        for series, rows in by_series.items():
            cursor = await conn.execute(
                "SELECT t FROM history WHERE tenant = %s AND series = %s AND t >= %s AND t <= %s",
                (tenant, series, min(r.t for r in rows), max(r.t for r in rows)),
            )
            existing = {row[0] for row in await cursor.fetchall()}
            first: dict[int, Encoded] = {}
            for row in rows:
                if row.t not in existing:
                    first.setdefault(row.t, row)
            fresh += [(series, row) for row in first.values()]
        if not fresh:
            return
        docs = [row.shape for _, row in fresh if isinstance(row.shape, str)]
        shapes = await self._shape_ids(docs) if docs else {}
        await self._ensure_months(row.t for _, row in fresh)
        points: dict[int, list[tuple[int, float, bool]]] = {}
        async with conn.cursor() as cursor, cursor.copy(_COPY) as copy:
            for series, row in fresh:
                shape = shapes[row.shape] if isinstance(row.shape, str) else row.shape
                await copy.write_row(
                    (tenant, series, row.t, 0, row.whole, row.num, shape, row.doc, row.rec)
                )
                if row.num is not None:
                    points.setdefault(series, []).append((row.t, row.num, row.whole))
        await add_to_rollups(conn, tenant, points)

    async def delete_history(self, tenant: str, entity_id: str) -> None:
        """Forget an entity's whole history."""
        await self._check_tenant(tenant)
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "DELETE FROM history_entities WHERE tenant = %s AND id = %s", (tenant, entity_id)
            )
            if cursor.rowcount == 0:
                raise ResourceNotFound(f"Entity {entity_id} has no history")
            cursor = await conn.execute(
                "SELECT id FROM history_series WHERE tenant = %s AND entity_id = %s",
                (tenant, entity_id),
            )
            await _delete_series(conn, tenant, [row[0] for row in await cursor.fetchall()])

    async def delete_history_attr(
        self, tenant: str, entity_id: str, attr: str, dataset_id: str | None, delete_all: bool
    ) -> None:
        """Forget one attribute's history (one datasetId, or all of them)."""
        await self._check_tenant(tenant)
        query = "SELECT id FROM history_series WHERE tenant = %s AND entity_id = %s AND attr = %s"
        args: list[Any] = [tenant, entity_id, attr]
        if not delete_all:
            query += " AND dataset_id = %s"
            args.append(dataset_id or "")
        async with self._transaction() as conn:
            cursor = await conn.execute(query, args)
            ids = [row[0] for row in await cursor.fetchall()]
            if not ids:
                raise ResourceNotFound(f"Entity {entity_id} has no history of {attr}")
            await _delete_series(conn, tenant, ids)

    async def modify_history_instance(
        self,
        tenant: str,
        entity_id: str,
        attr: str,
        instance_id: str,
        change: Callable[[Attribute], Attribute],
    ) -> None:
        """Replace one recorded instance by ``change`` of it (observedAt cannot move)."""
        await self._check_tenant(tenant)
        key = parse_instance_id(instance_id)
        missing = ResourceNotFound(f"No instance {instance_id} of {attr} in {entity_id}")
        if key is None:
            raise missing
        series_id, t, seq = key
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "SELECT 1 FROM history_series s JOIN history h ON h.tenant = s.tenant "
                "AND h.series = s.id AND h.t = %s AND h.seq = %s "
                "WHERE s.tenant = %s AND s.id = %s AND s.entity_id = %s AND s.attr = %s "
                "AND (h.shape IS NULL OR h.shape >= 0) FOR UPDATE OF h",
                (t, seq, tenant, series_id, entity_id, attr),
            )
            if await cursor.fetchone() is None:
                raise missing
            series = next(
                s
                for s in await select_series(conn, tenant, [entity_id], frozenset({attr}))
                if s.id == series_id
            )
            instances, _ = await read_instances(
                conn, tenant, series, TemporalQuery(t, t + 1), 10_000, self._shape_docs
            )
            current = next(i for i in instances if i.instance_id == instance_id)
            new = change(current.attribute)
            if new.observed_at != current.attribute.observed_at:
                raise BadRequestData("The observedAt of a recorded instance cannot be changed")
            rec = to_millis(self.clock.now())
            row = encode(("", "", ""), new, rec, Memo())
            members = _members(row)
            members["modifiedAt"] = from_millis(rec)
            if row.num is None:
                await conn.execute(
                    "UPDATE history_series SET mixed = true WHERE tenant = %s AND id = %s",
                    (tenant, series_id),
                )
            # A row with a document is read on the general path, which shows its modifiedAt.
            await conn.execute(
                "UPDATE history SET whole = %s, num = %s, shape = NULL, doc = %s "
                "WHERE tenant = %s AND series = %s AND t = %s AND seq = %s",
                (row.whole, row.num, orjson.dumps(members).decode(), tenant, *key),
            )
            await recompute_rollups(conn, tenant, series_id, (t,))

    # -- retention -------------------------------------------------------------------------------

    async def set_retention(self, tenant: str, entity_type: str, raw_days: int | None) -> None:
        """Keep raw instances ``raw_days`` for the tenant and entity type (None: no policy)."""
        async with self._transaction() as conn:
            if raw_days is None:
                await conn.execute(
                    "DELETE FROM history_retention WHERE tenant = %s AND entity_type = %s",
                    (tenant, entity_type),
                )
            else:
                await conn.execute(
                    "INSERT INTO history_retention VALUES (%s, %s, %s) "
                    "ON CONFLICT (tenant, entity_type) DO UPDATE SET raw_days = excluded.raw_days",
                    (tenant, entity_type, raw_days),
                )

    async def list_retention(self) -> Sequence[RetentionPolicy]:
        """Every retention policy, by tenant and type."""
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "SELECT tenant, entity_type, raw_days FROM history_retention ORDER BY 1, 2"
            )
            rows = await cursor.fetchall()
        return [RetentionPolicy(*row) for row in rows]

    async def prune_history(self, now_ms: int, default_raw_days: int | None) -> PruneReport:
        """Remove raw instances older than their policy allows, whole days at a time; a month
        older than every entity's cutoff is emptied as a whole partition."""
        policies = {(p.tenant, p.entity_type): p.raw_days for p in await self.list_retention()}
        async with self._transaction() as conn:
            cursor = await conn.execute("SELECT tenant, id, types FROM history_entities")
            entities = await cursor.fetchall()
        work: dict[tuple[str, int], list[str]] = {}
        kept_for_ever = False
        for tenant, entity_id, types in entities:
            days = raw_days(policies, tenant, types, default_raw_days)
            if days is None:
                kept_for_ever = True
                continue
            cutoff = now_ms - days * DAY
            cutoff -= cutoff % DAY
            work.setdefault((tenant, cutoff), []).append(entity_id)
        removed, touched = 0, set()
        if work and not kept_for_ever:
            emptied, series = await self._empty_months(min(cutoff for _, cutoff in work))
            removed += emptied
            touched |= series
        for (tenant, cutoff), entity_ids in work.items():
            async with self._transaction() as conn:
                cursor = await conn.execute(
                    "WITH gone AS (DELETE FROM history h USING history_series s "
                    "WHERE h.tenant = %s AND s.tenant = h.tenant AND s.id = h.series "
                    "AND s.entity_id = ANY(%s) AND h.t < %s RETURNING h.series) "
                    "SELECT count(*), coalesce(array_agg(DISTINCT series), '{}') FROM gone",
                    (tenant, entity_ids, cutoff),
                )
                row = await cursor.fetchone()
            if row is not None:
                removed += row[0]
                touched |= set(row[1])
        await self.history_stats()
        return PruneReport(removed, len(touched))

    async def _empty_months(self, cutoff: int) -> tuple[int, set[int]]:
        """Empty at once the partitions of months that end before ``cutoff``: the instances and
        series they held. Each month stays attached (empty), so no process can miss it when a late
        instance for it comes; TRUNCATE frees its disk at once and leaves nothing for VACUUM."""
        async with self._side_connection() as side:
            await self._load_months(side)
            removed, series = 0, set[int]()
            for start in sorted(self._months):
                try:
                    end = month_after(start)
                except (OverflowError, ValueError):
                    break
                if end > cutoff:
                    break
                name = sql.Identifier(partition_name(start))
                cursor = await side.execute(
                    sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(name)
                )
                found = await cursor.fetchone()
                if found is None or not found[0]:
                    continue
                async with side.transaction():
                    # Locked first, so the rows counted are the rows removed.
                    await side.execute(
                        sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(name)
                    )
                    cursor = await side.execute(
                        sql.SQL(
                            "SELECT count(*), coalesce(array_agg(DISTINCT series), '{{}}') FROM {}"
                        ).format(name)
                    )
                    row = await cursor.fetchone()
                    if row is not None:
                        removed += row[0]
                        series |= set(row[1])
                    await side.execute(sql.SQL("TRUNCATE {}").format(name))
        return removed, series

    async def history_stats(self) -> dict[str, float]:
        """Instances, rollup rows and bytes of the history tables (cached for ``stats``)."""
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "SELECT (SELECT count(*) FROM history), (SELECT count(*) FROM history_rollups), "
                "(SELECT coalesce(sum(pg_total_relation_size(relid)), 0) "
                "FROM pg_partition_tree('history')) + "
                "(SELECT coalesce(sum(pg_total_relation_size(to_regclass(name))), 0) "
                "FROM unnest(%s::text[]) AS name)",
                (list(_HISTORY_TABLES),),
            )
            row = await cursor.fetchone()
        assert row is not None
        self._history_figures = {
            "burgo_history_instances": row[0],
            "burgo_history_rollup_rows": row[1],
            "burgo_history_bytes": float(row[2]),
        }
        return dict(self._history_figures)

    def stats(self) -> dict[str, float]:
        """The core's gauges plus the history's (as last measured)."""
        return {**super().stats(), **self._history_figures}


def _month_start(year: int, month: int) -> int:
    return to_millis(datetime(year, month, 1, tzinfo=UTC))


def _members(row: Encoded) -> dict[str, Any]:
    """The stored document of an encoded instance (its shape or document, or a plain one)."""
    if row.doc is not None:
        members: dict[str, Any] = orjson.loads(row.doc)
        return members
    if isinstance(row.shape, str):
        shaped: dict[str, Any] = orjson.loads(row.shape)
        return shaped
    return {"type": "Property"}


async def _delete_series(conn: Connection, tenant: str, ids: Sequence[int]) -> None:
    for table, column in (("history", "series"), ("history_rollups", "series"),
                          ("history_series", "id")):  # fmt: skip
        await conn.execute(
            sql.SQL("DELETE FROM {} WHERE tenant = %s AND {} = ANY(%s)").format(
                sql.Identifier(table), sql.Identifier(column)
            ),
            (tenant, list(ids)),
        )
