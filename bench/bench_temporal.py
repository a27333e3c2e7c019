"""Temporal API benchmark: imports a year of 1-minute history, then times raw and aggregated reads.

Run from the repository root::

    .venv/bin/python bench/bench_temporal.py                 # one year, 1-minute data
    .venv/bin/python bench/bench_temporal.py --days 30       # a quicker run
    .venv/bin/python bench/bench_temporal.py --postgres postgresql://...   # an empty database
    .venv/bin/python bench/bench_temporal.py --postgres postgresql://... --entity ID   # reads only

It starts ``burgo serve`` (default settings, synchronous FULL) on a new database and:

1. imports ``--days`` of 1-minute NO2 readings of one entity with ``POST /temporal/entities``, one
   week per request, and reports instances per second;
2. stops the server (SQLite checkpoints its WAL) and reports the database file's growth per
   instance, against the same server started and stopped with the entity but no history (on
   PostgreSQL: the history tables' size, partitions and indexes included, as /metrics reports it);
3. restarts it and times ``GET /temporal/entities/{id}`` for one day of raw instances (1,440)
   and ``aggrMethods=avg,max&aggrPeriodDuration=PT1H`` over the whole range.

Every answer is checked (status and number of instances or periods); any mismatch fails the run.
With ``--entity ID`` it only times step 3, on the history an entity already has in the
``--postgres`` database (the stations ``bench/seed_scale.py`` gives a year of readings from
2023-01-01).
The PATCH rate with history recorded is the entity benchmark: ``bench/bench_entities.py``.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_entities import HOST, cpu_seconds, running_server

ENTITY = "urn:ngsi-ld:AirQualityObserved:bench-temporal"
START = datetime(2023, 1, 1, tzinfo=UTC)
TEMPORAL = "/ngsi-ld/v1/temporal/entities"


def stamp(moment: datetime) -> str:
    """A DateTime as clients send it."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def week_body(first_minute: int, minutes: int, entity: str = ENTITY) -> bytes:
    """A temporal entity holding ``minutes`` readings from ``first_minute`` on."""
    instances = [
        {"type": "Property", "value": round(40 + (m % 1440) / 60 + (m % 7) * 0.25, 2),
         "unitCode": "GQ", "observedAt": stamp(START + timedelta(minutes=m))}
        for m in range(first_minute, first_minute + minutes)
    ]  # fmt: skip
    return orjson.dumps({"id": entity, "type": "AirQualityObserved", "no2": instances})


def call(
    conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None
) -> tuple[int, bytes, float]:
    """One request on a keep-alive connection: status, body and seconds taken."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    began = time.perf_counter()
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    return response.status, data, time.perf_counter() - began


def import_history(port: int, days: int) -> tuple[int, float]:
    """Import ``days`` of 1-minute data a week per request; instances and seconds."""
    conn = http.client.HTTPConnection(HOST, port, timeout=600)
    total, spent = days * 1440, 0.0
    for first in range(0, total, 7 * 1440):
        body = week_body(first, min(7 * 1440, total - first))
        status, data, seconds = call(conn, "POST", TEMPORAL, body)
        if status not in (201, 204):
            sys.exit(f"bench: import answered {status}: {data[:300]!r}")
        spent += seconds
    conn.close()
    return total, spent


def timed(port: int, path: str, runs: int, check: int, key: str, warmup: int = 0) -> list[float]:
    """Milliseconds of ``runs`` GETs of ``path`` (after ``warmup`` untimed ones); each answer must
    hold ``check`` items."""
    conn = http.client.HTTPConnection(HOST, port, timeout=600)
    times = []
    for _ in range(warmup + runs):
        status, data, seconds = call(conn, "GET", path)
        if status != 200:
            sys.exit(f"bench: {path} answered {status}: {data[:300]!r}")
        no2 = orjson.loads(data)["no2"]
        found = len(no2[key]) if isinstance(no2, dict) else len(no2)
        if found != check:
            sys.exit(f"bench: {path} gave {found} items, expected {check}")
        times.append(seconds * 1000)
    conn.close()
    print(
        f"bench: {path[:60]}... first {warmup + 3} ms: "
        f"{', '.join(f'{t:.0f}' for t in times[: warmup + 3])}",
        file=sys.stderr,
    )
    return times[warmup:]


def db_bytes(workdir: Path) -> int:
    """Size of the database file and its WAL."""
    return sum(p.stat().st_size for p in workdir.glob("burgo.db*") if p.suffix != ".db-shm")


def history_bytes(port: int) -> float:
    """The bytes the history takes, as /metrics reports them (measured when the store opened)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    status, data, _ = call(conn, "GET", "/metrics")
    conn.close()
    if status != 200:
        sys.exit(f"bench: /metrics answered {status}")
    for line in data.decode().splitlines():
        if line.startswith("burgo_history_bytes "):
            return float(line.split()[1])
    sys.exit("bench: /metrics has no burgo_history_bytes")


def percentile(values: list[float], share: float) -> float:
    """The ``share`` percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def reads(port: int, entity: str, args: argparse.Namespace) -> tuple[list[float], list[float]]:
    """Milliseconds of the raw reads of one day and of the aggregated reads of every day."""
    day = START + timedelta(days=args.days // 2)
    raw = f"{TEMPORAL}/{entity}?" + urlencode({
        "attrs": "no2", "timerel": "between", "timeAt": stamp(day),
        "endTimeAt": stamp(day + timedelta(days=1))})  # fmt: skip
    # Each reader thread's SQLite connection is opened by its first read: warm them up.
    raw_ms = timed(port, raw, args.runs, 1440, "", warmup=args.warmup)
    end = START + timedelta(days=args.days)
    aggregated = f"{TEMPORAL}/{entity}?" + urlencode({
        "attrs": "no2", "format": "aggregatedValues", "aggrMethods": "avg,max",
        "aggrPeriodDuration": "PT1H", "timerel": "between", "timeAt": stamp(START),
        "endTimeAt": stamp(end)})  # fmt: skip
    agg_ms = timed(port, aggregated, args.aggregate_runs, args.days * 24, "avg", warmup=args.warmup)
    return raw_ms, agg_ms


def existing(args: argparse.Namespace) -> int:
    """Time the reads of an entity whose history is already in the PostgreSQL database."""
    if not args.postgres:
        sys.exit("bench: --entity reads a --postgres database")
    with (
        tempfile.TemporaryDirectory(prefix="burgo-bench-temporal-") as tmp,
        running_server("FULL", Path(tmp), args.postgres) as (process, port, _),
    ):
        history = history_bytes(port)
        before = cpu_seconds(process.pid)
        raw_ms, agg_ms = reads(port, args.entity, args)
        cpu_ms = (cpu_seconds(process.pid) - before) * 1000
    reads_done = args.runs + args.aggregate_runs + 2 * args.warmup
    print(f"{args.entity}: {args.days} days of 1-minute data, PostgreSQL holding "
          f"{history / 2**30:.1f} GiB of history.\n")  # fmt: skip
    print("| figure | value |\n|---|---:|")
    print(f"| one day raw (1,440 instances): p50 / p95 | {statistics.median(raw_ms):.1f} / "
          f"{percentile(raw_ms, 0.95):.1f} ms |")  # fmt: skip
    print(f"| avg,max per hour over {args.days} days ({args.days * 24:,} periods): p50 / p95 / "
          f"max | {statistics.median(agg_ms):.1f} / {percentile(agg_ms, 0.95):.1f} / "
          f"{max(agg_ms):.1f} ms |")  # fmt: skip
    print(f"| server CPU, all {reads_done} reads | {cpu_ms:.0f} ms |")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365, help="days of 1-minute data imported")
    parser.add_argument("--runs", type=int, default=100, help="timed raw reads")
    parser.add_argument("--aggregate-runs", type=int, default=20, help="timed aggregated reads")
    parser.add_argument("--warmup", type=int, default=10, help="untimed reads before each")
    parser.add_argument("--postgres", metavar="URL",
                        help="serve from this empty PostgreSQL database, not SQLite")  # fmt: skip
    parser.add_argument("--entity", metavar="ID",
                        help="only time the reads of this entity's history, already in the "
                             "--postgres database (bench/seed_scale.py's stations)")  # fmt: skip
    args = parser.parse_args(argv)
    db = args.postgres
    if args.entity:
        return existing(args)
    with tempfile.TemporaryDirectory(prefix="burgo-bench-temporal-") as tmp:
        workdir = Path(tmp)
        with running_server("FULL", workdir, db) as (_, port, _):
            conn = http.client.HTTPConnection(HOST, port, timeout=60)
            status, _, _ = call(conn, "POST", TEMPORAL, week_body(-1, 1))
            if status != 201:
                sys.exit(f"bench: creating the entity answered {status}")
        empty: float = db_bytes(workdir)
        with running_server("FULL", workdir, db) as (_, port, _):
            instances, seconds = import_history(port, args.days)
        full: float = db_bytes(workdir)
        with running_server("FULL", workdir, db) as (_, port, _):
            if db is not None:
                full = history_bytes(port)
            raw_ms, agg_ms = reads(port, ENTITY, args)
    per_instance = (full - (empty if db is None else 0)) / instances
    rows = [
        ("import (POST /temporal/entities, a week per request)",
         f"{instances / seconds:,.0f} instances/s ({seconds:.1f} s)"),
        ("database growth per numeric instance (rollups and indexes included)",
         f"{per_instance:.1f} bytes"),
        ("one day raw (1,440 instances): p50 / p95",
         f"{statistics.median(raw_ms):.1f} / {percentile(raw_ms, 0.95):.1f} ms"),
        (f"avg,max per hour over {args.days} days ({args.days * 24:,} periods): p50 / p95 / max",
         f"{statistics.median(agg_ms):.1f} / {percentile(agg_ms, 0.95):.1f} / "
         f"{max(agg_ms):.1f} ms"),
    ]  # fmt: skip
    backend = "PostgreSQL" if db is not None else "SQLite"
    print(f"{args.days} days of 1-minute data ({instances:,} instances), one attribute, "
          f"{backend}.\n")  # fmt: skip
    print("| figure | value |\n|---|---:|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
