"""The embedded SQLite backend: WAL, one writer thread, readers on their own connections."""

from __future__ import annotations

from burgo.store.sqlite.batch import SqliteBatch
from burgo.store.sqlite.changes import SqliteChanges
from burgo.store.sqlite.contexts import SqliteContexts
from burgo.store.sqlite.core import translate_error
from burgo.store.sqlite.devices import SqliteDevices
from burgo.store.sqlite.discovery import SqliteDiscovery
from burgo.store.sqlite.entities import SqliteEntities
from burgo.store.sqlite.geoindex import SqliteGeoIndex
from burgo.store.sqlite.qindex import SqliteQIndex
from burgo.store.sqlite.queries import SqliteQueries
from burgo.store.sqlite.subscriptions import SqliteSubscriptions
from burgo.store.sqlite.temporal import SqliteTemporal

__all__ = ["SqliteStore", "translate_error"]


class SqliteStore(
    SqliteEntities,
    SqliteChanges,
    SqliteContexts,
    SqliteBatch,
    SqliteDiscovery,
    SqliteDevices,
    SqliteSubscriptions,
    SqliteQueries,
    SqliteTemporal,
    SqliteGeoIndex,
    SqliteQIndex,
):
    """The Store protocol on one SQLite file.

    >>> store = SqliteStore("burgo-data/burgo.db")   # then: await store.open()
    """
