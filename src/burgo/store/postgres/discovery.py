"""Discovery in PostgreSQL: entity types from the types arrays, attributes from the documents."""

from __future__ import annotations

from collections.abc import Sequence

from burgo.store.discovery import AttributeDetails, TypeDetails
from burgo.store.postgres.core import PostgresCore

# Every attribute instance of the tenant's entities: (entity types, attribute IRI, instance kind).
_INSTANCES = (
    "FROM entities e, json_each(e.doc -> 'attrs') a, json_array_elements(a.value) i "
    "WHERE e.tenant = %s"
)


class PostgresDiscovery(PostgresCore):
    """Which entity types and attributes a tenant holds."""

    async def entity_types(self, tenant: str) -> list[str]:
        """Distinct entity types, sorted."""
        await self._check_tenant(tenant)
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "SELECT DISTINCT t FROM entities, unnest(types) t WHERE tenant = %s ORDER BY t",
                (tenant,),
            )
            return [row[0] for row in await cursor.fetchall()]

    async def type_details(
        self, tenant: str, types: Sequence[str] | None = None
    ) -> list[TypeDetails]:
        """Entity counts per type, and the kinds of their attributes, in two queries."""
        await self._check_tenant(tenant)
        only = None if types is None else list(types)
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "SELECT t, count(*) FROM entities, unnest(types) t WHERE tenant = %s "
                "AND (%s::text[] IS NULL OR t = ANY(%s)) GROUP BY t ORDER BY t",
                (tenant, only, only),
            )
            counts = await cursor.fetchall()
            cursor = await conn.execute(
                f"SELECT e.types, a.key, i ->> 'type' {_INSTANCES} "
                "AND (%s::text[] IS NULL OR e.types && %s) GROUP BY 1, 2, 3",
                (tenant, only, only),
            )
            rows = await cursor.fetchall()
        attributes: dict[str, dict[str, set[str]]] = {name: {} for name, _ in counts}
        for type_names, attr, kind in rows:
            for type_name in type_names:
                if type_name in attributes:
                    attributes[type_name].setdefault(attr, set()).add(kind)
        return [
            TypeDetails(
                name,
                int(count),
                {a: tuple(sorted(k)) for a, k in sorted(attributes[name].items())},
            )
            for name, count in counts
        ]

    async def attribute_names(self, tenant: str) -> list[str]:
        """Distinct attribute names of the tenant's entities, sorted."""
        await self._check_tenant(tenant)
        async with self._transaction() as conn:
            cursor = await conn.execute(
                'SELECT DISTINCT a COLLATE "C" FROM entities e, '
                "json_object_keys(e.doc -> 'attrs') a WHERE e.tenant = %s ORDER BY 1",
                (tenant,),
            )
            return [row[0] for row in await cursor.fetchall()]

    async def attribute_details(
        self, tenant: str, names: Sequence[str] | None = None
    ) -> list[AttributeDetails]:
        """Instance counts and kinds per attribute, and the types of the entities holding it."""
        await self._check_tenant(tenant)
        only = None if names is None else list(names)
        async with self._transaction() as conn:
            cursor = await conn.execute(
                f"SELECT e.types, a.key, i ->> 'type', count(*) {_INSTANCES} "
                "AND (%s::text[] IS NULL OR a.key = ANY(%s)) GROUP BY 1, 2, 3",
                (tenant, only, only),
            )
            rows = await cursor.fetchall()
        counts: dict[str, int] = {}
        kinds: dict[str, set[str]] = {}
        holders: dict[str, set[str]] = {}
        for type_names, attr, kind, count in rows:
            counts[attr] = counts.get(attr, 0) + int(count)
            kinds.setdefault(attr, set()).add(kind)
            holders.setdefault(attr, set()).update(type_names)
        return [
            AttributeDetails(
                name, counts[name], tuple(sorted(kinds[name])), tuple(sorted(holders[name]))
            )
            for name in sorted(counts)
        ]
