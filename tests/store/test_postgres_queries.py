"""Entity queries in PostgreSQL: SQL (the value index, the geo index, PostGIS or not) selects
exactly what the reference evaluator selects, and the indexes follow every write."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import AsyncIterator
from types import MappingProxyType
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from burgo.ngsild.geoquery import LOCATION, GeoQuery, parse_geo_query
from burgo.ngsild.model import Attribute, AttrKind, Entity
from burgo.ngsild.qlang import parse_q, parse_scope_q
from burgo.ngsild.query import EntityQuery, EntitySelector, matches, parse_type_expression
from burgo.store.batch import EntityWrite
from burgo.store.postgres import PostgresStore
from burgo.store.postgres.entities import entity_doc
from burgo.store.postgres.migrations import available_migrations, migrate
from burgo.store.postgres.qindex import attribute_rows, geo_rows
from burgo.store.postgres.qsql import query_filter
from tests.q_strategies import entity_lists, expand, q_terms, q_texts, scope_texts
from tests.services import PostgresServer
from tests.store.query_contract import two_common_terms

pytestmark = pytest.mark.anyio

_TENANTS = (f"t{n}" for n in itertools.count())
_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

_indexed_terms = q_terms(plain=True).filter(
    lambda t: ("==" in t or ">" in t or "<" in t) and "!" not in t and "~" not in t
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def pg(empty_postgres: str) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(empty_postgres, max_connections=2)
    await store.open()
    yield store
    await store.close()


@pytest.fixture(scope="session")
def plain_database(postgres_server: PostgresServer) -> str:
    """A database owned by a role that is no superuser: it cannot install PostGIS."""
    with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
        conn.execute("CREATE ROLE burgo_plain LOGIN")
        conn.execute("CREATE DATABASE burgo_plain OWNER burgo_plain")
    return f"postgresql://burgo_plain@{postgres_server.host}:{postgres_server.port}/burgo_plain"


async def _load(store: PostgresStore, entities: list[Entity]) -> tuple[str, list[Entity]]:
    tenant = next(_TENANTS)
    # The tenant exists even when no entity is left in it.
    await store.create_entity(tenant, _place("made-the-tenant", SHAPES["far"]))
    await store.delete_entity(tenant, "urn:ngsi-ld:Place:made-the-tenant")
    for entity in entities:
        await store.create_entity(tenant, entity)
    stored = [await store.get_entity(tenant, e.id) for e in entities]
    return tenant, [e for e in stored if e is not None]


async def _answer(store: PostgresStore, tenant: str, query: EntityQuery) -> list[str]:
    result = await store.query_entities(tenant, query)
    return [e.id for e in result.entities]


@_SETTINGS
@given(
    entities=entity_lists(),
    # Any q, or a conjunction of terms the value index answers (they may drive the query
    # together).
    text=q_texts() | st.lists(_indexed_terms, min_size=2, max_size=3).map(";".join),
    typed=st.booleans(),
    limit=st.integers(1, 4),
    offset=st.integers(0, 3),
)
async def test_q_gives_the_reference_page_and_count(
    pg: PostgresStore, entities: list[Entity], text: str, typed: bool, limit: int, offset: int
) -> None:
    tenant, stored = await _load(pg, entities)
    selectors = (EntitySelector(types=parse_type_expression("Thing", expand)),)
    query = EntityQuery(
        selectors=selectors if typed else (),
        q=parse_q(text, expand),
        limit=limit,
        offset=offset,
        count=True,
    )
    expected = sorted(e.id for e in stored if matches(e, query))
    # A rare q term driving the query (joined), the terms driving it together (the
    # intersection of their ids) after a walk of the type's first ids found too few, and every
    # term looked up per visited row (of the first ids, of all).
    for few, some, first in ((1_000_000, 0, 0), (0, 1_000_000, 0), (0, 0, 2), (0, 0, 0)):
        pg.few_candidates, pg.some_candidates, pg.first_visits = few, some, first
        result = await pg.query_entities(tenant, query)
        assert [e.id for e in result.entities] == expected[offset : offset + limit], (text, few)
        assert result.count == len(expected), (text, few)
        assert result.more == (offset + limit < len(expected)), (text, few)


async def test_two_terms_drive_the_query_together(pg: PostgresStore) -> None:
    """Neither term is rare (30 index rows each, 10 the threshold) and the type's first 20 ids
    hold too few matches, but both terms are under the second threshold: the intersection of
    their ids drives the query, and the page and count are the reference's; so they are when
    each visited row is looked up instead."""
    made, query = two_common_terms()
    await pg.write_entities("", [EntityWrite(e.id, create=e) for e in made])
    expected = sorted(e.id for e in made if matches(e, query))
    for some in (100, 0):
        pg.few_candidates, pg.some_candidates, pg.first_visits = 10, some, 20
        result = await pg.query_entities("", query)
        assert [e.id for e in result.entities] == expected[3:7], some
        assert result.count == 10 and result.more, some


@_SETTINGS
@given(entities=entity_lists(), text=scope_texts())
async def test_scope_q_gives_the_reference_answer(
    pg: PostgresStore, entities: list[Entity], text: str
) -> None:
    tenant, stored = await _load(pg, entities)
    query = EntityQuery(scope_q=parse_scope_q(text), limit=100, count=True)
    expected = sorted(e.id for e in stored if matches(e, query))
    result = await pg.query_entities(tenant, query)
    assert [e.id for e in result.entities] == expected, text
    assert result.count == len(expected)


async def test_common_queries_are_decided_in_sql(pg: PostgresStore) -> None:
    """Types, ids, attrs, scopeQ and indexed q terms need no check outside the database."""
    for text in (
        "temp>1",
        'temp==1..2;name=="a"',
        "status|!rel",
        'temp<=2.5|name=="B"',
        "data==true;temp>=2024-01-01T00:00:00Z",
        "name==2024-01-01..2024-06-01|status<12:00:00Z",
        "modifiedAt>2024-01-01T00:00:00Z;createdAt!=2024-01-01T00:00:00Z",
        'temp!=1;rel!="urn:ngsi-ld:X:1"',
        'temp.x==1|temp[x]>=2|name[en]=="a"|data.observedAt',
    ):
        query = EntityQuery(
            selectors=(EntitySelector(types=parse_type_expression("Thing", expand)),),
            attrs=frozenset({expand("temp")}),
            q=parse_q(text, expand),
            scope_q=parse_scope_q("/a/#"),
        )
        assert query_filter(query).exact, text
    for text in ('name~="a"', "temp.observedAt>2024-01-01T00:00:00Z", "temp[0]==1"):
        assert not query_filter(EntityQuery(q=parse_q(text, expand))).exact, text


IndexRows = tuple[set[Any], list[Any], set[Any], dict[tuple[str, ...], int]]


async def _index_rows(store: PostgresStore, tenant: str) -> IndexRows:
    async with store._transaction() as conn:
        cursor = await conn.execute(
            "SELECT tenant, entity_id, attr, kind, num, txt FROM entity_attr_values "
            "WHERE tenant = %s",
            (tenant,),
        )
        values = set(await cursor.fetchall())
        cursor = await conn.execute(
            "SELECT tenant, entity_id, name, geometry::text, bounds::text, lon, lat "
            "FROM entity_geo WHERE tenant = %s ORDER BY entity_id, name, geometry::text",
            (tenant,),
        )
        geo = [row[:3] for row in await cursor.fetchall()]
        cursor = await conn.execute(
            "SELECT type, id FROM entity_type_ids WHERE tenant = %s", (tenant,)
        )
        types = set(await cursor.fetchall())
        cursor = await conn.execute(
            "SELECT types, sum(n) FROM entity_type_counts WHERE tenant = %s GROUP BY types "
            "HAVING sum(n) <> 0",
            (tenant,),
        )
        counts = {tuple(row[0]): int(row[1]) for row in await cursor.fetchall()}
    return values, geo, types, counts


def _expected_rows(tenant: str, entities: list[Entity]) -> IndexRows:
    values: set[Any] = set()
    geo: list[Any] = []
    types: set[Any] = set()
    counts: Counter[tuple[str, ...]] = Counter()
    for entity in entities:
        for name, instances in entity.attrs.items():
            values |= attribute_rows(tenant, entity.id, name, instances)
        geo += [row[:3] for row in geo_rows(tenant, entity)]
        types |= {(t, entity.id) for t in entity.types}
        counts[tuple(sorted(set(entity.types)))] += 1
    return values, sorted(geo, key=lambda row: (row[1], row[2])), types, dict(counts)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    first=entity_lists(),
    second=entity_lists(),
    deleted=st.sets(st.integers(0, 5)),
)
async def test_the_indexes_follow_writes_and_the_fill_rebuilds_them(
    pg: PostgresStore, first: list[Entity], second: list[Entity], deleted: set[int]
) -> None:
    tenant, _ = await _load(pg, first)
    for entity in second:
        if await pg.get_entity(tenant, entity.id) is None:
            await pg.create_entity(tenant, entity)
        else:
            await pg.modify_entity(tenant, entity.id, lambda _, new=entity: (new, None))
    for entity in [*first, *second]:
        if int(entity.id.rsplit(":", 1)[-1]) in deleted and await pg.get_entity(tenant, entity.id):
            await pg.delete_entity(tenant, entity.id)
    result = await pg.query_entities(tenant, EntityQuery(limit=1000))
    expected = _expected_rows(tenant, result.entities)
    assert await _index_rows(pg, tenant) == expected
    # Entities stored before the indexes existed are indexed when the store opens.
    async with pg._transaction() as conn:
        await conn.execute("DELETE FROM entity_attr_values WHERE tenant = %s", (tenant,))
        await conn.execute("DELETE FROM entity_geo WHERE tenant = %s", (tenant,))
        await conn.execute("DELETE FROM entity_type_ids WHERE tenant = %s", (tenant,))
        await conn.execute("DELETE FROM entity_type_counts WHERE tenant = %s", (tenant,))
        await conn.execute("INSERT INTO burgo_backfill (name) VALUES ('query_indexes')")
    reopened = PostgresStore(pg.url, max_connections=2)
    await reopened.open()
    try:
        assert await _index_rows(reopened, tenant) == expected
    finally:
        await reopened.close()


T0 = "2024-05-01T10:00:00.000Z"


def _thing(number: int, types: tuple[str, ...]) -> Entity:
    return Entity(f"urn:ngsi-ld:Thing:{number:03d}", tuple(expand(t) for t in types),
                  MappingProxyType({}), created_at=T0, modified_at=T0)  # fmt: skip


@pytest.mark.parametrize("indexed", [True, False])
async def test_an_upgrade_counts_the_entities_already_stored(
    postgres_server: PostgresServer, indexed: bool
) -> None:
    """Entities whose types were indexed are counted by the upgrade; those still waiting for
    the fill of older entities (stored before version 5, or copied by `burgo db copy`) by the
    fill."""
    with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS burgo_type_counts")
        conn.execute("CREATE DATABASE burgo_type_counts")
    url = postgres_server.url("burgo_type_counts")
    stored = [_thing(1, ("Room",)), _thing(2, ("Sensor", "Room")), _thing(3, ("Room",))]
    conn = await psycopg.AsyncConnection.connect(url)
    await migrate(conn, [m for m in available_migrations() if m.version < 8])
    for entity in stored:
        await conn.execute(
            "INSERT INTO entities VALUES ('', %s, %s, %s, %s, %s::json)",
            (entity.id, list(entity.types), T0, T0, entity_doc(entity)),
        )
        if indexed:
            await conn.execute(
                "INSERT INTO entity_type_ids SELECT '', t, %s FROM unnest(%s::text[]) AS t",
                (entity.id, list(entity.types)),
            )
    if indexed:
        await conn.execute("DELETE FROM burgo_backfill")
    await conn.commit()
    await conn.close()
    for _ in range(2):  # the second open folds the rows of the first one's sessions
        store = PostgresStore(url, max_connections=2)
        await store.open()
        try:
            for text, expected in (("Room", 3), ("Sensor", 1), ("Room;Sensor", 1)):
                query = EntityQuery(
                    selectors=(EntitySelector(types=parse_type_expression(text, expand)),),
                    count=True,
                )
                assert (await store.query_entities("", query)).count == expected
            await store.create_entity("", _thing(4, ("Sensor",)))
            await store.delete_entity("", "urn:ngsi-ld:Thing:004")
        finally:
            await store.close()
    with psycopg.connect(url) as check:
        rows = check.execute(
            "SELECT types, sum(n) FROM entity_type_counts GROUP BY types HAVING sum(n) <> 0 "
            "ORDER BY types"
        ).fetchall()
    assert [(tuple(types), n) for types, n in rows] == [
        ((expand("Room"),), 2),
        ((expand("Room"), expand("Sensor")), 1),
    ]


# -- geo-queries, with and without PostGIS --------------------------------------------------------

SQUARE = "[[[-7.51,40.13],[-7.49,40.13],[-7.49,40.15],[-7.51,40.15],[-7.51,40.13]]]"
SHAPES: dict[str, dict[str, Any]] = {
    "centre": {"type": "Point", "coordinates": [-7.5, 40.14]},
    "near": {"type": "Point", "coordinates": [-7.503, 40.14]},
    "edge": {"type": "Point", "coordinates": [-7.51, 40.14]},
    "far": {"type": "Point", "coordinates": [-7.6, 40.2]},
    "road": {"type": "LineString", "coordinates": [[-7.52, 40.14], [-7.48, 40.14]]},
    "park": {
        "type": "Polygon",
        "coordinates": [[[-7.505, 40.135], [-7.495, 40.135], [-7.495, 40.145], [-7.505, 40.135]]],
    },
    "square": {
        "type": "Polygon",
        "coordinates": [
            [[-7.51, 40.13], [-7.49, 40.13], [-7.49, 40.15], [-7.51, 40.15], [-7.51, 40.13]]
        ],
    },
    "overlapping": {
        "type": "Polygon",
        "coordinates": [
            [[-7.5, 40.14], [-7.48, 40.14], [-7.48, 40.16], [-7.5, 40.16], [-7.5, 40.14]]
        ],
    },
    # Not a valid polygon (it crosses itself): the exact check decides for it.
    "bowtie": {
        "type": "Polygon",
        "coordinates": [
            [[-7.5, 40.13], [-7.49, 40.15], [-7.49, 40.13], [-7.5, 40.15], [-7.5, 40.13]]
        ],
    },
}
# (georel, geometry, coordinates): the names certainly in the answer, certainly not in it.
GEO_CASES = [
    ("near;maxDistance==500", "Point", "[-7.5,40.14]", {"centre", "near", "road"}, {"edge", "far"}),
    ("near;minDistance==500", "Point", "[-7.5,40.14]", {"edge", "far"}, {"centre", "near"}),
    ("near;maxDistance==1000;minDistance==300", "Point", "[-7.5,40.14]", {"edge"}, {"near"}),
    ("near;maxDistance==100", "Polygon", SQUARE, {"edge", "near", "road"}, {"far"}),
    ("within", "Polygon", SQUARE, {"centre", "near", "park", "square"}, {"edge", "road", "far"}),
    ("contains", "Point", "[-7.5,40.14]", {"square", "centre", "road"}, {"park", "far"}),
    ("intersects", "LineString", "[[-7.6,40.2],[-7.5,40.16]]", {"far", "overlapping"}, {"near"}),
    ("equals", "Polygon", SQUARE, {"square"}, {"park", "overlapping"}),
    ("disjoint", "Polygon", SQUARE, {"far"}, {"centre", "edge", "square", "road"}),
    ("overlaps", "Polygon", SQUARE, {"overlapping"}, {"road", "square", "park"}),
]


def _place(name: str, geometry: dict[str, Any]) -> Entity:
    return Entity(
        f"urn:ngsi-ld:Place:{name}",
        (expand("Place"),),
        MappingProxyType({LOCATION: (Attribute(AttrKind.GEO_PROPERTY, geometry),)}),
        created_at="2024-05-01T10:00:00.000Z",
        modified_at="2024-05-01T10:00:00.000Z",
    )


async def _check_geo(store: PostgresStore) -> None:
    tenant, stored = await _load(store, [_place(n, g) for n, g in SHAPES.items()])
    await _check_stored_geo(store, tenant, stored)


async def _check_stored_geo(store: PostgresStore, tenant: str, stored: list[Entity]) -> None:
    for georel, kind, coordinates, inside, outside in GEO_CASES:
        geo: GeoQuery = parse_geo_query(georel, kind, coordinates, None, expand)
        query = EntityQuery(geo=geo, limit=100, count=True)
        expected = sorted(e.id for e in stored if matches(e, query))
        names = {i.rsplit(":", 1)[-1] for i in expected}
        assert inside <= names and not outside & names, (georel, kind, names)
        result = await store.query_entities(tenant, query)
        assert [e.id for e in result.entities] == expected, (georel, kind)
        assert result.count == len(expected)
        paged = await store.query_entities(
            tenant, EntityQuery(geo=geo, limit=2, offset=1, count=True)
        )
        assert [e.id for e in paged.entities] == expected[1:3], (georel, kind)
        assert paged.count == len(expected) and paged.more == (len(expected) > 3)
    near = parse_geo_query("near;maxDistance==500", "Point", "[-7.5,40.14]", None, expand)
    doomed = [e for e in stored if matches(e, EntityQuery(geo=near))]
    assert await store.purge_entities(tenant, EntityQuery(geo=near)) == len(doomed)
    assert await _answer(store, tenant, EntityQuery(geo=near, limit=100)) == []


async def test_geo_queries_with_postgis(pg: PostgresStore) -> None:
    assert pg.postgis
    await _check_geo(pg)


async def test_geo_queries_without_postgis(plain_database: str) -> None:
    store = PostgresStore(plain_database, max_connections=2)
    await store.open()
    try:
        assert not store.postgis
        await _check_geo(store)
    finally:
        await store.close()


async def test_postgis_installed_later_is_used_from_the_next_start(
    postgres_server: PostgresServer,
) -> None:
    with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
        conn.execute("CREATE ROLE burgo_later LOGIN")
        conn.execute("CREATE DATABASE burgo_later OWNER burgo_later")
    url = f"postgresql://burgo_later@{postgres_server.host}:{postgres_server.port}/burgo_later"
    store = PostgresStore(url, max_connections=2)
    await store.open()
    try:
        assert not store.postgis
        tenant, stored = await _load(store, [_place(n, g) for n, g in SHAPES.items()])
    finally:
        await store.close()
    # The administrator installs PostGIS in the database; Burgo's role cannot, but may use it.
    with psycopg.connect(postgres_server.url("burgo_later"), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION postgis")
    store = PostgresStore(url, max_connections=2)
    await store.open()
    try:
        assert store.postgis
        async with store._transaction() as conn:
            cursor = await conn.execute(
                "SELECT entity_id FROM entity_geo WHERE tenant = %s AND shape IS NULL", (tenant,)
            )
            unread = {row[0] async for row in cursor}
        # Every geometry stored before is in PostGIS now, but the one that is not valid.
        assert unread == {"urn:ngsi-ld:Place:bowtie"}
        await _check_stored_geo(store, tenant, stored)
        await _check_geo(store)  # and what is stored from now on
    finally:
        await store.close()
