"""Stored JSON-LD @contexts in SQLite (hosted by users, or cached downloads)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from burgo.store.base import StoredContext
from burgo.store.sqlite.core import SqliteCore


class SqliteContexts(SqliteCore):
    """Keep, list, count and delete @contexts."""

    async def put_context(self, context: StoredContext) -> None:
        """Insert or replace a stored @context."""
        document = orjson.dumps(context.document).decode()

        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO jsonld_contexts "
                "(id, url, kind, document, created_at, last_usage, hits) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    context.id,
                    context.url,
                    context.kind,
                    document,
                    context.created_at,
                    context.last_usage,
                    context.hits,
                ),
            )

        await self._write(job)

    async def get_context(self, context_id: str) -> StoredContext | None:
        """A stored @context by id or by its original URL."""
        row = self._read(
            lambda conn: conn.execute(
                f"SELECT {_CONTEXT_COLUMNS} FROM jsonld_contexts WHERE id = ? OR url = ? "  # noqa: S608
                "ORDER BY id = ? DESC LIMIT 1",
                (context_id, context_id, context_id),
            ).fetchone()
        )
        return _context_from_row(row) if row else None

    async def list_contexts(self, kind: str | None = None) -> Sequence[StoredContext]:
        """Stored @contexts, oldest first."""
        sql = f"SELECT {_CONTEXT_COLUMNS} FROM jsonld_contexts"  # noqa: S608
        params: tuple[Any, ...] = ()
        if kind is not None:
            sql += " WHERE kind = ?"
            params = (kind,)
        rows = self._read(
            lambda conn: conn.execute(sql + " ORDER BY created_at, id", params).fetchall()
        )
        return [_context_from_row(row) for row in rows]

    async def touch_context(self, context_id: str, used_at: str) -> None:
        """Count a use of a stored @context."""
        await self._write(
            lambda conn: conn.execute(
                "UPDATE jsonld_contexts SET hits = hits + 1, last_usage = ? WHERE id = ?",
                (used_at, context_id),
            )
        )

    async def delete_context(self, context_id: str) -> bool:
        """Delete a stored @context."""
        cursor: sqlite3.Cursor = await self._write(
            lambda conn: conn.execute("DELETE FROM jsonld_contexts WHERE id = ?", (context_id,))
        )
        return cursor.rowcount > 0


_CONTEXT_COLUMNS = "id, url, kind, document, created_at, last_usage, hits"


def _context_from_row(row: tuple[Any, ...]) -> StoredContext:
    return StoredContext(
        id=row[0],
        url=row[1],
        kind=row[2],
        document=orjson.loads(row[3]),
        created_at=row[4],
        last_usage=row[5],
        hits=row[6],
    )
