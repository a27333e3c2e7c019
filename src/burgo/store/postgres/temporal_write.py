"""Writing history rows in PostgreSQL: instances encoded compactly, series found or created,
rollups kept in step, all inside the transaction of the entity write (or import) that causes it.

Two things are created outside that transaction, on a connection of their own that commits at
once: the monthly partitions of the history table and the interned shapes. Both are only ever
added, so a worker may remember them, and neither waits on a lock a write transaction holds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from burgo.ngsild.model import ATTRIBUTE_MEMBERS, Attribute, AttrKind
from burgo.ngsild.temporal import to_millis
from burgo.ngsild.temporal_aggregate import is_number
from burgo.store.base import EntityChangeRecord
from burgo.store.history_rows import (
    DELETED,
    GRAINS,
    PLAIN,
    Memo,
    changed_instances,
    history_doc,
)
from burgo.store.postgres.core import ROWS, Connection, defer, defer_rows

# A row of the history table after its tenant and series: t, whole, num, shape, doc, rec.
Row = tuple[int, bool, float | None, int | None, str | None, int | None]
# Integers beyond this are kept exactly in the row's document, not as a double; numbers beyond
# beyond _HUGE or closer to zero than _TINY too (their squares would overflow or underflow, which
# PostgreSQL refuses).
_EXACT = 2**53
_HUGE = 1e150
_TINY = 1e-150
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SeriesKey = tuple[str, str, str]  # entity id, attribute, datasetId ('' for none)

ShapeIds = Callable[[Sequence[str]], Awaitable[Mapping[str, int]]]
Months = Callable[[Iterable[int]], Awaitable[None]]

_ADD_ROLLUPS = (
    "INSERT INTO history_rollups AS x "
    "(tenant, series, grain, bucket, n, total, low, high, sumsq, whole) "
    "SELECT %(tenant)s, u.* FROM json_to_recordset(%(rollups)s::json) AS u(series bigint, "
    "grain integer, bucket bigint, n bigint, total float8, low float8, high float8, "
    "sumsq float8, whole boolean) "
    "ON CONFLICT (tenant, series, grain, bucket) DO UPDATE SET "
    "n = x.n + excluded.n, total = x.total + excluded.total, low = least(x.low, excluded.low), "
    "high = greatest(x.high, excluded.high), sumsq = x.sumsq + excluded.sumsq, "
    "whole = x.whole AND excluded.whole"
)
_ROLLUP_FIELDS = ("series", "grain", "bucket", "n", "total", "low", "high", "sumsq", "whole")


def _moment(t: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=t)


def month_of(t: int) -> int:
    """The epoch ms at which the month (UTC) holding ``t`` begins."""
    moment = _moment(t)
    return to_millis(datetime(moment.year, moment.month, 1, tzinfo=UTC))


def month_after(start: int) -> int:
    """The epoch ms at which the month after the one beginning at ``start`` begins."""
    moment = _moment(start)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return to_millis(datetime(year, month, 1, tzinfo=UTC))


def partition_name(start: int) -> str:
    """The name of the history partition of the month beginning at ``start``."""
    moment = _moment(start)
    return f"history_{moment.year:04d}{moment.month:02d}"


class Encoded:
    """An instance to record: its series key and kind, and its row (shape still a document)."""

    __slots__ = ("doc", "key", "kind", "num", "rec", "shape", "t", "whole")

    def __init__(
        self,
        key: SeriesKey,
        kind: str,
        t: int,
        whole: bool,
        num: float | None,
        shape: str | int | None,
        doc: str | None,
        rec: int | None,
    ) -> None:
        self.key, self.kind, self.t, self.whole, self.num = key, kind, t, whole, num
        self.shape, self.doc, self.rec = shape, doc, rec

    @property
    def mixed(self) -> bool:
        """Whether the instance is not a number (its series' rollups cannot answer for it)."""
        return self.num is None and self.shape != DELETED


def _storable(value: float) -> bool:
    return value == 0 or _TINY <= abs(value) <= _HUGE


def encode(key: SeriesKey, attr: Attribute, rec: int, memo: Memo) -> Encoded:
    """The row of one instance recorded at ``rec`` (epoch ms); the shape as its document."""
    observed = memo.millis(attr.observed_at) if attr.observed_at is not None else None
    t = observed if observed is not None else rec
    rec_col = rec if observed is not None else None
    value = attr.value
    kind = attr.kind.value
    if (
        attr.kind == AttrKind.PROPERTY
        and is_number(value)
        and (_storable(value) if type(value) is float else -_EXACT <= value <= _EXACT)
    ):
        whole = type(value) is int
        rest = history_doc(attr, True, with_value=False)
        if rest == PLAIN:
            return Encoded(key, kind, t, whole, float(value), None, None, rec_col)
        text = orjson.dumps(rest).decode()
        if all(name in ATTRIBUTE_MEMBERS for name in rest):
            return Encoded(key, kind, t, whole, float(value), text, None, rec_col)
        return Encoded(key, kind, t, whole, float(value), None, text, rec_col)
    return Encoded(
        key, kind, t, False, None, None, orjson.dumps(history_doc(attr, True)).decode(), rec_col
    )


def deletion(key: SeriesKey, attr: Attribute, at: int) -> Encoded:
    """The record of an attribute instance's deletion at ``at``."""
    return Encoded(key, attr.kind.value, at, False, None, DELETED, attr.kind.value, None)


async def touch_entity(
    conn: Connection, tenant: str, entity_id: str, types: Sequence[str], at: int
) -> bool:
    """Record that an entity exists (with these types) from ``at``; True if it had no history."""
    cursor = await conn.execute(
        "INSERT INTO history_entities AS e (tenant, id, types, created_at, deleted_at) "
        "VALUES (%s, %s, %s, %s, NULL) ON CONFLICT (tenant, id) "
        "DO UPDATE SET types = excluded.types, deleted_at = NULL RETURNING (xmax = 0)",
        (tenant, entity_id, list(dict.fromkeys(types)), at),
    )
    row = await cursor.fetchone()
    return bool(row and row[0])


async def series_ids(
    conn: Connection, tenant: str, wanted: Sequence[Encoded]
) -> list[tuple[int, bool]]:
    """The ids of the series of the wanted instances, in order, each with whether it was created
    now; marks mixed (not only numbers) the series of instances that are not numbers."""
    entity_ids = list(dict.fromkeys(e.key[0] for e in wanted))
    cursor = await conn.execute(
        "SELECT id, entity_id, attr, dataset_id, mixed FROM history_series "
        "WHERE tenant = %s AND entity_id = ANY(%s)",
        (tenant, entity_ids),
    )
    known: dict[SeriesKey, list[Any]] = {
        (eid, attr, ds): [sid, mixed] for sid, eid, attr, ds, mixed in await cursor.fetchall()
    }
    new = {e.key: e for e in wanted if e.key not in known}
    fresh: set[int] = set()
    if new:
        keys = list(new)
        cursor = await conn.execute(
            "INSERT INTO history_series (tenant, entity_id, attr, dataset_id, kind, mixed) "
            "SELECT %s, u.* FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], "
            "%s::boolean[]) AS u ON CONFLICT DO NOTHING RETURNING id, entity_id, attr, dataset_id",
            (tenant, [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
             [new[k].kind for k in keys], [new[k].mixed for k in keys]),
        )  # fmt: skip
        for sid, eid, attr, ds in await cursor.fetchall():
            known[(eid, attr, ds)] = [sid, new[(eid, attr, ds)].mixed]
            fresh.add(sid)
        if len(fresh) < len(keys):  # another worker created some at the same moment
            return await series_ids(conn, tenant, wanted)
    remixed: dict[int, None] = {}
    for item in wanted:
        found = known[item.key]
        if item.mixed and not found[1]:
            found[1] = True
            remixed[found[0]] = None
    if remixed:
        await conn.execute(
            "UPDATE history_series SET mixed = true WHERE tenant = %s AND id = ANY(%s)",
            (tenant, list(remixed)),
        )
    return [(known[e.key][0], known[e.key][0] in fresh) for e in wanted]


def rollup_rows(
    tenant: str, points: Mapping[int, Sequence[tuple[int, float, bool]]]
) -> list[tuple[Any, ...]]:
    """The hourly and daily rollup rows of numeric ``(t, value, whole)`` points, by series."""
    rows: list[tuple[Any, ...]] = []
    for grain in GRAINS:
        for series, series_points in points.items():
            buckets: dict[int, list[Any]] = {}
            for t, value, whole in series_points:
                bucket = t - t % grain
                acc = buckets.get(bucket)
                if acc is None:
                    buckets[bucket] = [1, value, value, value, value * value, whole]
                else:
                    acc[0] += 1
                    acc[1] += value
                    acc[2] = value if value < acc[2] else acc[2]
                    acc[3] = value if value > acc[3] else acc[3]
                    acc[4] += value * value
                    acc[5] = acc[5] and whole
            rows += [(tenant, series, grain, b, *acc) for b, acc in buckets.items()]
    return rows


def rollups_json(points: Mapping[int, Sequence[tuple[int, float, bool]]]) -> str:
    """The rollup rows of ``points`` as the JSON ``_ADD_ROLLUPS`` takes."""
    rows = rollup_rows("", points)
    return orjson.dumps([dict(zip(_ROLLUP_FIELDS, row[1:], strict=True)) for row in rows]).decode()


async def add_to_rollups(
    conn: Connection, tenant: str, points: Mapping[int, Sequence[tuple[int, float, bool]]]
) -> None:
    """Add numeric ``(t, value, whole)`` points, by series, to the hourly and daily rollups."""
    if points:
        await conn.execute(_ADD_ROLLUPS, {"tenant": tenant, "rollups": rollups_json(points)})


async def recompute_rollups(
    conn: Connection, tenant: str, series: int, times: Iterable[int]
) -> None:
    """Rebuild from the raw rows the rollup buckets holding ``times`` (after a delete or patch)."""
    for grain in GRAINS:
        for bucket in {t - t % grain for t in times}:
            cursor = await conn.execute(
                "SELECT count(num), coalesce(sum(num), 0), min(num), max(num), "
                "coalesce(sum(num * num), 0), coalesce(bool_and(whole), true) FROM history "
                "WHERE tenant = %s AND series = %s AND t >= %s AND t < %s AND num IS NOT NULL",
                (tenant, series, bucket, bucket + grain),
            )
            row = await cursor.fetchone()
            assert row is not None
            if row[0] == 0:
                await conn.execute(
                    "DELETE FROM history_rollups WHERE tenant = %s AND series = %s "
                    "AND grain = %s AND bucket = %s",
                    (tenant, series, grain, bucket),
                )
            else:
                await conn.execute(
                    "INSERT INTO history_rollups VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (tenant, series, grain, bucket) DO UPDATE SET n = excluded.n, "
                    "total = excluded.total, low = excluded.low, high = excluded.high, "
                    "sumsq = excluded.sumsq, whole = excluded.whole",
                    (tenant, series, grain, bucket, *row),
                )


async def start_entity(
    conn: Connection,
    tenant: str,
    entity_id: str,
    types: Sequence[str],
    at: int,
    items: Sequence[Encoded],
) -> None:
    """Record a new entity (or one seen again) with its types from ``at``, and create the series
    of ``items`` that do not exist yet, in one statement (recording their rows then marks them
    mixed where needed)."""
    await conn.execute(
        "WITH e AS (INSERT INTO history_entities (tenant, id, types, created_at, deleted_at) "
        "VALUES (%(tenant)s, %(id)s, %(types)s, %(at)s, NULL) ON CONFLICT (tenant, id) "
        "DO UPDATE SET types = excluded.types, deleted_at = NULL) "
        "INSERT INTO history_series (tenant, entity_id, attr, dataset_id, kind, mixed) "
        "SELECT %(tenant)s, u.* FROM json_to_recordset(%(series)s::json) AS u(entity_id text, "
        "attr text, dataset_id text, kind text, mixed boolean) ON CONFLICT DO NOTHING",
        {"tenant": tenant, "id": entity_id, "types": list(dict.fromkeys(types)), "at": at,
         "series": orjson.dumps(_series_rows(items)).decode()},
    )  # fmt: skip


def _series_rows(items: Iterable[Encoded]) -> list[dict[str, Any]]:
    """The series of ``items`` as the statements creating them take them."""
    return [
        {"entity_id": e.key[0], "attr": e.key[1], "dataset_id": e.key[2], "kind": e.kind,
         "mixed": e.mixed}
        for e in items
    ]  # fmt: skip


async def record_rows(
    conn: Connection, tenant: str, items: Sequence[Encoded], shapes: ShapeIds, months: Months
) -> None:
    """Insert the instances of ``items`` and add them to the rollups, creating their series if
    new: a call of ``burgo_record_history_set`` (migration 0011), whose result nobody waits
    for; one call for every write of a write block."""
    shape_docs = [e.shape for e in items if isinstance(e.shape, str)]
    shape_ids = await shapes(shape_docs) if shape_docs else {}
    await months(e.t for e in items)
    rows = [
        {
            "entity_id": item.key[0], "attr": item.key[1], "dataset_id": item.key[2],
            "kind": item.kind, "mixed": item.mixed, "t": item.t, "whole": item.whole,
            "num": item.num, "doc": item.doc, "rec": item.rec,
            "shape": shape_ids[item.shape] if isinstance(item.shape, str) else item.shape,
        }
        for item in items
    ]  # fmt: skip
    await defer_rows(conn, "SELECT burgo_record_history_set(%s, %s::json)", (tenant, ROWS), rows)


class WriteHistory:
    """What one entity write adds to the history: its time, the rows of its changed instances
    (``new``) and then of its removed ones (``items`` holds both), whether the entity is new,
    its types when it starts or changes them, and whether it ended."""

    __slots__ = ("at", "created", "ended", "items", "new", "types")

    def __init__(self, record: EntityChangeRecord) -> None:
        memo = Memo()
        entity_id = record.entity_id
        self.at = at = memo.millis(record.at, "time of the change") if record.at else 0
        before, after = record.before, record.after
        self.created = before is None
        self.ended = after is None
        self.types: list[str] | None = None
        if after is None:
            assert before is not None
            deleted = [(n, a) for n, instances in before.attrs.items() for a in instances]
            self.new: list[Encoded] = []
        else:
            changed, deleted = changed_instances(before, after)
            self.new = [encode((entity_id, n, a.dataset_id or ""), a, at, memo) for n, a in changed]
            if before is None or before.types != after.types:
                self.types = list(dict.fromkeys(after.types))
        self.items = self.new + [
            deletion((entity_id, n, a.dataset_id or ""), a, at) for n, a in deleted
        ]


async def record_change(
    conn: Connection, record: EntityChangeRecord, shapes: ShapeIds, months: Months
) -> None:
    """The history of one entity write, in its transaction: changed instances as new values,
    removed ones as deletion records, the entity's types and deletion time."""
    tenant, entity_id = record.tenant, record.entity_id
    written = WriteHistory(record)
    if written.ended:
        await conn.execute(
            "UPDATE history_entities SET deleted_at = %s WHERE tenant = %s AND id = %s",
            (written.at, tenant, entity_id),
        )
    elif written.types is not None:
        if written.created:  # a new entity: its series are most likely new too
            await start_entity(conn, tenant, entity_id, written.types, written.at, written.new)
        else:
            await touch_entity(conn, tenant, entity_id, written.types, written.at)
    if written.items:
        await record_rows(conn, tenant, written.items, shapes, months)


# The entities of many writes recorded as existing (new, seen again or retyped) from their time,
# and the series of their new instances created, in one statement.
_START_ENTITIES = (
    "WITH e AS (INSERT INTO history_entities (tenant, id, types, created_at, deleted_at) "
    "SELECT %(tenant)s, u.id, u.types, u.at, NULL FROM json_to_recordset(%(entities)s::json) "
    "AS u(id text, types text[], at bigint) ON CONFLICT (tenant, id) "
    "DO UPDATE SET types = excluded.types, deleted_at = NULL) "
    "INSERT INTO history_series (tenant, entity_id, attr, dataset_id, kind, mixed) "
    "SELECT %(tenant)s, u.* FROM json_to_recordset(%(series)s::json) AS u(entity_id text, "
    "attr text, dataset_id text, kind text, mixed boolean) ON CONFLICT DO NOTHING"
)
_END_ENTITIES = (
    "UPDATE history_entities h SET deleted_at = u.at "
    "FROM json_to_recordset(%s::json) AS u(id text, at bigint) "
    "WHERE h.tenant = %s AND h.id = u.id"
)


async def record_changes(
    conn: Connection, records: Sequence[EntityChangeRecord], shapes: ShapeIds, months: Months
) -> None:
    """The history of many entity writes of one tenant, each entity at most once, as
    :func:`record_change` records each: in at most three statements, deferred."""
    if not records:
        return
    tenant = records[0].tenant
    started: list[dict[str, Any]] = []
    series: list[dict[str, Any]] = []
    ended: list[dict[str, Any]] = []
    items: list[Encoded] = []
    for record in records:
        written = WriteHistory(record)
        if written.ended:
            ended.append({"id": record.entity_id, "at": written.at})
        elif written.types is not None:
            started.append({"id": record.entity_id, "types": written.types, "at": written.at})
            if written.created:  # a new entity: its series are most likely new too
                series += _series_rows(written.new)
        items += written.items
    if ended:
        await defer(conn, _END_ENTITIES, (orjson.dumps(ended).decode(), tenant))
    if started:
        await defer(
            conn,
            _START_ENTITIES,
            {"tenant": tenant, "entities": orjson.dumps(started).decode(),
             "series": orjson.dumps(series).decode()},
        )  # fmt: skip
    if items:
        await record_rows(conn, tenant, items, shapes, months)
