# ruff: noqa: S608 - SQL is built from placeholders and fixed names only
"""Reading history in PostgreSQL: entities selected, instances decoded, aggregations from
rollups or raw rows (the same rules as on SQLite: see :mod:`burgo.store.history_rows`)."""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from typing import Any

from burgo.ngsild.errors import BadRequestData, TooManyResults
from burgo.ngsild.model import Attribute, AttrKind
from burgo.ngsild.temporal import (
    AggregatedSeries,
    Aggregation,
    TemporalInstance,
    TemporalQuery,
    filter_attributes,
    from_millis,
    history_matches,
)
from burgo.ngsild.temporal_aggregate import Summary, Triple, aggregate, from_summary, period_starts
from burgo.store.history_rows import (
    EntityRow,
    Series,
    decode_row,
    filter_window,
    rollup_grain,
    time_filter,
)
from burgo.store.postgres.core import Connection
from burgo.store.temporal import HistorySelection

_EVERY_INSTANCE = 2**62
_COLUMNS = "h.t, h.seq, h.whole, h.num, h.shape, h.doc, h.rec"
# Read in key order from one index, no join: shapes are looked up in ShapeDocs.
_FROM = "FROM history h WHERE h.tenant = %s AND h.series = %s"
_SHAPE = 4


class ShapeDocs:
    """The documents of interned shapes by id, read once per process (shapes are only added)."""

    def __init__(self) -> None:
        self.docs: dict[int, str] = {}

    async def complete(self, conn: Connection, rows: Sequence[Sequence[Any]]) -> None:
        """Read the documents of the shapes ``rows`` use that are not known yet."""
        missing = {
            row[_SHAPE]
            for row in rows
            if row[_SHAPE] is not None and row[_SHAPE] >= 0 and row[_SHAPE] not in self.docs
        }
        if missing:
            cursor = await conn.execute(
                "SELECT id, doc FROM history_shapes WHERE id = ANY(%s)", (list(missing),)
            )
            self.docs.update(await cursor.fetchall())


async def select_entities(
    conn: Connection,
    tenant: str,
    selection: HistorySelection,
    shapes: ShapeDocs,
    query: TemporalQuery | None = None,
) -> list[EntityRow]:
    """Every entity of ``tenant`` matching the selection (ids, pattern, types, attrs; q and
    geo-query over the instances in ``query``'s range), by id."""
    sql = "SELECT id, types, created_at, deleted_at FROM history_entities e WHERE tenant = %s"
    args: list[Any] = [tenant]
    if selection.ids is not None:
        sql += " AND id = ANY(%s)"
        args.append(list(selection.ids))
    if selection.types is not None:
        sql += " AND types && %s::text[]"
        args.append(list(selection.types))
    if selection.attrs is not None:
        sql += (
            " AND EXISTS (SELECT 1 FROM history_series s WHERE s.tenant = e.tenant "
            "AND s.entity_id = e.id AND s.attr = ANY(%s))"
        )
        args.append(list(selection.attrs))
    pattern = None
    if selection.id_pattern is not None:
        try:
            pattern = re.compile(selection.id_pattern)
        except re.error as exc:
            raise BadRequestData(f"idPattern is not a valid regular expression: {exc}") from exc
    cursor = await conn.execute(sql + " ORDER BY id", args)
    rows = [
        EntityRow(entity_id, tuple(types), created, deleted)
        for entity_id, types, created, deleted in await cursor.fetchall()
        if pattern is None or pattern.search(entity_id)
    ]
    if selection.q is None and selection.geo is None:
        return rows
    return [
        row for row in rows if await _passes_filters(conn, tenant, row, selection, shapes, query)
    ]


async def _passes_filters(
    conn: Connection,
    tenant: str,
    row: EntityRow,
    selection: HistorySelection,
    shapes: ShapeDocs,
    query: TemporalQuery | None,
) -> bool:
    """Whether the entity's instances in the query's range pass its q and geo-query."""
    names = filter_attributes(selection.q, selection.geo)
    found: dict[str, list[Attribute]] = {}
    if names:
        window = filter_window(query)
        for series in await select_series(conn, tenant, [row.id], names):
            instances, _ = await read_instances(
                conn, tenant, series, window, _EVERY_INSTANCE, shapes
            )
            found.setdefault(series.attr, []).extend(i.attribute for i in instances)
    return history_matches(
        selection.q, selection.geo, row.id, row.types, found, from_millis(row.created_at)
    )


async def select_series(
    conn: Connection, tenant: str, entity_ids: Sequence[str], attrs: frozenset[str] | None
) -> list[Series]:
    """The series of these entities (only of ``attrs`` when given), by attribute and datasetId."""
    sql = (
        "SELECT id, entity_id, attr, dataset_id, kind, mixed FROM history_series "
        "WHERE tenant = %s AND entity_id = ANY(%s)"
    )
    args: list[Any] = [tenant, list(entity_ids)]
    if attrs is not None:
        sql += " AND attr = ANY(%s)"
        args.append(list(attrs))
    cursor = await conn.execute(sql + " ORDER BY attr, dataset_id", args)
    return [
        Series(sid, eid, attr, ds or None, AttrKind(kind), bool(mixed))
        for sid, eid, attr, ds, kind, mixed in await cursor.fetchall()
    ]


def _time_filter(query: TemporalQuery) -> tuple[str, str, list[Any]]:
    """The SQL condition, sort key and arguments of the query's range on its time property."""
    return time_filter(query, "%s")


async def read_instances(
    conn: Connection,
    tenant: str,
    series: Series,
    query: TemporalQuery,
    limit: int,
    shapes: ShapeDocs,
) -> tuple[list[TemporalInstance], bool]:
    """Instances of a series in the query's range, oldest first (the last N with ``last_n``),
    at most ``limit``; and whether more were left out."""
    where, column, args = _time_filter(query)
    wanted = min(query.last_n, limit) if query.last_n is not None else limit
    backwards = query.last_n is not None
    order = "DESC" if backwards else "ASC"
    cursor = await conn.execute(
        f"SELECT {_COLUMNS}, {column} {_FROM}{where} ORDER BY {column} {order}, h.seq {order} "
        "LIMIT %s",
        [tenant, series.id, *args, wanted + 1],
    )
    rows = await cursor.fetchall()
    more = len(rows) > wanted and (query.last_n is None or query.last_n > limit)
    rows = rows[:wanted]
    if backwards:
        rows.reverse()
    await shapes.complete(conn, rows)
    cache: dict[Any, Any] = {}
    return [decode(series, row, cache, shapes.docs) for row in rows], more


def decode(
    series: Series, row: Sequence[Any], cache: dict[Any, Any], shape_docs: Mapping[int, str]
) -> TemporalInstance:
    """The instance of a history row (selected as ``_COLUMNS`` and its time)."""
    t, seq, whole, num, shape, doc, rec, time = row
    shape_doc = shape_docs.get(shape) if shape is not None else None
    if num is not None and whole:
        num = int(num)
    return decode_row(series, (t, seq, num, shape, doc, rec, shape_doc, time), cache)


async def aggregate_series(
    conn: Connection,
    tenant: str,
    series: Series,
    query: TemporalQuery,
    aggregation: Aggregation,
    shapes: ShapeDocs,
) -> AggregatedSeries | None:
    """The aggregated values of one series (None when it has no instance in range)."""
    where, column, args = _time_filter(query)
    cursor = await conn.execute(
        f"SELECT min({column}), max({column}) FROM history h "
        f"WHERE h.tenant = %s AND h.series = %s{where}",
        [tenant, series.id, *args],
    )
    bounds_row = await cursor.fetchone()
    first, last = bounds_row if bounds_row is not None else (None, None)
    grain = rollup_grain(series, query, aggregation)
    if grain is not None and last is None:
        # Raw instances pruned by retention: the rollups still know the range.
        cursor = await conn.execute(
            "SELECT max(bucket) FROM history_rollups WHERE tenant = %s AND series = %s "
            "AND grain = %s AND bucket >= %s AND bucket < %s",
            (tenant, series.id, grain, query.start, query.end if query.end is not None else 2**62),
        )
        found = await cursor.fetchone()
        if found is not None and found[0] is not None:
            first, last = query.start, found[0] + grain - 1
    if first is None or last is None:
        return None
    origin = query.start if query.start is not None else first
    end = query.end if query.end is not None else last + 1
    try:
        bounds = period_starts(origin, end, aggregation.duration)
    except OverflowError as exc:
        raise TooManyResults(
            "aggrPeriodDuration is too short for this time range; use a longer period"
        ) from exc
    if grain is not None:
        values = await _from_rollups(conn, tenant, series, grain, bounds, aggregation.methods)
    else:
        cursor = await conn.execute(
            f"SELECT {_COLUMNS}, {column} {_FROM}{where} ORDER BY {column}, h.seq",
            [tenant, series.id, *args],
        )
        rows = await cursor.fetchall()
        await shapes.complete(conn, rows)
        cache: dict[Any, Any] = {}
        points = [(row[7], decode(series, row, cache, shapes.docs).attribute.value) for row in rows]
        values = aggregate(points, aggregation.methods, aggregation.duration, bounds[0], bounds[-1])
    if query.last_n is not None:
        values = {m: triples[-query.last_n :] for m, triples in values.items()}
    return AggregatedSeries(series.kind, series.dataset_id, values)


async def _from_rollups(
    conn: Connection,
    tenant: str,
    series: Series,
    grain: int,
    bounds: list[int],
    methods: Sequence[str],
) -> dict[str, list[Triple]]:
    summaries: dict[int, Summary] = {}
    cursor = await conn.execute(
        "SELECT bucket, n, total, low, high, sumsq, whole FROM history_rollups "
        "WHERE tenant = %s AND series = %s AND grain = %s AND bucket >= %s AND bucket < %s "
        "ORDER BY bucket",
        (tenant, series.id, grain, bounds[0], bounds[-1]),
    )
    for bucket, n, total, low, high, sumsq, whole in await cursor.fetchall():
        index = bisect_right(bounds, bucket) - 1
        if whole:
            low, high = int(low), int(high)
        summary = Summary(n, total, low, high, sumsq)
        found = summaries.get(index)
        summaries[index] = summary if found is None else found.merge(summary)
    return {
        method: [(from_summary(method, summaries[i]), bounds[i], bounds[i + 1]) for i in summaries]
        for method in methods
    }
