"""The embedded SQLite backend."""

from burgo.store.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
