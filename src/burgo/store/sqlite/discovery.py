"""Discovery in SQLite: entity types from the entity_types index, attributes from the documents."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson

from burgo.store.discovery import AttributeDetails, TypeDetails
from burgo.store.sqlite.core import SqliteCore

# Every attribute instance of the tenant's entities: (entity pk, attribute IRI, instance kind).
_INSTANCES = (
    "FROM entities e, json_each(e.doc, '$.attrs') a, json_each(a.value) i WHERE e.tenant = ?"
)


def _in(column: str, values: Sequence[str] | None) -> tuple[str, tuple[str, ...]]:
    """An ``AND column IN (...)`` filter and its parameters (nothing when ``values`` is None)."""
    if values is None:
        return "", ()
    return f" AND {column} IN ({','.join('?' * len(values))})", tuple(values)


class SqliteDiscovery(SqliteCore):
    """Which entity types and attributes a tenant holds."""

    async def entity_types(self, tenant: str) -> list[str]:
        """Distinct entity types, from the type index."""
        self._check_tenant(tenant)

        def query(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT DISTINCT type FROM entity_types WHERE tenant = ? ORDER BY type", (tenant,)
            )
            return [row[0] for row in rows]

        return await self._read_in_thread(query)

    async def type_details(
        self, tenant: str, types: Sequence[str] | None = None
    ) -> list[TypeDetails]:
        """Entity counts from the type index; attribute kinds from one pass over the documents."""
        self._check_tenant(tenant)
        where, params = _in("type", types)

        def query(conn: sqlite3.Connection) -> list[TypeDetails]:
            counts = conn.execute(
                f"SELECT type, count(*) FROM entity_types WHERE tenant = ?{where} "  # noqa: S608 - placeholders only
                "GROUP BY type ORDER BY type",
                (tenant, *params),
            ).fetchall()
            only = (
                f" AND e.pk IN (SELECT entity_pk FROM entity_types WHERE tenant = ?{where})"  # noqa: S608 - placeholders only
                if types is not None
                else ""
            )
            attributes: dict[str, dict[str, set[str]]] = {name: {} for name, _ in counts}
            rows = conn.execute(
                f"SELECT e.types, a.key, i.value ->> '$.type' {_INSTANCES}{only} GROUP BY 1, 2, 3",
                (tenant, *((tenant, *params) if types is not None else ())),
            )
            for type_names, attr, kind in _decoded(rows):
                for type_name in type_names:
                    if type_name in attributes:
                        attributes[type_name].setdefault(attr, set()).add(kind)
            return [
                TypeDetails(
                    name,
                    count,
                    {a: tuple(sorted(k)) for a, k in sorted(attributes[name].items())},
                )
                for name, count in counts
            ]

        return await self._read_in_thread(query)

    async def attribute_names(self, tenant: str) -> list[str]:
        """Distinct attribute names of the tenant's entities."""
        self._check_tenant(tenant)

        def query(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT DISTINCT a.key FROM entities e, json_each(e.doc, '$.attrs') a "
                "WHERE e.tenant = ? ORDER BY 1",
                (tenant,),
            )
            return [row[0] for row in rows]

        return await self._read_in_thread(query)

    async def attribute_details(
        self, tenant: str, names: Sequence[str] | None = None
    ) -> list[AttributeDetails]:
        """Instance counts and kinds per attribute, and the types of the entities holding it,
        in one pass over the documents."""
        self._check_tenant(tenant)
        where, params = _in("a.key", names)

        def query(conn: sqlite3.Connection) -> list[AttributeDetails]:
            counts: dict[str, int] = {}
            kinds: dict[str, set[str]] = {}
            holders: dict[str, set[str]] = {}
            rows = conn.execute(
                f"SELECT e.types, a.key, i.value ->> '$.type', count(*) {_INSTANCES}{where} "
                "GROUP BY 1, 2, 3",
                (tenant, *params),
            )
            for type_names, attr, kind, count in _decoded(rows):
                counts[attr] = counts.get(attr, 0) + count
                kinds.setdefault(attr, set()).add(kind)
                holders.setdefault(attr, set()).update(type_names)
            return [
                AttributeDetails(
                    name, counts[name], tuple(sorted(kinds[name])), tuple(sorted(holders[name]))
                )
                for name in sorted(counts)
            ]

        return await self._read_in_thread(query)


def _decoded(rows: Iterable[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    """Rows whose first column (an entity's types, JSON) is decoded, once per distinct value."""
    seen: dict[str, list[str]] = {}
    for raw, *rest in rows:
        types = seen.get(raw)
        if types is None:
            types = seen[raw] = orjson.loads(raw)
        yield (types, *rest)
