"""Writing history rows: the change hook, instances encoded compactly, rollups kept in step.

All of it runs on the writer's connection, inside the transaction of the entity write (or of the
temporal provision job) that causes it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from burgo.ngsild.model import ATTRIBUTE_MEMBERS, Attribute, AttrKind
from burgo.ngsild.temporal import millis_of
from burgo.ngsild.temporal_aggregate import is_number
from burgo.store.history_rows import (
    DELETED,
    GRAINS,
    PLAIN,
    Memo,
    changed_instances,
    history_doc,
)
from burgo.store.sqlite.core import StoredChange
from burgo.store.sqlite.plain import MILLIS_SQL

# Entity ids per statement: well under SQLite's variable limit on every build.
_CHUNK = 500
# A row of the history table: t, num, shape, doc, rec.
Row = tuple[int, Any, int | None, str | None, int | None]


class HistoryWriter:
    """Encodes instances into history rows on one connection (interned shapes cached)."""

    def __init__(self) -> None:
        # Shape ids are only cached once seen in the database, so a rolled back insert of a
        # shape row is simply looked up (and inserted) again.
        self._shapes: dict[str, int] = {}

    def shape_id(self, conn: sqlite3.Connection, doc: str) -> int:
        """The id of an interned shape, inserted if new."""
        found = self._shapes.get(doc)
        if found is not None:
            row = conn.execute("SELECT id FROM history_shapes WHERE id = ? AND doc = ?",
                               (found, doc)).fetchone()  # fmt: skip
            if row is not None:
                return found
        row = conn.execute("SELECT id FROM history_shapes WHERE doc = ?", (doc,)).fetchone()
        if row is None:
            row = (conn.execute("INSERT INTO history_shapes (doc) VALUES (?)", (doc,)).lastrowid,)
        shape: int = row[0]
        if len(self._shapes) < 10_000:
            self._shapes[doc] = shape
        return shape

    def encode(
        self, conn: sqlite3.Connection, attr: Attribute, rec: int, memo: Memo | None = None
    ) -> Row:
        """The row of one instance recorded at ``rec`` (epoch ms); ``memo`` keeps the times
        parsed and the shape ids checked during one transaction."""
        observed = None
        if attr.observed_at is not None:
            observed = (
                memo.millis(attr.observed_at) if memo is not None else millis_of(attr.observed_at)
            )
        t = observed if observed is not None else rec
        rec_col = rec if observed is not None else None
        if attr.kind == AttrKind.PROPERTY and is_number(attr.value):
            if memo is not None and not attr.sub and attr.object_type is None:
                # Then the rest of the instance is its unit code alone: encoded once.
                unit = attr.unit_code
                if unit not in memo.units:
                    memo.units[unit] = self._numeric_rest(conn, attr, memo)
                shape, text = memo.units[unit]
                return (t, attr.value, shape, text, rec_col)
            shape, text = self._numeric_rest(conn, attr, memo)
            return (t, attr.value, shape, text, rec_col)
        return (t, None, None, orjson.dumps(history_doc(attr, True)).decode(), rec_col)

    def _numeric_rest(
        self, conn: sqlite3.Connection, attr: Attribute, memo: Memo | None
    ) -> tuple[int | None, str | None]:
        """How a numeric Property's row holds the rest of the instance: its interned shape,
        or its JSON (sub-attributes); neither for a plain Property."""
        rest = history_doc(attr, True, with_value=False)
        if rest == PLAIN:
            return None, None
        text = orjson.dumps(rest).decode()
        if not all(key in ATTRIBUTE_MEMBERS for key in rest):
            return None, text
        shape = memo.shapes.get(text) if memo is not None else None
        if shape is None:
            shape = self.shape_id(conn, text)
            if memo is not None:
                memo.shapes[text] = shape
        return shape, None


def series_id(
    conn: sqlite3.Connection,
    key: tuple[str, str, str, str],
    kind: str,
    *,
    mixed: bool,
) -> int:
    """The id of the series of (tenant, entity, attribute, datasetId), created if new; marks it
    mixed (not only numbers: its rollups cannot answer every method) when ``mixed``."""
    row = conn.execute(
        "SELECT id, mixed FROM history_series "
        "WHERE tenant = ? AND entity_id = ? AND attr = ? AND dataset_id = ?",
        key,
    ).fetchone()
    if row is None:
        cursor = conn.execute(
            "INSERT INTO history_series (tenant, entity_id, attr, dataset_id, kind, mixed) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (*key, kind, int(mixed)),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid
    if mixed and not row[1]:
        conn.execute("UPDATE history_series SET mixed = 1 WHERE id = ?", (row[0],))
    return int(row[0])


def add_to_rollups(
    conn: sqlite3.Connection, series: int, points: Iterable[tuple[int, Any]]
) -> None:
    """Add numeric ``(t, value)`` points to the hourly and daily rollups of ``series``."""
    add_points_to_rollups(conn, {series: list(points)})


def add_points_to_rollups(
    conn: sqlite3.Connection, points: Mapping[int, Sequence[tuple[int, Any]]]
) -> None:
    """Add numeric ``(t, value)`` points, by series, to the hourly and daily rollups."""
    rows = []
    for grain in GRAINS:
        for series, series_points in points.items():
            buckets: dict[int, list[Any]] = {}
            for t, value in series_points:
                bucket = t - t % grain
                acc = buckets.get(bucket)
                if acc is None:
                    buckets[bucket] = [1, float(value), value, value, float(value) * value]
                else:
                    acc[0] += 1
                    acc[1] += value
                    acc[2] = value if value < acc[2] else acc[2]
                    acc[3] = value if value > acc[3] else acc[3]
                    acc[4] += float(value) * value
            rows += [(series, grain, b, *acc) for b, acc in buckets.items()]
    rows.sort(key=_rollup_key)  # in key order: consecutive rows share pages
    conn.executemany(
        "INSERT INTO history_rollups (series, grain, bucket, n, total, low, high, sumsq) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (series, grain, bucket) DO UPDATE SET "
        "n = n + excluded.n, total = total + excluded.total, low = min(low, excluded.low), "
        "high = max(high, excluded.high), sumsq = sumsq + excluded.sumsq",
        rows,
    )


def _rollup_key(row: tuple[Any, ...]) -> tuple[int, int, int]:
    return row[0], row[1], row[2]


def recompute_rollups(conn: sqlite3.Connection, series: int, times: Iterable[int]) -> None:
    """Rebuild from the raw rows the rollup buckets holding ``times`` (after a delete or patch)."""
    for grain in GRAINS:
        for bucket in {t - t % grain for t in times}:
            n, total, low, high, sumsq = conn.execute(
                "SELECT count(num), total(num), min(num), max(num), total(num * num) "
                "FROM history WHERE series = ? AND t >= ? AND t < ? AND num IS NOT NULL",
                (series, bucket, bucket + grain),
            ).fetchone()
            if n == 0:
                conn.execute(
                    "DELETE FROM history_rollups WHERE series = ? AND grain = ? AND bucket = ?",
                    (series, grain, bucket),
                )
            else:
                conn.execute(
                    "INSERT OR REPLACE INTO history_rollups VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (series, grain, bucket, n, total, low, high, sumsq),
                )


def touch_entity(
    conn: sqlite3.Connection, tenant: str, entity_id: str, types: Sequence[str], at: int
) -> bool:
    """Record that an entity exists (with these types) from ``at``; True if it had no history."""
    cursor = conn.execute(
        "INSERT INTO history_entities (tenant, id, types, created_at, deleted_at) "
        "VALUES (?, ?, ?, ?, NULL) ON CONFLICT (tenant, id) DO NOTHING",
        (tenant, entity_id, orjson.dumps(list(types)).decode(), at),
    )
    if cursor.rowcount:
        return True
    conn.execute(
        "UPDATE history_entities SET types = ?, deleted_at = NULL WHERE tenant = ? AND id = ?",
        (orjson.dumps(list(types)).decode(), tenant, entity_id),
    )
    return False


SeriesKey = tuple[str, str, str, str]
# An instance to record: its series key, the series' kind, whether it makes the series mixed.
_Pending = tuple[SeriesKey, str, bool, Row]


def record_changes(
    conn: sqlite3.Connection, writer: HistoryWriter, changes: Sequence[StoredChange]
) -> None:
    """The batch hook: the history of several entities' writes (an entity possibly several
    times, in order), in their transaction: changed instances as new values, removed ones as
    deletion records."""
    touched: list[tuple[str, str, str, int]] = []
    gone: list[tuple[int, str, str]] = []
    pending: list[_Pending] = []
    memo = Memo()
    for change in changes:
        record = change.record
        tenant, entity_id = record.tenant, record.entity_id
        at = memo.millis(record.at, "time of the change") if record.at else 0
        before, after = record.before, record.after
        if after is None:
            assert before is not None
            changed: list[tuple[str, Attribute]] = []
            deleted = [(n, a) for n, instances in before.attrs.items() for a in instances]
            gone.append((at, tenant, entity_id))
        elif before is None:
            touched.append((tenant, entity_id, orjson.dumps(list(after.types)).decode(), at))
            changed = [(name, a) for name, instances in after.attrs.items() for a in instances]
            deleted = []
        else:
            if before.types != after.types:
                touched.append((tenant, entity_id, orjson.dumps(list(after.types)).decode(), at))
            changed, deleted = changed_instances(before, after)
        for name, attr in changed:
            row = writer.encode(conn, attr, at, memo)
            key = (tenant, entity_id, name, attr.dataset_id or "")
            # _value_, the member's value as stored: .value is a property, slow for every row.
            pending.append((key, attr.kind._value_, row[1] is None, row))
        for name, attr in deleted:
            key = (tenant, entity_id, name, attr.dataset_id or "")
            tombstone: Row = (at, None, DELETED, attr.kind._value_, None)
            pending.append((key, attr.kind._value_, False, tombstone))
    if touched:
        conn.executemany(
            "INSERT INTO history_entities (tenant, id, types, created_at, deleted_at) "
            "VALUES (?, ?, ?, ?, NULL) ON CONFLICT (tenant, id) "
            "DO UPDATE SET types = excluded.types, deleted_at = NULL",
            touched,
        )
    if gone:
        conn.executemany(
            "UPDATE history_entities SET deleted_at = ? WHERE tenant = ? AND id = ?", gone
        )
    if not pending:
        return
    ids = series_ids(conn, pending)
    first: list[tuple[int, *Row]] = []
    later: list[tuple[int, *Row]] = []
    points: dict[int, list[tuple[int, Any]]] = {}
    started: set[int] = set()
    for (series, new), (_, _, _, row) in zip(ids, pending, strict=True):
        # A series created now has no instance yet, so its first row takes seq 0; the rows after
        # it (the same entity written again in this call) look theirs up.
        if new and series not in started:
            started.add(series)
            first.append((series, *row))
        else:
            later.append((series, *row))
        if row[1] is not None:
            points.setdefault(series, []).append((row[0], row[1]))
    if first:
        conn.executemany(
            "INSERT INTO history (series, t, seq, num, shape, doc, rec) "
            "VALUES (?, ?, 0, ?, ?, ?, ?)",
            first,
        )
    if later:
        # In key order, so that consecutive rows land in the same pages of the table (a stable
        # sort: rows of one series and time keep their order, which numbers them).
        later.sort(key=_series_and_time)
        conn.executemany(
            "INSERT INTO history (series, t, seq, num, shape, doc, rec) VALUES (?1, ?2, "
            "(SELECT coalesce(max(seq) + 1, 0) FROM history WHERE series = ?1 AND t = ?2), "
            "?3, ?4, ?5, ?6)",
            later,
        )
    if points:
        add_points_to_rollups(conn, points)


def _series_and_time(row: tuple[int, *Row]) -> tuple[int, int]:
    return row[0], row[1]


def series_ids(
    conn: sqlite3.Connection, wanted: Sequence[tuple[SeriesKey, str, bool, Any]]
) -> list[tuple[int, bool]]:
    """The ids of the series of ``(key, kind, mixed, ...)``, in order, each with whether it was
    created now; marks mixed (not only numbers) those wanted ``mixed``."""
    # Each known series as [id, mixed, created now].
    known: dict[SeriesKey, list[int]] = {}
    by_tenant: dict[str, dict[str, None]] = {}
    for (tenant, entity_id, _, _), *_ in wanted:
        by_tenant.setdefault(tenant, {})[entity_id] = None
    for tenant, entity_ids in by_tenant.items():
        every = list(entity_ids)
        for start in range(0, len(every), _CHUNK):
            chunk = every[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for sid, entity_id, attr, dataset_id, mixed in conn.execute(
                "SELECT id, entity_id, attr, dataset_id, mixed FROM history_series "  # noqa: S608 - placeholders only
                f"WHERE tenant = ? AND entity_id IN ({marks})",
                (tenant, *chunk),
            ):
                known[(tenant, entity_id, attr, dataset_id)] = [sid, mixed, 0]
    new: list[tuple[int, str, str, str, str, str, int]] = []
    remixed: dict[int, None] = {}
    high: int | None = None
    ids: list[tuple[int, bool]] = []
    for key, kind, mixed, _ in wanted:
        found = known.get(key)
        if found is None:
            if high is None:
                (high,) = conn.execute("SELECT coalesce(max(id), 0) FROM history_series").fetchone()
            high += 1
            known[key] = [high, int(mixed), 1]
            new.append((high, *key, kind, int(mixed)))
            ids.append((high, True))
            continue
        if mixed and not found[1]:
            found[1] = 1
            remixed[found[0]] = None
        ids.append((found[0], found[2] == 1))
    if new:
        conn.executemany(
            "INSERT INTO history_series (id, tenant, entity_id, attr, dataset_id, kind, mixed) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            new,
        )
    if remixed:
        conn.executemany(
            "UPDATE history_series SET mixed = 1 WHERE id = ?", [(sid,) for sid in remixed]
        )
    return ids


def numeric_points(rows: Sequence[tuple[int, Row]]) -> Mapping[int, list[tuple[int, Any]]]:
    """The numeric ``(t, value)`` points of ``(series, row)`` pairs, by series."""
    points: dict[int, list[tuple[int, Any]]] = {}
    for series, row in rows:
        if row[1] is not None:
            points.setdefault(series, []).append((row[0], row[1]))
    return points


# The set-based form of record_changes() for plain entities just created that have no series yet
# (store/sqlite/plain.py): the same rows, in the same order. ?1 holds the entities' keys; ?2 (a
# JSON array) the ids of those left to the Python form.
_CREATED_ENTITIES = f"""
INSERT INTO history_entities (tenant, id, types, created_at, deleted_at)
SELECT e.tenant, e.id, e.types, {MILLIS_SQL.format("e.created_at")}, NULL
FROM json_each(?1) AS b JOIN entities AS e ON e.pk = b.value
WHERE e.id NOT IN (SELECT value FROM json_each(?2)) ORDER BY b.key
ON CONFLICT (tenant, id) DO UPDATE SET types = excluded.types, deleted_at = NULL
"""  # noqa: S608 - fixed fragments
_CREATED_SERIES = """
INSERT INTO history_series (tenant, entity_id, attr, dataset_id, kind, mixed)
SELECT tenant, entity_id, attr, dataset_id, kind, NOT numeric FROM temp.plain_instances
WHERE entity_id NOT IN (SELECT value FROM json_each(?1))
ORDER BY n, aid, iid
"""
# A number of a Property: its row holds it in num, the rest of the instance as an interned shape
# (its unitCode) or nothing; any other instance is its JSON without times nor datasetId.
_CREATED_HISTORY = """
INSERT INTO history (series, t, seq, num, shape, doc, rec)
SELECT
    (SELECT s.id FROM history_series AS s WHERE s.tenant = p.tenant
        AND s.entity_id = p.entity_id AND s.attr = p.attr AND s.dataset_id = p.dataset_id),
    t, 0, CASE WHEN numeric THEN atom END,
    CASE WHEN numeric AND unit IS NOT NULL THEN (SELECT h.id FROM history_shapes AS h
        WHERE h.doc = '{"type":"Property","unitCode":' || unit || '}') END,
    CASE WHEN NOT numeric THEN '{"type":"' || kind || '","'
        || CASE WHEN kind = 'Relationship' THEN 'object' ELSE 'value' END || '":' || value
        || coalesce(',"unitCode":' || unit, '') || '}' END,
    rec
FROM temp.plain_instances AS p
WHERE entity_id NOT IN (SELECT value FROM json_each(?1))
"""
# The hourly and daily buckets of the numbers just recorded (one point each: new series).
_CREATED_ROLLUPS = """
INSERT INTO history_rollups (series, grain, bucket, n, total, low, high, sumsq)
SELECT h.series, g.value, h.t - ((h.t % g.value) + g.value) % g.value, 1,
    CAST(h.num AS REAL), h.num, h.num, CAST(h.num AS REAL) * h.num
FROM history_series AS s JOIN history AS h ON h.series = s.id, json_each(?2) AS g
WHERE s.id > ?1 AND h.num IS NOT NULL
"""
_WITH_SERIES = """
SELECT DISTINCT e.id FROM json_each(?) AS b JOIN entities AS e ON e.pk = b.value
JOIN history_series AS s ON s.tenant = e.tenant AND s.entity_id = e.id
"""


def record_created(
    conn: sqlite3.Connection,
    writer: HistoryWriter,
    keys: str,
    changes: Sequence[StoredChange],
) -> None:
    """The set-based form of :func:`record_changes` for plain entities just created (``keys``:
    the JSON array of their rows' keys); those with history series already (an id created
    again after a delete) take the Python form."""
    again = {row[0] for row in conn.execute(_WITH_SERIES, (keys,))}
    if again:
        record_changes(conn, writer, [c for c in changes if c.record.entity_id in again])
    skipped = orjson.dumps(sorted(again)).decode()
    (high,) = conn.execute("SELECT coalesce(max(id), 0) FROM history_series").fetchone()
    conn.execute(_CREATED_ENTITIES, (keys, skipped))
    # In order of first use, as the Python form interns them.
    units = {
        attr.unit_code: None
        for change in changes
        if change.record.after is not None and change.record.entity_id not in again
        for instances in change.record.after.attrs.values()
        for attr in instances
        if attr.unit_code is not None and attr.kind is AttrKind.PROPERTY and is_number(attr.value)
    }
    for unit in units:
        writer.shape_id(conn, orjson.dumps({"type": "Property", "unitCode": unit}).decode())
    conn.execute(_CREATED_SERIES, (skipped,))
    conn.execute(_CREATED_HISTORY, (skipped,))
    conn.execute(_CREATED_ROLLUPS, (high, orjson.dumps(GRAINS).decode()))
