"""Fresh databases for the benchmarks: a new SQLite file, or a new database on a PostgreSQL server.

``--postgres URL`` in a benchmark names a PostgreSQL server (any database of it; the user must be
allowed to create databases): each run gets a database of its own, dropped afterwards.
``--postgres private`` starts a private durable cluster (fsync and synchronous_commit on, loopback,
a free port) for the length of the benchmark, as the tests do.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import count
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

PRIVATE = "private"
_runs = count(1)


def add_store_options(parser: argparse.ArgumentParser) -> None:
    """``--modes`` (SQLite synchronous modes, or POSTGRES) and ``--postgres URL|private``."""
    parser.add_argument("--modes", nargs="+", default=["FULL"],
                        choices=["FULL", "NORMAL", "POSTGRES"],
                        help="sqlite synchronous modes, or POSTGRES")  # fmt: skip
    parser.add_argument("--postgres", metavar="URL",
                        help="the PostgreSQL server of POSTGRES (a new database is made in it), "
                        f"or '{PRIVATE}' for a private durable cluster")  # fmt: skip


@contextmanager
def postgres_server(url: str | None) -> Iterator[str | None]:
    """The server URL to use: ``url`` itself, a private cluster's for ``private``, or None."""
    if url != PRIVATE:
        yield url
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.services import postgresql

    with postgresql(durable=True) as server:
        yield server.url()


@contextmanager
def fresh_database(server: str | None, workdir: Path, name: str) -> Iterator[str]:
    """What ``burgo serve --db`` takes for a new, empty database: a file in ``workdir`` without a
    server, else a new database on ``server`` (dropped when the block ends)."""
    if server is None:
        yield str(workdir / f"{name}.db")
        return
    import psycopg
    from psycopg import sql

    dbname = f"burgo_bench_{name}_{os.getpid()}_{next(_runs)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    try:
        yield urlunsplit(urlsplit(server)._replace(path=f"/{dbname}"))
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            conn.execute(drop.format(sql.Identifier(dbname)))
