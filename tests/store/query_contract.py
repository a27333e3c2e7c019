"""The QueryStore contract: entity queries and purges, for every backend.

tests/store/test_contract.py runs it against every backend, through the ``store`` fixture of
tests/store/conftest.py (a freshly opened, empty store). The property test checks the store's
answer against the in-memory reference :func:`burgo.ngsild.query.matches` over random entities.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from burgo.ngsild.errors import NonexistentTenant
from burgo.ngsild.geoquery import LOCATION, parse_geo_query
from burgo.ngsild.model import Attribute, AttrKind, Entity
from burgo.ngsild.qlang import parse_q
from burgo.ngsild.query import (
    EntityQuery,
    EntitySelector,
    check_id_pattern,
    matches,
    parse_type_expression,
)
from burgo.store.base import DEFAULT_TENANT, EntityChangeRecord, Store
from burgo.store.batch import EntityWrite

V = "https://example.org/vocab/"
T0 = "2024-05-01T10:00:00.000Z"
TYPES = ("Room", "Sensor", "Container")
_EXAMPLES = itertools.count()


def expand(term: str) -> str:
    """Terms of these tests live in one example vocabulary."""
    return V + term


def thing(
    number: int,
    types: tuple[str, ...] = ("Room",),
    point: tuple[float, float] | None = None,
    **values: Any,
) -> Entity:
    """An entity with the given short types, a location and Property values."""
    attrs: dict[str, tuple[Attribute, ...]] = {
        V + name: (Attribute(AttrKind.PROPERTY, value),) for name, value in values.items()
    }
    if point is not None:
        geometry = {"type": "Point", "coordinates": list(point)}
        attrs[LOCATION] = (Attribute(AttrKind.GEO_PROPERTY, geometry),)
    return Entity(
        f"urn:ngsi-ld:Thing:{number:03d}",
        tuple(V + t for t in types),
        MappingProxyType(attrs),
        created_at=T0,
        modified_at=T0,
    )


def by_type(text: str, **kw: Any) -> EntityQuery:
    """A query on a type expression."""
    return EntityQuery(selectors=(EntitySelector(types=parse_type_expression(text, expand)),), **kw)


def two_common_terms() -> tuple[list[Entity], EntityQuery]:
    """60 entities and a query of two terms, each holding for 30 of them and both for 10."""
    made = [thing(n, level=n, status="dropped" if n >= 20 else "ok") for n in range(60)]
    query = replace(
        by_type("Room", limit=4, offset=3, count=True),
        q=parse_q('level<30;status=="dropped"', expand),
    )
    return made, query


def ids(result: Any) -> list[str]:
    """The ids of a query result's page."""
    return [e.id for e in result.entities]


# Random entities near Fundão, with one to two types and sometimes no location.
points = st.tuples(
    st.floats(-7.52, -7.48, allow_nan=False), st.floats(40.12, 40.16, allow_nan=False)
)
entities = st.lists(
    st.builds(
        lambda types, point, n: (types, point, n),
        st.lists(st.sampled_from(TYPES), min_size=1, max_size=2, unique=True).map(tuple),
        st.one_of(st.none(), points),
        st.integers(0, 999),
    ),
    max_size=25,
    unique_by=lambda item: item[2],
)
type_texts = st.sampled_from(
    ["Room", "Sensor,Container", "Room;Sensor", "(Room|Sensor);Container", "Container|Room"]
)
patterns = st.sampled_from(["0$", "^urn:ngsi-ld:Thing:1", "[27]", "Thing:0[0-4]"])
georels = st.sampled_from(
    [
        "near;maxDistance==800",
        "near;minDistance==1500",
        "near;minDistance==300;maxDistance==2000",
        "within",
        "disjoint",
        "intersects",
    ]
)
POLYGON = "[[[-7.51,40.13],[-7.49,40.13],[-7.49,40.15],[-7.51,40.15],[-7.51,40.13]]]"


@st.composite
def queries(draw: st.DrawFn) -> EntityQuery:
    """Random queries: type expression, id pattern, id list and geo-query, any combination."""
    selector = EntitySelector(
        types=draw(st.none() | type_texts.map(lambda t: parse_type_expression(t, expand))),
        id_pattern=draw(st.none() | patterns.map(check_id_pattern)),
        ids=tuple(draw(st.lists(st.integers(0, 999), max_size=3).map(
            lambda ns: [f"urn:ngsi-ld:Thing:{n:03d}" for n in ns]))),
    )  # fmt: skip
    geo = None
    georel = draw(st.none() | georels)
    if georel is not None:
        if georel.startswith("near"):
            lon, lat = draw(points)
            geo = parse_geo_query(georel, "Point", f"[{lon},{lat}]", None, expand)
        else:
            geo = parse_geo_query(georel, "Polygon", POLYGON, None, expand)
    return EntityQuery(
        selectors=() if selector.is_empty() else (selector,),
        geo=geo,
        limit=1000,
        count=True,
    )


class QueryContract:
    """Every QueryStore backend passes these tests."""

    pytestmark = pytest.mark.anyio

    async def _fill(self, store: Store, *items: Entity, tenant: str = DEFAULT_TENANT) -> None:
        for item in items:
            await store.create_entity(tenant, item)

    async def test_type_expressions_select_by_type(self, store: Store) -> None:
        await self._fill(
            store,
            thing(1, ("Room",)),
            thing(2, ("Sensor",)),
            thing(3, ("Room", "Sensor")),
            thing(4, ("Container",)),
        )
        assert ids(await store.query_entities("", by_type("Room"))) == [
            "urn:ngsi-ld:Thing:001",
            "urn:ngsi-ld:Thing:003",
        ]
        assert len((await store.query_entities("", by_type("Room,Container"))).entities) == 3
        assert ids(await store.query_entities("", by_type("Room;Sensor"))) == [
            "urn:ngsi-ld:Thing:003"
        ]
        both = await store.query_entities("", by_type("(Room;Sensor)|Container", count=True))
        assert ids(both) == ["urn:ngsi-ld:Thing:003", "urn:ngsi-ld:Thing:004"]
        assert both.count == 2

    async def test_a_count_counts_an_entity_of_two_types_once(self, store: Store) -> None:
        await self._fill(store, thing(1, ("Room", "Sensor")), thing(2, ("Sensor",)))
        result = await store.query_entities("", by_type("Room,Sensor", count=True))
        assert result.count == 2

    async def test_counts_by_type_follow_every_write(self, store: Store) -> None:
        await self._fill(
            store, thing(1, ("Room",)), thing(2, ("Room", "Sensor")), thing(3, ("Sensor",))
        )

        async def counts() -> dict[str, int | None]:
            found = {}
            for text in (
                "Room",
                "Sensor",
                "Container",
                "Room,Sensor",
                "Room;Sensor",
                "Room|Container",
            ):
                counted = await store.query_entities("", by_type(text, count=True, limit=0))
                every = await store.query_entities("", by_type(text, limit=100))
                assert counted.count == len(every.entities), text
                found[text] = counted.count
            return found

        assert (await counts())["Room,Sensor"] == 3
        retyped = replace(thing(1, ("Room",)), types=(V + "Container", V + "Room"))
        await store.modify_entity("", "urn:ngsi-ld:Thing:001", lambda _: (retyped, None))
        await store.delete_entity("", "urn:ngsi-ld:Thing:002")
        outcomes = await store.write_entities(
            "",
            [
                EntityWrite("urn:ngsi-ld:Thing:004", create=thing(4, ("Container",))),
                EntityWrite("urn:ngsi-ld:Thing:003", create=thing(3, ("Room",))),
            ],
        )
        assert [o.error is None for o in outcomes] == [True, False]
        assert await counts() == {
            "Room": 1,
            "Sensor": 1,
            "Container": 2,
            "Room,Sensor": 2,
            "Room;Sensor": 0,
            "Room|Container": 2,
        }
        assert await store.purge_entities("", by_type("Container")) == 2
        assert (await counts())["Room|Container"] == 0

    async def test_pages_follow_the_id_order(self, store: Store) -> None:
        await self._fill(store, *(thing(n) for n in (5, 3, 9, 1, 7)))
        first = await store.query_entities("", by_type("Room", limit=2, count=True))
        assert ids(first) == ["urn:ngsi-ld:Thing:001", "urn:ngsi-ld:Thing:003"]
        assert first.more and first.count == 5
        last = await store.query_entities("", by_type("Room", limit=2, offset=4))
        assert ids(last) == ["urn:ngsi-ld:Thing:009"]
        assert not last.more and last.count is None
        beyond = await store.query_entities("", by_type("Room", limit=2, offset=10))
        assert ids(beyond) == [] and not beyond.more

    async def test_two_terms_of_many_entities_each_match_together(self, store: Store) -> None:
        """Each term holds for half the entities, both for a few: the page and count are the
        reference's (tests/store/test_postgres_queries.py runs it with the thresholds of
        PostgreSQL's plans lowered, so that the two terms drive the query together)."""
        made, query = two_common_terms()
        await store.write_entities("", [EntityWrite(e.id, create=e) for e in made])
        expected = sorted(e.id for e in made if matches(e, query))
        assert len(expected) == 10
        result = await store.query_entities("", query)
        assert ids(result) == expected[3:7]
        assert result.count == 10 and result.more

    async def test_limit_zero_gives_only_the_count(self, store: Store) -> None:
        await self._fill(store, thing(1), thing(2))
        result = await store.query_entities("", by_type("Room", limit=0, count=True))
        assert result.entities == [] and result.count == 2

    async def test_ids_patterns_and_attrs(self, store: Store) -> None:
        await self._fill(store, thing(1, level=1), thing(2, other=2), thing(12, level=3))
        by_ids = EntityQuery(
            selectors=(EntitySelector(ids=("urn:ngsi-ld:Thing:002", "urn:ngsi-ld:Thing:404")),)
        )
        assert ids(await store.query_entities("", by_ids)) == ["urn:ngsi-ld:Thing:002"]
        by_pattern = EntityQuery(selectors=(EntitySelector(id_pattern="1$|12"),))
        assert ids(await store.query_entities("", by_pattern)) == [
            "urn:ngsi-ld:Thing:001",
            "urn:ngsi-ld:Thing:012",
        ]
        by_attrs = EntityQuery(attrs=frozenset({V + "level", V + "missing"}))
        assert ids(await store.query_entities("", by_attrs)) == [
            "urn:ngsi-ld:Thing:001",
            "urn:ngsi-ld:Thing:012",
        ]

    async def test_geo_queries_find_what_is_near(self, store: Store) -> None:
        # 0.001 degree of longitude at 40.14 N is about 85 m.
        await self._fill(store, *(thing(n, point=(-7.5 + n * 0.001, 40.14)) for n in range(10)))
        await self._fill(store, thing(50))  # no location at all
        near = parse_geo_query("near;maxDistance==300", "Point", "[-7.5,40.14]", None, expand)
        result = await store.query_entities("", EntityQuery(geo=near, count=True))
        assert ids(result) == [f"urn:ngsi-ld:Thing:{n:03d}" for n in range(4)]
        far = parse_geo_query("near;minDistance==300", "Point", "[-7.5,40.14]", None, expand)
        result = await store.query_entities("", EntityQuery(geo=far, count=True, limit=2))
        assert ids(result) == ["urn:ngsi-ld:Thing:004", "urn:ngsi-ld:Thing:005"]
        assert result.count == 6 and result.more

    async def test_the_geo_index_follows_moves_and_deletes(self, store: Store) -> None:
        await self._fill(store, thing(1, point=(-7.5, 40.14)))
        near = parse_geo_query("near;maxDistance==100", "Point", "[-7.5,40.14]", None, expand)
        query = EntityQuery(geo=near)
        assert ids(await store.query_entities("", query)) == ["urn:ngsi-ld:Thing:001"]
        moved = thing(1, point=(-7.4, 40.14))
        await store.modify_entity("", moved.id, lambda current: (moved, None))
        assert ids(await store.query_entities("", query)) == []
        back = thing(1, point=(-7.5, 40.14))
        await store.modify_entity("", back.id, lambda current: (back, None))
        assert ids(await store.query_entities("", query)) == ["urn:ngsi-ld:Thing:001"]
        await store.delete_entity("", back.id)
        assert ids(await store.query_entities("", query)) == []
        await self._fill(store, thing(1))  # the same id again, without a location
        assert ids(await store.query_entities("", query)) == []

    async def test_purge_deletes_only_the_matches(self, store: Store) -> None:
        await self._fill(store, thing(1, ("Room",)), thing(2, ("Sensor",)), thing(3, ("Room",)))
        assert await store.purge_entities("", by_type("Room")) == 2
        assert await store.count_entities("") == 1
        assert await store.get_entity("", "urn:ngsi-ld:Thing:002") is not None

    async def test_purge_tells_the_change_hooks(self, store: Store) -> None:
        seen: list[EntityChangeRecord] = []
        hooks: list[Callable[..., None]] | None = getattr(store, "_change_hooks", None)
        if hooks is None:
            pytest.skip("the backend has no change hooks")
        hooks.append(lambda conn, record: seen.append(record))
        await self._fill(store, thing(1, point=(-7.5, 40.14)))
        near = parse_geo_query("near;maxDistance==100", "Point", "[-7.5,40.14]", None, expand)
        assert await store.purge_entities("", EntityQuery(geo=near)) == 1
        assert [(r.entity_id, r.after) for r in seen[1:]] == [("urn:ngsi-ld:Thing:001", None)]
        assert ids(await store.query_entities("", EntityQuery(geo=near))) == []

    async def test_tenants_are_apart(self, store: Store) -> None:
        await self._fill(store, thing(1), tenant="fundao")
        await self._fill(store, thing(2))
        assert ids(await store.query_entities("fundao", by_type("Room"))) == [
            "urn:ngsi-ld:Thing:001"
        ]
        assert await store.purge_entities("", by_type("Room")) == 1
        assert await store.count_entities("fundao") == 1
        with pytest.raises(NonexistentTenant):
            await store.query_entities("nowhere", by_type("Room"))
        with pytest.raises(NonexistentTenant):
            await store.purge_entities("nowhere", by_type("Room"))

    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(items=entities, query=queries())
    async def test_the_store_answers_what_the_reference_matches(
        self, store: Store, items: list[Any], query: EntityQuery
    ) -> None:
        tenant = f"example-{next(_EXAMPLES)}"
        made = [thing(n, types, point) for types, point, n in items]
        await self._fill(store, *made, tenant=tenant)
        if not made:
            await self._fill(store, thing(999), tenant=tenant)
            made = [thing(999)]
        expected = sorted(e.id for e in made if matches(e, query))
        result = await store.query_entities(tenant, query)
        assert ids(result) == expected
        assert result.count == len(expected)
