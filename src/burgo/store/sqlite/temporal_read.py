# ruff: noqa: S608 - SQL is built from placeholders and fixed names only
"""Reading history: entities selected, instances decoded, aggregations from rollups or raw rows.

Aggregations read the hourly or daily rollups when every period boundary and the time range fall
on that grain and the methods are answerable from count, sum, min, max and sum of squares;
otherwise they aggregate the raw instances with the same pure functions.
"""

from __future__ import annotations

import re
import sqlite3
from bisect import bisect_right
from collections.abc import Sequence
from typing import Any

import orjson

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
from burgo.ngsild.temporal_aggregate import (
    Summary,
    Triple,
    aggregate,
    from_summary,
    period_starts,
)
from burgo.store.history_rows import (
    EntityRow,
    Series,
    decode_row,
    filter_window,
    rollup_grain,
    time_filter,
)
from burgo.store.temporal import HistorySelection

_EVERY_INSTANCE = 2**62


def select_entities(
    conn: sqlite3.Connection,
    tenant: str,
    selection: HistorySelection,
    query: TemporalQuery | None = None,
) -> list[EntityRow]:
    """Every entity of ``tenant`` matching the selection (ids, pattern, types, attrs; q and
    geo-query over the instances in ``query``'s range), by id."""
    sql = "SELECT id, types, created_at, deleted_at FROM history_entities WHERE tenant = ?"
    args: list[Any] = [tenant]
    if selection.ids is not None:
        sql += f" AND id IN ({','.join('?' * len(selection.ids))})"
        args += selection.ids
    if selection.attrs is not None:
        marks = ",".join("?" * len(selection.attrs))
        sql += (
            " AND id IN (SELECT entity_id FROM history_series WHERE tenant = ? "
            f"AND attr IN ({marks}))"
        )
        args += [tenant, *selection.attrs]
    pattern = None
    if selection.id_pattern is not None:
        try:
            pattern = re.compile(selection.id_pattern)
        except re.error as exc:
            raise BadRequestData(f"idPattern is not a valid regular expression: {exc}") from exc
    wanted = set(selection.types) if selection.types is not None else None
    rows = []
    for entity_id, types, created, deleted in conn.execute(sql + " ORDER BY id", args):
        type_list = tuple(orjson.loads(types))
        if wanted is not None and wanted.isdisjoint(type_list):
            continue
        if pattern is not None and not pattern.search(entity_id):
            continue
        rows.append(EntityRow(entity_id, type_list, created, deleted))
    if selection.q is None and selection.geo is None:
        return rows
    return [row for row in rows if _passes_filters(conn, tenant, row, selection, query)]


def _passes_filters(
    conn: sqlite3.Connection,
    tenant: str,
    row: EntityRow,
    selection: HistorySelection,
    query: TemporalQuery | None,
) -> bool:
    """Whether the entity's instances in the query's range pass its q and geo-query."""
    names = filter_attributes(selection.q, selection.geo)
    found: dict[str, list[Attribute]] = {}
    if names:
        window = filter_window(query)
        for series in select_series(conn, tenant, [row.id], names):
            instances, _ = read_instances(conn, series, window, _EVERY_INSTANCE)
            found.setdefault(series.attr, []).extend(i.attribute for i in instances)
    return history_matches(
        selection.q, selection.geo, row.id, row.types, found, from_millis(row.created_at)
    )


def select_series(
    conn: sqlite3.Connection, tenant: str, entity_ids: Sequence[str], attrs: frozenset[str] | None
) -> list[Series]:
    """The series of these entities (only of ``attrs`` when given), by attribute and datasetId."""
    sql = (
        "SELECT id, entity_id, attr, dataset_id, kind, mixed FROM history_series "
        f"WHERE tenant = ? AND entity_id IN ({','.join('?' * len(entity_ids))})"
    )
    args: list[Any] = [tenant, *entity_ids]
    if attrs is not None:
        sql += f" AND attr IN ({','.join('?' * len(attrs))})"
        args += attrs
    return [
        Series(sid, eid, attr, ds or None, AttrKind(kind), bool(mixed))
        for sid, eid, attr, ds, kind, mixed in conn.execute(
            sql + " ORDER BY attr, dataset_id", args
        )
    ]


_COLUMNS = "h.t, h.seq, h.num, h.shape, h.doc, h.rec, s.doc"
_FROM = "FROM history h LEFT JOIN history_shapes s ON s.id = h.shape WHERE h.series = ?"


def _time_filter(query: TemporalQuery) -> tuple[str, str, list[Any]]:
    """The SQL condition, sort key and arguments of the query's range on its time property."""
    return time_filter(query, "?")


def read_instances(
    conn: sqlite3.Connection, series: Series, query: TemporalQuery, limit: int
) -> tuple[list[TemporalInstance], bool]:
    """Instances of a series in the query's range, oldest first (the last N with ``last_n``),
    at most ``limit``; and whether more were left out."""
    where, column, args = _time_filter(query)
    wanted = min(query.last_n, limit) if query.last_n is not None else limit
    backwards = query.last_n is not None
    order = "DESC" if backwards else "ASC"
    rows = conn.execute(
        f"SELECT {_COLUMNS}, {column} {_FROM}{where} ORDER BY {column} {order}, h.seq {order} "
        "LIMIT ?",
        [series.id, *args, wanted + 1],
    ).fetchall()
    more = len(rows) > wanted and (query.last_n is None or query.last_n > limit)
    rows = rows[:wanted]
    if backwards:
        rows.reverse()
    shapes: dict[Any, Any] = {}
    return [_decode(series, row, shapes) for row in rows], more


def _decode(series: Series, row: Sequence[Any], cache: dict[Any, Any]) -> TemporalInstance:
    t, seq, num, shape, doc, rec, shape_doc, time = row
    return decode_row(series, (t, seq, num, shape, doc, rec, shape_doc, time), cache)


def aggregate_series(
    conn: sqlite3.Connection, series: Series, query: TemporalQuery, aggregation: Aggregation
) -> AggregatedSeries | None:
    """The aggregated values of one series (None when it has no instance in range)."""
    where, column, args = _time_filter(query)
    first, last = conn.execute(
        f"SELECT min({column}), max({column}) FROM history h WHERE h.series = ?{where}",
        [series.id, *args],
    ).fetchone()
    grain = rollup_grain(series, query, aggregation)
    if grain is not None and last is None:
        # Raw instances pruned by retention: the rollups still know the range.
        last_bucket = conn.execute(
            "SELECT max(bucket) FROM history_rollups WHERE series = ? AND grain = ? "
            "AND bucket >= ? AND bucket < ?",
            (series.id, grain, query.start, query.end if query.end is not None else 2**62),
        ).fetchone()[0]
        if last_bucket is not None:
            first, last = query.start, last_bucket + grain - 1
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
        values = _from_rollups(conn, series, grain, bounds, aggregation.methods)
    else:
        rows = conn.execute(
            f"SELECT {_COLUMNS}, {column} {_FROM}{where} ORDER BY {column}, h.seq",
            [series.id, *args],
        ).fetchall()
        shapes: dict[Any, Any] = {}
        points = [(row[7], _decode(series, row, shapes).attribute.value) for row in rows]
        values = aggregate(points, aggregation.methods, aggregation.duration, bounds[0], bounds[-1])
    if query.last_n is not None:
        values = {m: triples[-query.last_n :] for m, triples in values.items()}
    return AggregatedSeries(series.kind, series.dataset_id, values)


def _from_rollups(
    conn: sqlite3.Connection, series: Series, grain: int, bounds: list[int], methods: Sequence[str]
) -> dict[str, list[Triple]]:
    summaries: dict[int, Summary] = {}
    rows = conn.execute(
        "SELECT bucket, n, total, low, high, sumsq FROM history_rollups "
        "WHERE series = ? AND grain = ? AND bucket >= ? AND bucket < ? ORDER BY bucket",
        (series.id, grain, bounds[0], bounds[-1]),
    )
    for bucket, n, total, low, high, sumsq in rows:
        index = bisect_right(bounds, bucket) - 1
        summary = Summary(n, total, low, high, sumsq)
        found = summaries.get(index)
        summaries[index] = summary if found is None else found.merge(summary)
    return {
        method: [(from_summary(method, summaries[i]), bounds[i], bounds[i + 1]) for i in summaries]
        for method in methods
    }
