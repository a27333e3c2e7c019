"""Scale seed: fills an empty PostgreSQL database with the Fundão town and its history, fast.

Run from the repository root::

    .venv/bin/python bench/seed_scale.py postgresql://... --entities 1000000 --stations 84

It writes the rows Burgo itself writes, without going through its transactions:

- the entities of ``bench_queries.py`` (the same generator and seed, a third each of
  AirQualityObserved, ParkingSpot and WasteContainer, created at 2024-05-01T10:00:00Z as
  ``POST /entityOperations/create`` would store them): their rows, the query indexes
  (attribute values, geometry, types, the count of each type set) and the history of their
  creation (one instance per attribute, its series, hourly and daily rollups);
- for the first ``--stations`` AirQualityObserved entities, ``--days`` of 1-minute NO2 readings
  from 2023-01-01 (the data ``bench_temporal.py`` imports with ``POST /temporal/entities``, a
  week per request), with their rollups.

Each row comes from the store's own functions (``entity_doc``, ``attribute_rows``,
``geo_rows``, ``encode``, ``rollup_rows``; PostGIS shapes from ``burgo_shape``), so the database
answers exactly as one filled through the API would (``tests/store/test_seed_scale.py`` compares
the two). The rows go in with COPY, the bulk history with ``INSERT ... SELECT generate_series``;
the query indexes are dropped while loading and built again at the end, then every table is
vacuumed and analysed. The database must be empty (no entity); the schema is created or upgraded
by opening the store first.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_queries import MAKERS

from burgo.ngsild.context import core_context
from burgo.ngsild.model import Entity
from burgo.ngsild.parse import parse_entity
from burgo.ngsild.temporal import to_millis
from burgo.ngsild.update import create_entity
from burgo.store.history_rows import Memo, changed_instances
from burgo.store.postgres import PostgresStore
from burgo.store.postgres.entities import entity_doc
from burgo.store.postgres.qindex import attribute_rows, geo_rows
from burgo.store.postgres.temporal_write import Encoded, encode, month_after, month_of, rollup_rows

CREATED = "2024-05-01T10:00:00.000Z"
YEAR_START = datetime(2023, 1, 1, tzinfo=UTC)
# When the readings were imported (their recorded time: the temporal API's modifiedAt).
IMPORTED = datetime(2024, 5, 2, tzinfo=UTC)
# The indexes built after loading rather than kept up row by row.
LATE_INDEXES = ("entity_attr_values", "entity_geo", "entities")
# A NO2 reading as bench_temporal.py sends it, minute m of the year (the same float arithmetic).
_READING = "round(((40 + (m %% 1440)::float8 / 60) + (m %% 7)::float8 * 0.25)::numeric, 2)::float8"


class FixedClock:
    """A clock that always reads the same time."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self) -> datetime:
        """The fixed moment."""
        return self.moment


@dataclass
class Rows:
    """The rows of one chunk of entities, by table."""

    entities: list[tuple[Any, ...]] = field(default_factory=list)
    values: list[tuple[Any, ...]] = field(default_factory=list)
    geo: list[tuple[Any, ...]] = field(default_factory=list)
    types: list[tuple[Any, ...]] = field(default_factory=list)
    history_entities: list[tuple[Any, ...]] = field(default_factory=list)
    series: list[tuple[Any, ...]] = field(default_factory=list)
    history: list[tuple[Any, ...]] = field(default_factory=list)
    rollups: list[tuple[Any, ...]] = field(default_factory=list)
    shapes: list[tuple[Any, ...]] = field(default_factory=list)

    def tables(self) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
        """(COPY statement, rows) for each table, shapes and series before what refers to them."""
        yield "COPY history_shapes (id, doc) FROM STDIN", self.shapes
        yield (
            "COPY entities (tenant, id, types, created_at, modified_at, doc) FROM STDIN",
            (self.entities),
        )
        yield (
            "COPY entity_attr_values (tenant, entity_id, attr, kind, num, txt) FROM STDIN",
            self.values,
        )
        yield (
            "COPY entity_geo (tenant, entity_id, name, geometry, bounds, lon, lat) FROM STDIN",
            self.geo,
        )
        yield "COPY entity_type_ids (tenant, type, id) FROM STDIN", self.types
        yield (
            "COPY history_entities (tenant, id, types, created_at, deleted_at) FROM STDIN",
            self.history_entities,
        )
        yield (
            "COPY history_series (tenant, id, entity_id, attr, dataset_id, kind, mixed) FROM STDIN",
            self.series,
        )
        yield (
            "COPY history (tenant, series, t, seq, whole, num, shape, doc, rec) FROM STDIN",
            self.history,
        )
        yield (
            "COPY history_rollups (tenant, series, grain, bucket, n, total, low, high, sumsq, "
            "whole) FROM STDIN",
            self.rollups,
        )


class Town:
    """Turns the town's entities into rows, numbering series and shapes as the store would
    (in the order it meets them, from an empty database)."""

    def __init__(self, tenant: str = "") -> None:
        self.tenant = tenant
        self.ctx = core_context()
        self.rng = random.Random(7)
        self.next_series = 1
        self.shape_ids: dict[str, int] = {}
        self.no2_series: list[int] = []  # the NO2 series of AirQualityObserved, in order
        self.months: set[int] = set()
        self.type_sets: Counter[tuple[str, ...]] = Counter()
        self.reading = parse_entity(
            {"id": "urn:ngsi-ld:AirQualityObserved:sample", "type": "AirQualityObserved",
             "no2": {"type": "Property", "value": 40.5, "unitCode": "GQ",
                     "observedAt": "2023-01-01T00:00:00Z"}},
            self.ctx,
        )  # fmt: skip
        (self.no2,) = self.reading.attrs

    def entity(self, number: int) -> Entity:
        """Entity ``number`` of the town, as created through the API at CREATED."""
        return create_entity(parse_entity(MAKERS[number % 3](number, self.rng), self.ctx), CREATED)

    def add(self, entity: Entity, rows: Rows) -> None:
        """The rows of creating ``entity``: as ``write_entities`` and its change hooks write."""
        tenant, entity_id = self.tenant, entity.id
        types = list(dict.fromkeys(entity.types))
        rows.entities.append(
            (tenant, entity_id, types, entity.created_at or "", entity.modified_at or "",
             entity_doc(entity))
        )  # fmt: skip
        for name, instances in entity.attrs.items():
            rows.values.extend(attribute_rows(tenant, entity_id, name, instances))
        rows.geo.extend(geo_rows(tenant, entity))
        rows.types.extend((tenant, name, entity_id) for name in sorted(set(types)))
        self.type_sets[tuple(sorted(set(types)))] += 1
        # The history of the creation (temporal_write.record_change with nothing before).
        memo = Memo()
        at = memo.millis(entity.created_at or "", "time of the change")
        changed, _ = changed_instances(None, entity)
        items = [encode((entity_id, n, a.dataset_id or ""), a, at, memo) for n, a in changed]
        rows.history_entities.append((tenant, entity_id, types, at, None))
        self.record(items, rows)

    def record(self, items: Sequence[Encoded], rows: Rows) -> None:
        """Series (new ones numbered), shapes, instances and rollups of new series' items."""
        points: dict[int, list[tuple[int, float, bool]]] = {}
        for item in items:
            series = self.next_series
            self.next_series += 1
            rows.series.append((self.tenant, series, *item.key, item.kind, item.mixed))
            if item.key[1] == self.no2:
                self.no2_series.append(series)
            shape = item.shape
            if isinstance(shape, str):
                if shape not in self.shape_ids:
                    self.shape_ids[shape] = len(self.shape_ids) + 1
                    rows.shapes.append((self.shape_ids[shape], shape))
                shape = self.shape_ids[shape]
            self.months.add(month_of(item.t))
            rows.history.append(
                (self.tenant, series, item.t, 0, item.whole, item.num, shape, item.doc, item.rec)
            )
            if item.num is not None:
                points.setdefault(series, []).append((item.t, item.num, item.whole))
        rows.rollups.extend(rollup_rows(self.tenant, points))


def _progress(what: str, done: int, total: int, started: float) -> None:
    elapsed = time.perf_counter() - started
    rate = done / elapsed if elapsed else 0.0
    eta = (total - done) / rate if rate else 0.0
    print(
        f"\r{what}: {done:,}/{total:,} ({100 * done / total:.0f} %), {rate:,.0f}/s, "
        f"{elapsed:.0f} s, about {eta:.0f} s left   ",
        end="",
        file=sys.stderr,
        flush=True,
    )


async def _open_store(url: str, months: Sequence[int]) -> None:
    """Create or upgrade the schema, and the history partitions of ``months``, the store's way."""
    store = PostgresStore(url, max_connections=2, clock=FixedClock(IMPORTED))
    await store.open()
    try:
        if await store.count_entities(""):
            sys.exit("seed_scale: the database holds entities already; give it an empty one")
        await store._ensure_months(months)
    finally:
        await store.close()


def _month_starts(first: int, last: int) -> list[int]:
    months, start = [], month_of(first)
    while start <= last:
        months.append(start)
        start = month_after(start)
    return months


def seed(url: str, entities: int, stations: int, days: int, chunk: int = 5000) -> dict[str, float]:
    """Fill the empty database at ``url``; seconds taken by each step."""
    town = Town()
    year_start = to_millis(YEAR_START)
    minutes = days * 1440
    months = {month_of(to_millis(datetime.fromisoformat(CREATED)))}
    if stations and minutes:
        months.update(_month_starts(year_start, year_start + (minutes - 1) * 60000))
    took: dict[str, float] = {}
    started = time.perf_counter()
    asyncio.run(_open_store(url, sorted(months)))
    with psycopg.connect(url) as conn:
        conn.execute("SET synchronous_commit = off")
        late = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename = ANY(%s) AND indexname NOT IN "
            "(SELECT conname FROM pg_constraint WHERE contype IN ('p', 'u'))",
            (list(LATE_INDEXES),),
        ).fetchall()
        for name, _ in late:
            conn.execute(f'DROP INDEX "{name}"')
        conn.commit()
        # The entities and everything their creation writes.
        for first in range(0, entities, chunk):
            rows = Rows()
            for number in range(first, min(entities, first + chunk)):
                town.add(town.entity(number), rows)
            with conn.cursor() as cursor:
                for statement, table_rows in rows.tables():
                    if table_rows:
                        with cursor.copy(statement) as copy:
                            for row in table_rows:
                                copy.write_row(row)
            conn.commit()
            _progress("entities", min(entities, first + chunk), entities, started)
        print(file=sys.stderr)
        took["entities"] = time.perf_counter() - started
        # With PostGIS, each geometry's shape (burgo_shape, as the store writes it).
        step = time.perf_counter()
        postgis = conn.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = 'entity_geo' AND column_name = 'shape'"
        ).fetchone()
        if postgis:
            conn.execute("UPDATE entity_geo SET shape = burgo_shape(geometry::text)")
            conn.commit()
        took["shapes"] = time.perf_counter() - step
        # A year (or --days) of 1-minute readings for the first stations, as imported.
        step = time.perf_counter()
        station_series = town.no2_series[:stations]
        if station_series and minutes:
            _import_readings(conn, town, station_series, year_start, minutes)
        took["readings"] = time.perf_counter() - step
        # The entities by type set, as folded counts (slot 0).
        with (
            conn.cursor() as cursor,
            cursor.copy("COPY entity_type_counts (tenant, types, slot, n) FROM STDIN") as copy,
        ):
            for type_set, n in town.type_sets.items():
                copy.write_row((town.tenant, list(type_set), 0, n))
        step = time.perf_counter()
        for table, column in (("history_series", "id"), ("history_shapes", "id")):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                f"(SELECT coalesce(max({column}), 0) + 1 FROM {table}), false)"
            )
        conn.commit()
        for name, definition in late:
            print(f"building {name}", file=sys.stderr, flush=True)
            conn.execute(definition)
            conn.commit()
        took["indexes"] = time.perf_counter() - step
    step = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        print("vacuum analyze", file=sys.stderr, flush=True)
        conn.execute("VACUUM (ANALYZE)")
    took["vacuum"] = time.perf_counter() - step
    took["total"] = time.perf_counter() - started
    return took


def _import_readings(
    conn: psycopg.Connection[Any], town: Town, series: Sequence[int], start: int, minutes: int
) -> None:
    """The readings of ``series`` (one station each) and their rollups, one station per
    transaction; their encoding is the store's for such an instance."""
    (attr,) = town.reading.attrs[town.no2]
    item = encode(("", town.no2, ""), attr, to_millis(IMPORTED), Memo())
    assert isinstance(item.shape, str) and item.doc is None and not item.whole
    shape = town.shape_ids.get(item.shape)
    if shape is None:
        shape = town.shape_ids[item.shape] = len(town.shape_ids) + 1
        conn.execute("INSERT INTO history_shapes (id, doc) OVERRIDING SYSTEM VALUE "
                     "VALUES (%s, %s)", (shape, item.shape))  # fmt: skip
    started = time.perf_counter()
    for done, sid in enumerate(series, 1):
        conn.execute(
            "INSERT INTO history (tenant, series, t, seq, whole, num, shape, doc, rec) "
            f"SELECT %(tenant)s, %(series)s, %(start)s + m * 60000, 0, false, {_READING}, "
            "%(shape)s, NULL, %(rec)s FROM generate_series(0::bigint, %(minutes)s - 1) AS m",
            {"tenant": town.tenant, "series": sid, "start": start, "shape": shape,
             "rec": item.rec, "minutes": minutes},
        )  # fmt: skip
        # Summed in time order, a week per import as the store's rollups add them up.
        conn.execute(
            "INSERT INTO history_rollups (tenant, series, grain, bucket, n, total, low, high, "
            "sumsq, whole) SELECT %(tenant)s, %(series)s, g.grain, h.t - h.t %% g.grain, "
            "count(*), sum(h.num ORDER BY h.t), min(h.num), max(h.num), "
            "sum(h.num * h.num ORDER BY h.t), bool_and(h.whole) "
            "FROM history h CROSS JOIN (VALUES (3600000), (86400000)) AS g(grain) "
            "WHERE h.tenant = %(tenant)s AND h.series = %(series)s AND h.t >= %(start)s "
            "AND h.t < %(end)s GROUP BY 3, 4",
            {"tenant": town.tenant, "series": sid, "start": start, "end": start + minutes * 60000},
        )  # fmt: skip
        conn.commit()
        _progress("stations' readings", done, len(series), started)
    print(file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Seed and report the time taken and the database's size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="an empty PostgreSQL database (postgresql://...)")
    parser.add_argument("--entities", type=int, default=1_000_000)
    parser.add_argument(
        "--stations", type=int, default=84, help="stations given a year of 1-minute NO2"
    )
    parser.add_argument("--days", type=int, default=365, help="days of readings per station")
    args = parser.parse_args(argv)
    took = seed(args.url, args.entities, args.stations, args.days)
    with psycopg.connect(args.url) as conn:
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM entities), (SELECT count(*) FROM history), "
            "(SELECT count(*) FROM entity_attr_values), (SELECT count(*) FROM history_rollups)"
        ).fetchone()
    assert size is not None and counts is not None
    print(f"{counts[0]:,} entities, {counts[1]:,} history instances, {counts[2]:,} attribute "
          f"value rows, {counts[3]:,} rollups; database {size[0] / 2**30:.1f} GiB")  # fmt: skip
    print(" · ".join(f"{step} {seconds:.0f} s" for step, seconds in took.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
