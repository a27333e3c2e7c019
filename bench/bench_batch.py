"""Batch operations benchmark: starts ``burgo serve``, posts batches of Smart Data Models entities.

Run from the repository root::

    .venv/bin/python bench/bench_batch.py                     # 50,000 entities in batches of 2,000
    .venv/bin/python bench/bench_batch.py --entities 20000 --batch 5000 --connections 1
    .venv/bin/python bench/bench_batch.py --modes FULL POSTGRES --postgres private

Figures, measured by a Python client end to end (HTTP request, parsing, storing, answer):

- batch create: entities per second over all batches (bodies serialized before the clock starts);
- batch upsert: seconds per request for 1,000 existing entities with 10 attributes each;
- CPU per entity of Burgo (the server and its workers) and, for a PostgreSQL server on this
  machine, of the database (every process of the server, backends that ended included).

``--modes POSTGRES`` runs on a new database of the PostgreSQL server ``--postgres URL``
(``private``: a private durable cluster, see ``databases.py``).

Every answer is checked (create: 201 with every id; upsert: 204); any other answer fails the run.
"""

from __future__ import annotations

import argparse
import http.client
import math
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_entities import HOST, cpu_seconds, database_cpu_seconds, database_pid, running_server
from databases import add_store_options, fresh_database, postgres_server

OPS = "/ngsi-ld/v1/entityOperations"
OBSERVED = "2024-05-01T10:00:00Z"


def air_quality(number: int) -> dict[str, Any]:
    """An AirQualityObserved with 10 attributes (Smart Data Models, normalized)."""
    return {
        "id": f"urn:ngsi-ld:AirQualityObserved:fundao:{number}",
        "type": "AirQualityObserved",
        "no2": {"type": "Property", "value": 40 + number % 50, "unitCode": "GQ",
                "observedAt": OBSERVED},
        "pm10": {"type": "Property", "value": 12.5, "unitCode": "GQ", "observedAt": OBSERVED},
        "pm25": {"type": "Property", "value": 7.25, "unitCode": "GQ", "observedAt": OBSERVED},
        "o3": {"type": "Property", "value": 61, "unitCode": "GQ", "observedAt": OBSERVED},
        "temperature": {"type": "Property", "value": 17.5, "unitCode": "CEL"},
        "relativeHumidity": {"type": "Property", "value": 0.54},
        "airQualityLevel": {"type": "Property", "value": "moderate"},
        "dateObserved": {"type": "Property", "value": {"@type": "DateTime", "@value": OBSERVED}},
        "location": {"type": "GeoProperty", "value": {
            "type": "Point", "coordinates": [-7.5 + number / 1e5, 40.1]}},
        "refDevice": {"type": "Relationship", "object": f"urn:ngsi-ld:Device:aq-{number}"},
    }  # fmt: skip


def parking_spot(number: int) -> dict[str, Any]:
    """A ParkingSpot (Smart Data Models, normalized)."""
    return {
        "id": f"urn:ngsi-ld:ParkingSpot:fundao:{number}",
        "type": "ParkingSpot",
        "name": {"type": "Property", "value": f"A-{number}"},
        "status": {"type": "Property", "value": "free", "observedAt": OBSERVED},
        "category": {"type": "Property", "value": ["onStreet"]},
        "location": {"type": "GeoProperty", "value": {
            "type": "Point", "coordinates": [-7.5 + number / 1e5, 40.14]}},
        "refParkingSite": {"type": "Relationship",
                           "object": f"urn:ngsi-ld:OnStreetParking:fundao:{number // 100}"},
    }  # fmt: skip


def waste_container(number: int) -> dict[str, Any]:
    """A WasteContainer (Smart Data Models, normalized)."""
    return {
        "id": f"urn:ngsi-ld:WasteContainer:fundao:{number}",
        "type": "WasteContainer",
        "fillingLevel": {"type": "Property", "value": (number % 100) / 100,
                         "observedAt": OBSERVED},
        "status": {"type": "Property", "value": "ok"},
        "wasteType": {"type": "Property", "value": ["organic"]},
        "location": {"type": "GeoProperty", "value": {
            "type": "Point", "coordinates": [-7.49 + number / 1e5, 40.13]}},
    }  # fmt: skip


MODELS = (air_quality, parking_spot, waste_container)


class Client:
    """One keep-alive HTTP connection to the server."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection(HOST, port, timeout=300)

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """POST a JSON body; the status and the answer's body."""
        self.conn.request("POST", path, body, {"Content-Type": "application/json"})
        response = self.conn.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


def create_batches(count: int, size: int) -> list[tuple[bytes, int]]:
    """Serialized create bodies of ``size`` entities (the three models in turn), and their sizes."""
    batches = []
    for start in range(0, count, size):
        numbers = range(start, min(start + size, count))
        batches.append((orjson.dumps([MODELS[n % 3](n) for n in numbers]), len(numbers)))
    return batches


class CpuMeter:
    """CPU seconds used by Burgo and (when local) the database since the meter was made."""

    def __init__(self, pid: int, db_pid: int | None) -> None:
        self.pid, self.db_pid = pid, db_pid
        self.burgo = cpu_seconds(pid)
        self.database = database_cpu_seconds(db_pid) if db_pid is not None else 0.0

    def per_entity(self, entities: int) -> dict[str, float]:
        """µs of CPU per entity since the meter was made (database: NaN when not measured)."""
        burgo = cpu_seconds(self.pid) - self.burgo
        database = (
            database_cpu_seconds(self.db_pid) - self.database
            if self.db_pid is not None
            else float("nan")
        )
        return {"server_cpu_us": 1e6 * burgo / entities, "db_cpu_us": 1e6 * database / entities}


def _us(value: float) -> str:
    """A CPU figure in µs, or a dash where it was not measured (SQLite has no server)."""
    return "—" if math.isnan(value) else f"{value:.0f}"


def bench_create(
    port: int, pid: int, db_pid: int | None, args: argparse.Namespace
) -> dict[str, float]:
    """Post every create batch over ``args.connections`` connections; entities per second."""
    batches = create_batches(args.entities, args.batch)
    failures: list[str] = []
    lock = threading.Lock()
    pending = list(reversed(batches))

    def worker() -> None:
        client = Client(port)
        try:
            while True:
                with lock:
                    if not pending:
                        return
                    body, size = pending.pop()
                status, answer = client.post(f"{OPS}/create", body)
                if status != 201 or len(orjson.loads(answer)) != size:
                    with lock:
                        failures.append(f"{status}: {answer[:300]!r}")
        finally:
            client.close()

    meter = CpuMeter(pid, db_pid)
    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(args.connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    cpu = meter.per_entity(args.entities)
    if failures:
        sys.exit(f"bench: {len(failures)} create batches failed, first: {failures[0]}")
    return {
        "seconds": elapsed,
        "per_s": args.entities / elapsed,
        **cpu,
    }


def bench_upsert(
    port: int, pid: int, db_pid: int | None, args: argparse.Namespace
) -> tuple[list[float], dict[str, float]]:
    """Upsert the first 1,000 AirQualityObserved again (they exist: 204), timing each request;
    and the CPU per entity upserted."""
    body = orjson.dumps([air_quality(3 * n) for n in range(1000)])
    client = Client(port)
    times = []
    meter = CpuMeter(pid, db_pid)
    try:
        for _ in range(args.upserts):
            started = time.perf_counter()
            status, answer = client.post(f"{OPS}/upsert", body)
            times.append(time.perf_counter() - started)
            if status != 204:
                sys.exit(f"bench: upsert answered {status}: {answer[:300]!r}")
    finally:
        client.close()
    return times, meter.per_entity(1000 * args.upserts)


def run(
    synchronous: str, args: argparse.Namespace, postgres: str | None
) -> tuple[dict[str, float], list[float], dict[str, float]]:
    """One server (SQLite in a synchronous mode, or POSTGRES on a new database of the server
    ``postgres``): the creates, then the upserts."""
    server = postgres if synchronous == "POSTGRES" else None
    with (
        tempfile.TemporaryDirectory(prefix="burgo-bench-") as tmp,
        fresh_database(server, Path(tmp), "batch") as db,
        running_server("FULL" if server else synchronous, Path(tmp), db if server else None) as (
            process,
            port,
            _,
        ),
    ):
        db_pid = database_pid(db) if server else None
        created = bench_create(port, process.pid, db_pid, args)
        print(
            f"  [{synchronous}] create: {args.entities:,} entities in "
            f"{created['seconds']:.2f} s = {created['per_s']:,.0f}/s "
            f"(server CPU {created['server_cpu_us']:.0f} us/entity, "
            f"database CPU {_us(created['db_cpu_us'])} us/entity)",
            file=sys.stderr,
        )
        upserts, upsert_cpu = bench_upsert(port, process.pid, db_pid, args)
        print(
            f"  [{synchronous}] upsert 1,000 x 10 attributes: median "
            f"{statistics.median(upserts):.3f} s, max {max(upserts):.3f} s "
            f"(server CPU {upsert_cpu['server_cpu_us']:.0f} us/entity, "
            f"database CPU {_us(upsert_cpu['db_cpu_us'])} us/entity)",
            file=sys.stderr,
        )
        return created, upserts, upsert_cpu


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line of the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=50_000, help="entities created")
    parser.add_argument("--batch", type=int, default=2_000, help="entities per create request")
    parser.add_argument("--connections", type=int, default=2, help="concurrent clients")
    parser.add_argument("--upserts", type=int, default=5, help="upsert requests timed")
    add_store_options(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a Markdown table."""
    args = parse_args(argv)
    if "POSTGRES" in args.modes and not args.postgres:
        sys.exit("bench: --modes POSTGRES needs --postgres URL (or 'private')")
    print(
        f"{args.entities:,} entities (AirQualityObserved, ParkingSpot, WasteContainer in turn), "
        f"batches of {args.batch:,}, {args.connections} connection(s); "
        f"upsert: 1,000 AirQualityObserved x 10 attributes, {args.upserts} requests.\n"
    )
    print("| store | batch create entities/s | server CPU µs/entity | database CPU µs/entity "
          "| upsert 1,000 median s | upsert max s "
          "| upsert server / database CPU µs/entity |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    with postgres_server(args.postgres) as postgres:
        measured = [(mode, *run(mode, args, postgres)) for mode in args.modes]
    for mode, created, upserts, upsert_cpu in measured:
        print(
            f"| {mode} | {created['per_s']:,.0f} | {created['server_cpu_us']:.0f} | "
            f"{_us(created['db_cpu_us'])} | {statistics.median(upserts):.3f} | "
            f"{max(upserts):.3f} | {upsert_cpu['server_cpu_us']:.0f} / "
            f"{_us(upsert_cpu['db_cpu_us'])} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
