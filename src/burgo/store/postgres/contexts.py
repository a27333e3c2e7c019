"""Stored JSON-LD @contexts in PostgreSQL (hosted by users, or cached downloads)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from burgo.store.base import StoredContext
from burgo.store.postgres.core import PostgresCore

_COLUMNS = "id, url, kind, document, created_at, last_usage, hits"


class PostgresContexts(PostgresCore):
    """Keep, list, count and delete @contexts."""

    async def put_context(self, context: StoredContext) -> None:
        """Insert or replace a stored @context."""
        async with self._transaction() as conn:
            await conn.execute(
                f"INSERT INTO jsonld_contexts ({_COLUMNS}) "  # noqa: S608 - fixed columns
                "VALUES (%s, %s, %s, %s::json, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET "
                "url = excluded.url, kind = excluded.kind, document = excluded.document, "
                "created_at = excluded.created_at, last_usage = excluded.last_usage, "
                "hits = excluded.hits",
                (
                    context.id,
                    context.url,
                    context.kind,
                    orjson.dumps(context.document).decode(),
                    context.created_at,
                    context.last_usage,
                    context.hits,
                ),
            )

    async def get_context(self, context_id: str) -> StoredContext | None:
        """The stored @context with that id or original URL."""
        async with self._transaction() as conn:
            cursor = await conn.execute(
                f"SELECT {_COLUMNS} FROM jsonld_contexts "  # noqa: S608 - fixed columns
                "WHERE id = %s OR url = %s ORDER BY id = %s DESC LIMIT 1",
                (context_id, context_id, context_id),
            )
            row = await cursor.fetchone()
        return _context(row) if row else None

    async def list_contexts(self, kind: str | None = None) -> Sequence[StoredContext]:
        """Stored @contexts, oldest first."""
        async with self._transaction() as conn:
            cursor = await conn.execute(
                f"SELECT {_COLUMNS} FROM jsonld_contexts "  # noqa: S608 - fixed columns
                "WHERE %s::text IS NULL OR kind = %s ORDER BY created_at, id",
                (kind, kind),
            )
            rows = await cursor.fetchall()
        return [_context(row) for row in rows]

    async def touch_context(self, context_id: str, used_at: str) -> None:
        """Count a use of a stored @context."""
        async with self._transaction() as conn:
            await conn.execute(
                "UPDATE jsonld_contexts SET hits = hits + 1, last_usage = %s WHERE id = %s",
                (used_at, context_id),
            )

    async def delete_context(self, context_id: str) -> bool:
        """Delete a stored @context."""
        async with self._transaction() as conn:
            cursor = await conn.execute("DELETE FROM jsonld_contexts WHERE id = %s", (context_id,))
            return cursor.rowcount > 0


def _context(row: tuple[Any, ...]) -> StoredContext:
    return StoredContext(
        id=row[0],
        url=row[1],
        kind=row[2],
        document=row[3],
        created_at=row[4],
        last_usage=row[5],
        hits=int(row[6]),
    )
