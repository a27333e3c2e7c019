"""Versioned schema migrations for SQLite: numbered .sql files applied in order, once each."""

from __future__ import annotations

import sqlite3

from burgo.ngsild.errors import InternalError
from burgo.store.migrations import Migration, shipped_migrations


def available_migrations() -> list[Migration]:
    """The migrations shipped with this version of Burgo, in order."""
    return shipped_migrations("burgo.store.sqlite.schema")


def schema_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in the database file."""
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    return version


def migrate(conn: sqlite3.Connection, migrations: list[Migration] | None = None) -> list[int]:
    """Bring the schema up to date, each step in its own transaction; returns versions applied."""
    steps = available_migrations() if migrations is None else migrations
    current = schema_version(conn)
    latest = steps[-1].version if steps else 0
    if current > latest:
        raise InternalError(
            f"The database schema is version {current}, newer than this Burgo knows ({latest}); "
            "upgrade Burgo to open it"
        )
    applied = []
    for step in steps:
        if step.version <= current:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(step.sql):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {step.version:d}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        applied.append(step.version)
    return applied


def _statements(sql: str) -> list[str]:
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
