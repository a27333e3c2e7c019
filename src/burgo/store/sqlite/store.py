"""The embedded SQLite backend: WAL, one writer thread, readers on their own connections."""

from __future__ import annotations

from burgo.store.sqlite.contexts import SqliteContexts
from burgo.store.sqlite.core import translate_error
from burgo.store.sqlite.entities import SqliteEntities

__all__ = ["SqliteStore", "translate_error"]


class SqliteStore(SqliteEntities, SqliteContexts):
    """The Store protocol on one SQLite file.

    >>> store = SqliteStore("burgo-data/burgo.db")   # then: await store.open()
    """
