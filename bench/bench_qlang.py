"""q language benchmark: type + two q filters over 100,000 entities, common and rare matches.

Run from the repository root::

    .venv/bin/python bench/bench_qlang.py                   # 100,000 entities, 200 queries each
    .venv/bin/python bench/bench_qlang.py --workdir /tmp/bq --requests 100
    .venv/bin/python bench/bench_qlang.py --postgres postgresql://...     # on PostgreSQL

Seeds the same Fundão town as bench/bench_queries.py (through the store, before the server
starts; not a figure), then ``burgo serve`` answers ``GET /entities?type=...&q=...&limit=100`` one
at a time on a keep-alive connection. Every answer is checked (status 200, not empty, at most 100
entities) and a wrong answer fails the run. "common" queries fill the page early in id order;
"rare" ones match a few dozen entities of 33,333, so the whole type is considered; the last row
uses a path the attribute-value index does not answer (``.observedAt``), for comparison.
"""

from __future__ import annotations

import argparse
import http.client
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_entities import HOST, running_server
from bench_queries import Figure, measure, prepare
from bench_queries import _path as query_path


def _some(response: http.client.HTTPResponse, body: list[object]) -> float:
    if not body or len(body) > 100:
        sys.exit(f"bench: a query returned {len(body)} entities; the seed or the query is wrong")
    return float(len(body))


def queries(rng: random.Random, n: int) -> dict[str, tuple[str, list[str]]]:
    """Name -> (type, q texts) of each measured query."""
    return {
        "common: fillingLevel>x;status==\"ok\"": (
            "WasteContainer",
            [f'fillingLevel>{rng.choice([0.5, 0.6, 0.7, 0.8])};status=="ok"' for _ in range(n)],
        ),
        "rare: fillingLevel>x;status==\"dropped\"": (
            "WasteContainer",
            [f'fillingLevel>{rng.choice([0.99, 0.995])};status=="dropped"' for _ in range(n)],
        ),
        "rare: temperature range;airQualityLevel": (
            "AirQualityObserved",
            [f'temperature=={t}..{t + 0.1};airQualityLevel=="unhealthy"'
             for t in (round(rng.uniform(0, 35), 1) for _ in range(n))],
        ),
        "not indexed: fillingLevel.observedAt;storedWasteKind": (
            "WasteContainer",
            ['fillingLevel.observedAt==2024-05-01T10:00:00Z;storedWasteKind=="glass"'] * n,
        ),
    }  # fmt: skip


def run(port: int, pid: int, args: argparse.Namespace) -> list[Figure]:
    """One figure per query."""
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    try:
        figures = []
        for name, (entity_type, texts) in queries(random.Random(5), args.requests).items():
            paths = [query_path({"type": entity_type, "q": q, "limit": "100"}) for q in texts]
            figures.append(measure(conn, pid, name, paths, _some, 50, args.postgres_pid))
        return figures
    finally:
        conn.close()


def markdown(figures: list[Figure], args: argparse.Namespace) -> str:
    """The figures as a Markdown table."""
    store = "PostgreSQL" if args.postgres else "SQLite"
    lines = [
        f"{store}, {args.entities:,} entities, {args.requests} requests per query, limit=100.",
        "",
        "| query | p50 ms | p95 ms | target p95 | met | server CPU ms/req | PostgreSQL CPU ms/req "
        "| entities per answer |",
        "|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for f in figures:
        db_cpu = "" if f.db_cpu_ms is None else f"{f.db_cpu_ms:.1f}"
        lines.append(
            f"| {f.name} | {f.p50:.1f} | {f.p95:.1f} | < {f.target_ms:.0f} ms | "
            f"{'yes' if f.met else 'NO'} | {f.cpu_ms:.1f} | {db_cpu} | {f.results:,.1f} |"
        )
    lines += ["", "Example requests:", ""]
    lines += [f"- `GET {f.example}`" for f in figures]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Seed, serve, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument(
        "--workdir", type=Path, help="keep the seeded database here and reuse it next time"
    )
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
    with tempfile.TemporaryDirectory(prefix="burgo-bench-qlang-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        prepare(args, workdir)
        with running_server("FULL", workdir, args.postgres) as (process, port, _):
            figures = run(port, process.pid, args)
    print(markdown(figures, args))
    return 0 if all(f.met for f in figures[:3]) else 1


if __name__ == "__main__":
    sys.exit(main())
