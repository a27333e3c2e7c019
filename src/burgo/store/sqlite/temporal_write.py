"""Writing history rows: the change hook, instances encoded compactly, rollups kept in step.

All of it runs on the writer's connection, inside the transaction of the entity write (or of the
temporal provision job) that causes it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from burgo.ngsild.duration import DAY, HOUR
from burgo.ngsild.model import ATTRIBUTE_MEMBERS, Attribute, AttrKind, Entity, attribute_to_storage
from burgo.ngsild.temporal import millis_of
from burgo.ngsild.temporal_aggregate import is_number
from burgo.store.base import EntityChangeRecord

GRAINS = (HOUR, DAY)
DELETED = -1
_UNSTAMPED = ("createdAt", "modifiedAt", "observedAt", "datasetId")
# A row of the history table: t, num, shape, doc, rec.
Row = tuple[int, Any, int | None, str | None, int | None]


def _strip(doc: dict[str, Any], top: bool) -> dict[str, Any]:
    out = {}
    for key, value in doc.items():
        if key in ("createdAt", "modifiedAt") or (top and key in _UNSTAMPED):
            continue
        out[key] = _strip(value, False) if key not in ATTRIBUTE_MEMBERS else value
    return out


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

    def encode(self, conn: sqlite3.Connection, attr: Attribute, rec: int) -> Row:
        """The row of one instance recorded at ``rec`` (epoch ms)."""
        observed = millis_of(attr.observed_at) if attr.observed_at is not None else None
        t = observed if observed is not None else rec
        rec_col = rec if observed is not None else None
        rest = _strip(attribute_to_storage(attr), True)
        if attr.kind == AttrKind.PROPERTY and is_number(attr.value):
            del rest["value"]
            if rest == {"type": "Property"}:
                return (t, attr.value, None, None, rec_col)
            text = orjson.dumps(rest).decode()
            if all(key in ATTRIBUTE_MEMBERS for key in rest):
                return (t, attr.value, self.shape_id(conn, text), None, rec_col)
            return (t, attr.value, None, text, rec_col)
        return (t, None, None, orjson.dumps(rest).decode(), rec_col)


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


def insert_row(conn: sqlite3.Connection, series: int, row: Row) -> None:
    """Insert one instance row, after any other at the same time of the series."""
    t = row[0]
    cursor = conn.execute(
        "INSERT INTO history (series, t, seq, num, shape, doc, rec) VALUES (?, ?, 0, ?, ?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        (series, *row),
    )
    if cursor.rowcount == 0:
        seq = conn.execute(
            "SELECT max(seq) + 1 FROM history WHERE series = ? AND t = ?", (series, t)
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO history (series, t, seq, num, shape, doc, rec) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (series, t, seq, *row[1:]),
        )


def add_to_rollups(
    conn: sqlite3.Connection, series: int, points: Iterable[tuple[int, Any]]
) -> None:
    """Add numeric ``(t, value)`` points to the hourly and daily rollups of ``series``."""
    for grain in GRAINS:
        buckets: dict[int, list[Any]] = {}
        for t, value in points:
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
        conn.executemany(
            "INSERT INTO history_rollups (series, grain, bucket, n, total, low, high, sumsq) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (series, grain, bucket) DO UPDATE SET "
            "n = n + excluded.n, total = total + excluded.total, low = min(low, excluded.low), "
            "high = max(high, excluded.high), sumsq = sumsq + excluded.sumsq",
            [(series, grain, b, *acc) for b, acc in buckets.items()],
        )


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


def record_instances(
    conn: sqlite3.Connection,
    writer: HistoryWriter,
    tenant: str,
    entity_id: str,
    changed: Iterable[tuple[str, Attribute]],
    deleted: Iterable[tuple[str, Attribute]],
    rec: int,
) -> None:
    """Record changed instances (new values) and deleted ones (deletion records) at ``rec``."""
    for name, attr in changed:
        row = writer.encode(conn, attr, rec)
        numeric = row[1] is not None
        key = (tenant, entity_id, name, attr.dataset_id or "")
        series = series_id(conn, key, attr.kind.value, mixed=not numeric)
        insert_row(conn, series, row)
        if numeric:
            add_to_rollups(conn, series, ((row[0], row[1]),))
    for name, attr in deleted:
        key = (tenant, entity_id, name, attr.dataset_id or "")
        series = series_id(conn, key, attr.kind.value, mixed=False)
        insert_row(conn, series, (rec, None, DELETED, attr.kind.value, None))


def _changes(
    before: Entity | None, after: Entity
) -> tuple[list[tuple[str, Attribute]], list[tuple[str, Attribute]]]:
    changed = []
    for name, instances in after.attrs.items():
        old_instances = before.attrs.get(name, ()) if before is not None else ()
        for attr in instances:
            old = next((o for o in old_instances if o.dataset_id == attr.dataset_id), None)
            if old is None or (old is not attr and old != attr):
                changed.append((name, attr))
    deleted = []
    if before is not None:
        for name, instances in before.attrs.items():
            kept = {a.dataset_id for a in after.attrs.get(name, ())}
            deleted += [(name, a) for a in instances if a.dataset_id not in kept]
    return changed, deleted


def record_change(
    conn: sqlite3.Connection, writer: HistoryWriter, record: EntityChangeRecord
) -> None:
    """The change hook: history of one entity write, in its transaction."""
    at = millis_of(record.at, "time of the change") if record.at else 0
    if record.after is None:
        assert record.before is not None
        deleted = [(n, a) for n, instances in record.before.attrs.items() for a in instances]
        record_instances(conn, writer, record.tenant, record.entity_id, (), deleted, at)
        conn.execute(
            "UPDATE history_entities SET deleted_at = ? WHERE tenant = ? AND id = ?",
            (at, record.tenant, record.entity_id),
        )
        return
    before, after = record.before, record.after
    if before is None or before.types != after.types:
        touch_entity(conn, record.tenant, record.entity_id, after.types, at)
    changed, deleted = _changes(before, after)
    record_instances(conn, writer, record.tenant, record.entity_id, changed, deleted, at)


def numeric_points(rows: Sequence[tuple[int, Row]]) -> Mapping[int, list[tuple[int, Any]]]:
    """The numeric ``(t, value)`` points of ``(series, row)`` pairs, by series."""
    points: dict[int, list[tuple[int, Any]]] = {}
    for series, row in rows:
        if row[1] is not None:
            points.setdefault(series, []).append((row[0], row[1]))
    return points
