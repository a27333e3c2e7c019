"""Query benchmark: 100,000 Smart Data Models entities over Fundão; p50/p95 of three queries.

Run from the repository root::

    .venv/bin/python bench/bench_queries.py                 # 100,000 entities, 300 queries each
    .venv/bin/python bench/bench_queries.py --entities 20000 --requests 100
    .venv/bin/python bench/bench_queries.py --postgres postgresql://...   # on PostgreSQL
    .venv/bin/python bench/bench_queries.py --postgres URL --entities 1000000 --postgres-pid PID

The database is seeded before the server starts, through the store itself (the same parse and
create path as POST /entities, many entities per writer transaction); the seed time is not a
figure. With ``--postgres URL`` the entities go into that PostgreSQL database (seeded when it
holds no entity, reused when it holds as many as asked). Then ``burgo serve`` answers the
queries over HTTP, one at a time on a keep-alive connection. Every answer is checked (status
200, a plausible body, the count header) and any wrong answer fails the run.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_entities import HOST, cpu_seconds, running_server

# Fundão, Portugal: the town centre, and the box the devices are spread over (about 8 x 9 km).
CENTRE = (-7.5012, 40.1397)
WEST, EAST, SOUTH, NORTH = -7.55, -7.45, 40.10, 40.18
TYPES = ("AirQualityObserved", "ParkingSpot", "WasteContainer")
OBSERVED = "2024-05-01T10:00:00Z"


def _point(rng: random.Random) -> dict[str, object]:
    return {
        "type": "GeoProperty",
        "value": {
            "type": "Point",
            "coordinates": [round(rng.uniform(WEST, EAST), 6), round(rng.uniform(SOUTH, NORTH), 6)],
        },
    }


def air_quality(number: int, rng: random.Random) -> dict[str, object]:
    """An AirQualityObserved entity (Smart Data Models, Environment)."""
    return {
        "id": f"urn:ngsi-ld:AirQualityObserved:fundao-{number:06d}",
        "type": "AirQualityObserved",
        "no2": {"type": "Property", "value": rng.randint(0, 200), "unitCode": "GQ",
                "observedAt": OBSERVED},
        "pm10": {"type": "Property", "value": round(rng.uniform(0, 80), 1), "unitCode": "GQ",
                 "observedAt": OBSERVED},
        "temperature": {"type": "Property", "value": round(rng.uniform(-2, 38), 1),
                        "unitCode": "CEL"},
        "airQualityLevel": {"type": "Property",
                            "value": rng.choice(["good", "moderate", "unhealthy"])},
        "location": _point(rng),
        "refDevice": {"type": "Relationship", "object": f"urn:ngsi-ld:Device:aq-{number:06d}"},
    }  # fmt: skip


def parking_spot(number: int, rng: random.Random) -> dict[str, object]:
    """A ParkingSpot entity (Smart Data Models, Parking)."""
    return {
        "id": f"urn:ngsi-ld:ParkingSpot:fundao-{number:06d}",
        "type": "ParkingSpot",
        "name": {"type": "Property", "value": f"Lugar {number}"},
        "status": {"type": "Property", "value": rng.choice(["free", "occupied", "occupied",
                                                            "closed"]),
                   "observedAt": OBSERVED},
        "category": {"type": "Property", "value": ["onStreet"]},
        "width": {"type": "Property", "value": 2.5, "unitCode": "MTR"},
        "length": {"type": "Property", "value": 5.0, "unitCode": "MTR"},
        "location": _point(rng),
        "refParkingSite": {"type": "Relationship",
                           "object": f"urn:ngsi-ld:OnStreetParking:fundao-{number % 200:03d}"},
    }  # fmt: skip


def waste_container(number: int, rng: random.Random) -> dict[str, object]:
    """A WasteContainer entity (Smart Data Models, WasteManagement)."""
    return {
        "id": f"urn:ngsi-ld:WasteContainer:fundao-{number:06d}",
        "type": "WasteContainer",
        "fillingLevel": {"type": "Property", "value": round(rng.random(), 3),
                         "observedAt": OBSERVED},
        "status": {"type": "Property",
                   "value": rng.choice(["ok"] * 8 + ["lidOpen", "dropped"])},
        "temperature": {"type": "Property", "value": round(rng.uniform(0, 40), 1),
                        "unitCode": "CEL"},
        "storedWasteKind": {"type": "Property", "value": rng.choice(["organic", "paper",
                                                                     "plastic", "glass"])},
        "location": _point(rng),
        "refWasteContainerModel": {"type": "Relationship",
                                   "object": "urn:ngsi-ld:WasteContainerModel:fundao-1"},
    }  # fmt: skip


MAKERS = (air_quality, parking_spot, waste_container)


async def _seed(db: Path | str, count: int) -> None:
    from burgo.ngsild.context import core_context
    from burgo.ngsild.parse import parse_entity
    from burgo.ngsild.update import create_entity
    from burgo.store.batch import EntityWrite
    from burgo.store.postgres import PostgresStore
    from burgo.store.sqlite import SqliteStore

    store: SqliteStore | PostgresStore
    if isinstance(db, str):
        store = PostgresStore(db, max_connections=8)
    else:
        store = SqliteStore(db, synchronous="NORMAL")
    await store.open()
    ctx, rng, now = core_context(), random.Random(7), "2024-05-01T10:00:00.000Z"
    try:
        for start in range(0, count, 5000):
            chunk = [
                create_entity(parse_entity(MAKERS[n % 3](n, rng), ctx), now)
                for n in range(start, min(count, start + 5000))
            ]
            if isinstance(store, PostgresStore):
                # Batches of 500, one transaction each, four at a time.
                parts = [chunk[i : i + 500] for i in range(0, len(chunk), 500)]
                for first in range(0, len(parts), 4):
                    await asyncio.gather(
                        *(
                            store.write_entities("", [EntityWrite(e.id, create=e) for e in part])
                            for part in parts[first : first + 4]
                        )
                    )
            else:
                await asyncio.gather(*(store.create_entity("", e) for e in chunk))
    finally:
        await store.close()


def seed(db: Path | str, count: int) -> float:
    """Write ``count`` entities (a third of each type) into a new SQLite database or an empty
    PostgreSQL one (a URL); seconds taken."""
    started = time.perf_counter()
    asyncio.run(_seed(db, count))
    return time.perf_counter() - started


def stored_entities(url: str) -> int:
    """How many entities the PostgreSQL database at ``url`` holds in the default tenant."""
    from burgo.store.postgres import PostgresStore

    async def count() -> int:
        store = PostgresStore(url, max_connections=1)
        await store.open()
        try:
            return await store.count_entities("")
        finally:
            await store.close()

    return asyncio.run(count())


def prepare(args: argparse.Namespace, workdir: Path) -> float:
    """Seed the database the server will use, unless it is already seeded; seconds taken."""
    if args.postgres:
        held = stored_entities(args.postgres)
        if held == args.entities:
            return 0.0
        if held:
            sys.exit(f"bench: the database holds {held} entities, not 0 or {args.entities}")
        seconds = seed(args.postgres, args.entities)
    elif not (workdir / "burgo.db").exists():
        workdir.mkdir(parents=True, exist_ok=True)
        seconds = seed(workdir / "burgo.db", args.entities)
    else:
        return 0.0
    print(f"seeded {args.entities} entities in {seconds:.1f} s", flush=True)
    return seconds


@dataclass(frozen=True)
class Figure:
    """One query's latencies (ms) and what its answers held."""

    name: str
    example: str
    p50: float
    p95: float
    target_ms: float
    results: float
    cpu_ms: float
    db_cpu_ms: float | None = None

    @property
    def met(self) -> bool:
        """Whether p95 is under the target."""
        return self.p95 < self.target_ms


Check = Callable[[http.client.HTTPResponse, list[object]], float]


def measure(
    conn: http.client.HTTPConnection,
    pid: int,
    name: str,
    paths: list[str],
    check: Check,
    target_ms: float,
    db_pid: int | None = None,
) -> Figure:
    """Send each path once (after a warm-up of five), timing each full answer; also the server's
    CPU time per request (less sensitive than latency to other load on the machine), and the
    database's when ``db_pid`` names its server process (PostgreSQL's postmaster)."""
    for path in paths[:5]:
        conn.request("GET", path)
        conn.getresponse().read()
    times, sizes = [], []
    cpu_before = cpu_seconds(pid)
    db_before = cpu_seconds(db_pid) if db_pid else 0.0
    for path in paths:
        started = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        times.append((time.perf_counter() - started) * 1000)
        if response.status != 200:
            sys.exit(f"bench: {path} answered {response.status}: {body[:300]!r}")
        sizes.append(check(response, orjson.loads(body)))
    cpu_ms = (cpu_seconds(pid) - cpu_before) * 1000 / len(paths)
    db_cpu_ms = (cpu_seconds(db_pid) - db_before) * 1000 / len(paths) if db_pid else None
    times.sort()
    return Figure(
        name,
        paths[0],
        statistics.median(times),
        times[int(len(times) * 0.95) - 1],
        target_ms,
        statistics.mean(sizes),
        cpu_ms,
        db_cpu_ms,
    )


def _path(params: dict[str, str]) -> str:
    return "/ngsi-ld/v1/entities?" + urlencode(params)


def _returned(response: http.client.HTTPResponse, body: list[object]) -> float:
    if not body:
        sys.exit("bench: a query found nothing; the seed or the query is wrong")
    return float(len(body))


def _counted(total: int) -> Check:
    def check(response: http.client.HTTPResponse, body: list[object]) -> float:
        header = response.getheader("NGSILD-Results-Count")
        if header != str(total) or len(body) != 20:
            sys.exit(f"bench: count=true gave {header} and {len(body)} entities, not {total}")
        return float(header)

    return check


def run(port: int, pid: int, args: argparse.Namespace) -> list[Figure]:
    """The three figures of the issue."""
    rng = random.Random(11)
    db = args.postgres_pid
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    n = args.requests
    q_paths = [
        _path({"type": "WasteContainer", "limit": "100",
               "q": f'fillingLevel>{rng.choice([0.5, 0.6, 0.7, 0.8])};status=="ok"'})
        for _ in range(n)
    ]  # fmt: skip
    near_paths = [
        _path({"georel": "near;maxDistance==500", "geometry": "Point", "limit": "100",
               "coordinates": f"[{rng.uniform(WEST + 0.01, EAST - 0.01):.5f},"
                              f"{rng.uniform(SOUTH + 0.01, NORTH - 0.01):.5f}]"})
        for _ in range(n)
    ]  # fmt: skip
    count_paths = [_path({"type": ",".join(TYPES), "count": "true"})] * n
    runs = {
        "q": lambda: measure(
            conn, pid, "type + two q filters, limit=100", q_paths, _returned, 50, db
        ),
        "near": lambda: measure(
            conn, pid, "near;maxDistance==500, limit=100", near_paths, _returned, 50, db
        ),
        "count": lambda: measure(
            conn,
            pid,
            "count=true over all (first page of 20)",
            count_paths,
            _counted(args.entities),
            100,
            db,
        ),
    }
    try:
        return [figure() for name, figure in runs.items() if not args.only or name in args.only]
    finally:
        conn.close()


def markdown(figures: list[Figure], args: argparse.Namespace, seed_s: float) -> str:
    """The figures as a Markdown table."""
    store = "PostgreSQL" if args.postgres else "SQLite"
    lines = [
        f"{store}, {args.entities:,} entities, {args.requests} requests per query "
        f"(seeded in {seed_s:.0f} s, not a figure).",
        "",
        "| query | p50 ms | p95 ms | target p95 | met | server CPU ms/req | PostgreSQL CPU ms/req "
        "| entities per answer |",
        "|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for f in figures:
        db_cpu = "" if f.db_cpu_ms is None else f"{f.db_cpu_ms:.1f}"
        lines.append(
            f"| {f.name} | {f.p50:.1f} | {f.p95:.1f} | < {f.target_ms:.0f} ms | "
            f"{'yes' if f.met else 'NO'} | {f.cpu_ms:.1f} | {db_cpu} | {f.results:,.0f} |"
        )
    lines += ["", "Example requests:", ""]
    lines += [f"- `GET {f.example}`" for f in figures]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Seed, serve, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument(
        "--workdir", type=Path, help="keep the seeded database here and reuse it next time"
    )
    parser.add_argument("--only", choices=("q", "near", "count"), action="append")
    parser.add_argument(
        "--postgres", metavar="URL", help="a PostgreSQL database to seed (if empty) and query"
    )
    parser.add_argument(
        "--postgres-pid",
        type=int,
        metavar="PID",
        help="the PostgreSQL server's postmaster: its CPU per request is reported too",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="burgo-bench-q-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        seed_s = prepare(args, workdir)
        with running_server("FULL", workdir, args.postgres) as (process, port, _):
            figures = run(port, process.pid, args)
    print(markdown(figures, args, seed_s))
    return 0 if all(f.met for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
