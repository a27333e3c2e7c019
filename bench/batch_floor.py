"""The least SQLite time a batch create can take: the stored rows written back from prepared tuples.

``burgo serve`` creates a batch of the batch benchmark's entities (bench_batch.py); the rows it
stored in every table are read back, then written again, under new keys, into an empty copy of
the schema with ``executemany`` in one transaction per round, ``synchronous=FULL`` as the server
runs. No parsing, no Python hooks, no JSON: the time is SQLite inserting the rows and their index
entries, and the commit. That is a floor for the writer thread of any code that stores these rows.

A second floor does the same with a leaner row set that still keeps what the queries and the
temporal API need: an attribute-value index clustered on (attribute, value, entity) with no
secondary index and an existence row only for an attribute that has no value row; history and
rollups keyed by (entity key, attribute number) without a series table; one type index; the geo
boxes in the R*Tree alone. Last, the parse of the same bodies (``parse_entity``) is timed.

Both numbers, set against the CPU that two cores give per entity at a target rate, tell whether a
rate is reachable on this machine by any code that stores these rows.

    .venv/bin/python bench/batch_floor.py [--entities 3000] [--rounds 10] [--target 20000]
"""

from __future__ import annotations

import argparse
import http.client
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson
from bench_batch import create_batches
from bench_entities import HOST, running_server

from burgo.ngsild.context import core_context
from burgo.ngsild.parse import parse_entity

Row = tuple[Any, ...]
Timings = dict[str, float]

# Tables a batch create writes, in the order the store writes them.
TABLES = (
    "entities",
    "entity_types",
    "entity_type_ids",
    "attr_values",
    "history_entities",
    "history_series",
    "history",
    "history_rollups",
    "entity_geo",
    "entity_geo_box",
)
# Integer keys moved by each round's offset, and text keys given each round's suffix.
INTEGER_KEYS = {
    "entities": ("pk",),
    "entity_types": ("entity_pk",),
    "entity_type_ids": ("entity_pk",),
    "attr_values": ("entity_pk",),
    "history_series": ("id",),
    "history": ("series",),
    "history_rollups": ("series",),
    "entity_geo": ("id", "entity_pk"),
    "entity_geo_box": ("id",),
}
TEXT_KEYS = {
    "entities": ("id",),
    "entity_type_ids": ("id",),
    "history_entities": ("id",),
    "history_series": ("entity_id",),
    "entity_geo": ("entity_id",),
}
LEAN_SCHEMA = """
CREATE TABLE entities (pk INTEGER PRIMARY KEY, tenant TEXT NOT NULL, id TEXT NOT NULL,
    types TEXT NOT NULL, created_at TEXT NOT NULL, modified_at TEXT NOT NULL, doc TEXT NOT NULL);
CREATE UNIQUE INDEX entities_tenant_id ON entities (tenant, id);
CREATE TABLE entity_type_ids (tenant, type, id, entity_pk, PRIMARY KEY (tenant, type, id))
    WITHOUT ROWID;
CREATE TABLE attr_values (attr, value, entity_pk, kind, PRIMARY KEY (attr, value, entity_pk, kind))
    WITHOUT ROWID;
CREATE TABLE history_entities (tenant TEXT NOT NULL, id TEXT NOT NULL, types TEXT NOT NULL,
    created_at INTEGER NOT NULL, deleted_at INTEGER, PRIMARY KEY (tenant, id)) WITHOUT ROWID;
CREATE TABLE history (entity_pk, attr, t, seq, num, shape, doc, rec,
    PRIMARY KEY (entity_pk, attr, t, seq)) WITHOUT ROWID;
CREATE TABLE history_rollups (entity_pk, attr, grain, bucket, n, total, low, high, sumsq,
    PRIMARY KEY (entity_pk, attr, grain, bucket)) WITHOUT ROWID;
CREATE VIRTUAL TABLE entity_geo_box USING rtree (id, min_x, max_x, min_y, max_y);
"""


def stored_database(entities: int, workdir: Path) -> Path:
    """A database in which ``burgo serve`` created ``entities`` bench entities in one batch."""
    ((body, _),) = create_batches(entities, entities)
    with running_server("FULL", workdir) as (_, port, _):
        client = http.client.HTTPConnection(HOST, port, timeout=300)
        client.request(
            "POST", "/ngsi-ld/v1/entityOperations/create", body,
            {"Content-Type": "application/json"},
        )  # fmt: skip
        response = client.getresponse()
        response.read()
        client.close()
        if response.status != 201:
            sys.exit(f"bench: the batch create answered {response.status}")
    return workdir / "burgo.db"


def read_rows(db: Path) -> tuple[dict[str, list[Row]], dict[str, list[str]]]:
    """Every row of the tables a batch create writes, and the tables' column names."""
    conn = sqlite3.connect(db)
    columns = {t: [c[1] for c in conn.execute(f'PRAGMA table_info("{t}")')] for t in TABLES}
    rows = {t: conn.execute(f'SELECT * FROM "{t}"').fetchall() for t in TABLES}
    conn.close()
    return rows, columns


def shifted(rows: list[Row], columns: list[str], table: str, round_: int) -> list[Row]:
    """The rows under keys of their own for this round."""
    offset, suffix = round_ * 10_000_000, f"-{round_}"
    moved = [columns.index(c) for c in INTEGER_KEYS.get(table, ())]
    renamed = [columns.index(c) for c in TEXT_KEYS.get(table, ())]
    out = []
    for row in rows:
        values = list(row)
        for i in moved:
            values[i] += offset
        for i in renamed:
            values[i] += suffix
        out.append(tuple(values))
    return out


def open_empty(path: Path, schema: Callable[[sqlite3.Connection], object]) -> sqlite3.Connection:
    """A new database file set up as the server sets up its writer, with ``schema`` in it."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA cache_size = -8192")
    schema(conn)
    return conn


def replay(
    conn: sqlite3.Connection,
    rounds: int,
    batches: Callable[[int], Iterable[tuple[str, str, list[Row]]]],
) -> Timings:
    """Seconds spent per table (and in the commit) writing ``rounds`` transactions of rows: the
    thread's CPU time, and under ``wall`` the elapsed time of the whole (the commit waits for the
    disk without using the CPU)."""
    spent: Timings = {}
    wall = 0.0

    def timed(name: str, sql: str, rows: list[Row] | None = None) -> None:
        nonlocal wall
        started, cpu = time.perf_counter(), time.thread_time()
        if rows is None:
            conn.execute(sql)
        else:
            conn.executemany(sql, rows)
        spent[name] = spent.get(name, 0.0) + time.thread_time() - cpu
        wall += time.perf_counter() - started

    for round_ in range(1, rounds + 1):
        prepared = list(batches(round_))
        conn.execute("BEGIN")
        for table, sql, rows in prepared:
            timed(table, sql, rows)
        timed("commit", "COMMIT")
    spent["wall"] = wall
    return spent


def insert_sql(table: str, width: int) -> str:
    """An INSERT of one row of ``width`` values."""
    return f'INSERT INTO "{table}" VALUES ({", ".join("?" * width)})'


def current_floor(stored: Path, workdir: Path, rows: dict[str, list[Row]],
                  columns: dict[str, list[str]], rounds: int) -> Timings:  # fmt: skip
    """The stored rows written back into an empty copy of the server's own schema."""
    schema = [
        sql for (sql,) in sqlite3.connect(stored).execute(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' "
            "AND name NOT LIKE 'entity_geo_box_%' ORDER BY rowid"
        )
    ]  # fmt: skip

    def create(conn: sqlite3.Connection) -> None:
        for sql in schema:
            conn.execute(sql)

    def batches(round_: int) -> Iterable[tuple[str, str, list[Row]]]:
        for table in TABLES:
            yield (
                table,
                insert_sql(table, len(columns[table])),
                shifted(rows[table], columns[table], table, round_),
            )

    conn = open_empty(workdir / "current.db", create)
    try:
        return replay(conn, rounds, batches)
    finally:
        conn.close()


def lean_rows(rows: dict[str, list[Row]], columns: dict[str, list[str]]) -> dict[str, list[Row]]:
    """The same entities in the leaner row set (see the module's docstring)."""
    entity_pk = {(tenant, id_): pk for pk, tenant, id_, *_ in rows["entities"]}
    series = {row[0]: row for row in rows["history_series"]}
    attr_numbers: dict[str, int] = {}

    def series_key(number: int) -> tuple[int, int]:
        _, tenant, id_, attr, *_ = series[number]
        return entity_pk[tenant, id_], attr_numbers.setdefault(attr, len(attr_numbers) + 1)

    av = [dict(zip(columns["attr_values"], row, strict=True)) for row in rows["attr_values"]]
    valued = {(r["entity_pk"], r["attr"]) for r in av if r["kind"] != "e"}
    return {
        "entities": rows["entities"],
        "entity_type_ids": rows["entity_type_ids"],
        "attr_values": sorted({
            (r["attr"], _value(r), r["entity_pk"], r["kind"])
            for r in av if r["kind"] != "e" or (r["entity_pk"], r["attr"]) not in valued
        }, key=lambda r: (r[2], r[0], r[3], str(r[1]))),
        "history_entities": rows["history_entities"],
        "history": [(*series_key(s), *rest) for s, *rest in rows["history"]],
        "history_rollups": [(*series_key(s), *rest) for s, *rest in rows["history_rollups"]],
        "entity_geo_box": rows["entity_geo_box"],
    }  # fmt: skip


def _value(row: dict[str, Any]) -> Any:
    """The indexed value of an attribute-value row ('' for an existence row: keys are not NULL)."""
    if row["num"] is not None:
        return row["num"]
    return "" if row["txt"] is None else row["txt"]


def lean_floor(workdir: Path, rows: dict[str, list[Row]], rounds: int) -> Timings:
    """The leaner row set written into its own schema."""
    integer_at = {"entities": 0, "entity_type_ids": 3, "attr_values": 2, "history": 0,
                  "history_rollups": 0, "entity_geo_box": 0}  # fmt: skip
    text_at = {"entities": 2, "entity_type_ids": 2, "history_entities": 1}

    def batches(round_: int) -> Iterable[tuple[str, str, list[Row]]]:
        offset, suffix = round_ * 10_000_000, f"-{round_}"
        for table, table_rows in rows.items():
            out = []
            for row in table_rows:
                values = list(row)
                if table in integer_at:
                    values[integer_at[table]] += offset
                if table in text_at:
                    values[text_at[table]] += suffix
                out.append(tuple(values))
            yield table, insert_sql(table, len(out[0])), out

    conn = open_empty(workdir / "lean.db", lambda c: c.executescript(LEAN_SCHEMA))
    try:
        return replay(conn, rounds, batches)
    finally:
        conn.close()


def parse_time(entities: int, repeats: int = 3) -> tuple[float, float]:
    """CPU seconds per entity to decode the create bodies and to parse their entities (best of
    ``repeats``)."""
    ((body, _),) = create_batches(entities, entities)
    context = core_context()
    decode, parse = float("inf"), float("inf")
    for _ in range(repeats):
        started = time.process_time()
        data = orjson.loads(body)
        decoded = time.process_time()
        for item in data:
            parse_entity(item, context, now="2026-12-02T10:00:00.000Z")
        parsed = time.process_time()
        decode = min(decode, (decoded - started) / entities)
        parse = min(parse, (parsed - decoded) / entities)
    return decode, parse


def report(title: str, spent: Timings, entities: int) -> float:
    """Print the CPU microseconds per entity of each table; the elapsed total per entity."""
    wall = spent.pop("wall") / entities * 1e6
    cpu = sum(spent.values()) / entities * 1e6
    print(f"\n{title}: {cpu:.1f} µs of CPU, {wall:.1f} µs elapsed per entity\n")
    print("| table | CPU µs per entity |")
    print("|---|---:|")
    for table, seconds in spent.items():
        print(f"| {table} | {seconds / entities * 1e6:.1f} |")
    return wall


def main(argv: Sequence[str] | None = None) -> int:
    """Measure both floors and the parse, and set them against the target's CPU budget."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=3_000, help="entities per round")
    parser.add_argument("--rounds", type=int, default=10, help="transactions written")
    parser.add_argument("--target", type=int, default=20_000, help="entities/s to test")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="burgo-floor-") as tmp:
        workdir = Path(tmp)
        stored = stored_database(args.entities, workdir)
        rows, columns = read_rows(stored)
        per_entity = {t: len(r) / args.entities for t, r in rows.items()}
        load = os.getloadavg()[0]
        print(
            f"{args.entities:,} bench entities per round, {args.rounds} rounds, "
            f"SQLite {sqlite3.sqlite_version}, synchronous=FULL, load {load:.2f}"
        )
        print("rows per entity: " + ", ".join(f"{t} {n:.1f}" for t, n in per_entity.items()))
        written = args.entities * args.rounds
        current = report("Rows the server writes now", current_floor(
            stored, workdir, rows, columns, args.rounds), written)  # fmt: skip
        lean = report("Leaner row set", lean_floor(
            workdir, lean_rows(rows, columns), args.rounds), written)  # fmt: skip
    decode, parse = parse_time(args.entities)
    budget = 2 / args.target * 1e6
    print(f"\nJSON decode {decode * 1e6:.1f} µs, parse_entity {parse * 1e6:.1f} µs per entity")
    print(
        f"CPU two cores give per entity at {args.target:,}/s: {budget:.0f} µs; "
        f"one writer thread: {budget / 2:.0f} µs"
    )
    for name, floor in (("now", current), ("lean", lean)):
        least = floor + (decode + parse) * 1e6
        verdict = "within" if floor <= budget / 2 and least <= budget else "over"
        most = 1e6 / max(floor, least / 2)
        print(
            f"- rows {name}: writer floor {floor:.0f} µs, with decode and parse {least:.0f} µs "
            f"per entity: {verdict} the budget; at most {most:,.0f}/s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
