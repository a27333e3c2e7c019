"""The PostgreSQL backend (psycopg 3, async, pooled)."""

from burgo.store.postgres.core import translate_error
from burgo.store.postgres.store import PostgresStore

__all__ = ["PostgresStore", "translate_error"]
