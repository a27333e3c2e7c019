"""The PostgreSQL backend: psycopg 3 (async) with a connection pool, for a region's deployment."""

from __future__ import annotations

from burgo.store.postgres.batch import PostgresBatch
from burgo.store.postgres.contexts import PostgresContexts
from burgo.store.postgres.devices import PostgresDevices
from burgo.store.postgres.discovery import PostgresDiscovery
from burgo.store.postgres.entities import PostgresEntities
from burgo.store.postgres.queries import PostgresQueries
from burgo.store.postgres.subscriptions import PostgresSubscriptions
from burgo.store.postgres.temporal import PostgresTemporal

__all__ = ["PostgresStore"]


class PostgresStore(
    PostgresDevices,  # before PostgresEntities: its readings are entity changes
    PostgresEntities,
    PostgresContexts,
    PostgresBatch,
    PostgresDiscovery,
    PostgresSubscriptions,
    PostgresQueries,
    PostgresTemporal,
):
    """The Store protocol on one PostgreSQL database.

    >>> store = PostgresStore("postgresql://burgo@db.example/burgo")  # then: await store.open()
    """
