"""The history contract: what every backend's temporal store must do, against the protocol only.

Run against every backend by ``test_contract.py`` (the ``store`` fixture of ``conftest.py``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from burgo.ngsild.duration import DAY, HOUR, Duration
from burgo.ngsild.errors import NonexistentTenant, ResourceNotFound
from burgo.ngsild.model import Attribute, AttrKind, Entity
from burgo.ngsild.temporal import (
    Aggregation,
    TemporalEntity,
    TemporalQuery,
    TimeProperty,
    from_millis,
)
from burgo.ngsild.temporal_aggregate import AGGR_METHODS, aggregate
from burgo.store.base import DEFAULT_TENANT, Store
from burgo.store.temporal import HistorySelection
from tests.store.contract import ROOM, T0, TEMPERATURE, room, set_temperature

_EXAMPLES = itertools.count()
BASE = 1_704_067_200_000  # 2024-01-01T00:00:00Z
ALL = HistorySelection()


def reading(value: Any, t: int, dataset_id: str | None = None) -> Attribute:
    """A temperature instance observed at epoch ms ``t``."""
    return Attribute(AttrKind.PROPERTY, value, observed_at=from_millis(t), dataset_id=dataset_id)


async def only(store: Store, query: TemporalQuery | None = None, **kw: Any) -> TemporalEntity:
    """The one entity with history, read with ``query`` (every instance by default)."""
    query = query if query is not None else TemporalQuery()
    page = await store.query_history(DEFAULT_TENANT, ALL, query, max_instances=10_000, **kw)
    assert len(page.entities) == 1
    return page.entities[0]


def close(a: Any, b: Any) -> bool:
    """Equal, floats within rounding of a different summation order."""
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)
    return bool(a == b)


class HistoryContract:
    """History recorded, read, aggregated, imported, corrected and pruned."""

    pytestmark = pytest.mark.anyio

    async def test_entity_writes_are_recorded(self, store: Store) -> None:
        await store.create_entity(DEFAULT_TENANT, room(temperature=20.0))
        await store.modify_entity(DEFAULT_TENANT, room().id, set_temperature(21.0))
        entity = await only(store)
        assert entity.types == (ROOM,)
        assert [i.attribute.value for i in entity.attrs[TEMPERATURE]] == [20.0, 21.0]
        assert entity.created_at == T0

    async def test_deleting_records_deleted_at(self, store: Store) -> None:
        await store.create_entity(DEFAULT_TENANT, room())
        await store.delete_entity(DEFAULT_TENANT, room().id)
        deleted = await only(store, TemporalQuery(timeproperty=TimeProperty.DELETED_AT))
        assert deleted.deleted_at is not None
        assert deleted.attrs[TEMPERATURE][0].deleted_at == deleted.deleted_at

    async def test_a_failed_write_records_nothing(self, store: Store) -> None:
        await store.create_entity(DEFAULT_TENANT, room())

        def fail(current: Entity) -> tuple[Entity, None]:
            raise ResourceNotFound("no")

        with pytest.raises(ResourceNotFound):
            await store.modify_entity(DEFAULT_TENANT, room().id, fail)
        assert len((await only(store)).attrs[TEMPERATURE]) == 1

    async def test_unknown_tenant(self, store: Store) -> None:
        with pytest.raises(NonexistentTenant):
            await store.query_history("nowhere", ALL, TemporalQuery(), max_instances=1)

    async def test_import_skips_instances_already_recorded(self, store: Store) -> None:
        points = {TEMPERATURE: tuple(reading(v, BASE + v * HOUR) for v in range(3))}
        assert await store.add_history(DEFAULT_TENANT, "urn:a:1", (ROOM,), points)
        assert not await store.add_history(DEFAULT_TENANT, "urn:a:1", (ROOM,), points)
        entity = await only(store)
        assert [i.attribute.value for i in entity.attrs[TEMPERATURE]] == [0, 1, 2]
        with pytest.raises(ResourceNotFound):
            await store.add_history(DEFAULT_TENANT, "urn:a:2", None, points)

    async def test_limit_and_last_n(self, store: Store) -> None:
        points = {TEMPERATURE: tuple(reading(v, BASE + v * 1000) for v in range(10))}
        await store.add_history(DEFAULT_TENANT, "urn:a:1", (ROOM,), points)
        page = await store.query_history(DEFAULT_TENANT, ALL, TemporalQuery(), max_instances=4)
        assert page.truncated
        assert (page.first, page.last) == (BASE, BASE + 3000)
        last = await only(store, TemporalQuery(last_n=3))
        assert [i.attribute.value for i in last.attrs[TEMPERATURE]] == [7, 8, 9]

    async def test_modify_instance_and_delete_attr(self, store: Store) -> None:
        points = {TEMPERATURE: (reading(1, BASE), reading(2, BASE + 1), reading(3, BASE, "urn:d"))}
        await store.add_history(DEFAULT_TENANT, "urn:a:1", (ROOM,), points)
        first = (await only(store)).attrs[TEMPERATURE][0]
        await store.modify_history_instance(
            DEFAULT_TENANT, "urn:a:1", TEMPERATURE, first.instance_id,
            lambda a: replace(a, value=10),
        )  # fmt: skip
        agg = Aggregation(("sum",), Duration(0, DAY))
        summed = await only(store, TemporalQuery(start=BASE), aggregation=agg)
        assert {s.dataset_id: s.values["sum"][0][0] for s in summed.aggregated[TEMPERATURE]} == {
            None: 12.0, "urn:d": 3.0,
        }  # fmt: skip
        await store.delete_history_attr(DEFAULT_TENANT, "urn:a:1", TEMPERATURE, "urn:d", False)
        remaining = (await only(store)).attrs[TEMPERATURE]
        assert [(i.attribute.value, i.attribute.dataset_id) for i in remaining] == [
            (10, None), (2, None),
        ]  # fmt: skip
        with pytest.raises(ResourceNotFound):
            await store.delete_history_attr(DEFAULT_TENANT, "urn:a:1", TEMPERATURE, "urn:d", False)
        await store.delete_history(DEFAULT_TENANT, "urn:a:1")
        with pytest.raises(ResourceNotFound):
            await store.delete_history(DEFAULT_TENANT, "urn:a:1")

    async def test_prune_keeps_rollups(self, store: Store) -> None:
        points = {TEMPERATURE: tuple(reading(v, BASE + v * DAY) for v in range(10))}
        await store.add_history(DEFAULT_TENANT, "urn:a:1", (ROOM,), points)
        await store.set_retention(DEFAULT_TENANT, ROOM, 3)
        assert [p.raw_days for p in await store.list_retention()] == [3]
        report = await store.prune_history(BASE + 10 * DAY, None)
        assert report.instances == 7
        raw = await only(store)
        assert [i.attribute.value for i in raw.attrs[TEMPERATURE]] == [7, 8, 9]
        agg = Aggregation(("sum", "totalCount"), Duration(0, 0))
        total = await only(store, TemporalQuery(start=BASE), aggregation=agg)
        assert total.aggregated[TEMPERATURE][0].values["totalCount"][0][0] == 10
        report = await store.prune_history(BASE + 20 * DAY, 1)
        assert TEMPERATURE not in (await only(store)).attrs
        daily = Aggregation(("max", "totalCount"), Duration(0, DAY))
        kept = await only(store, TemporalQuery(start=BASE), aggregation=daily)
        assert kept.aggregated[TEMPERATURE][0].values["max"][-1] == (
            9,
            BASE + 9 * DAY,
            BASE + 10 * DAY,
        )
        await store.set_retention(DEFAULT_TENANT, ROOM, None)
        assert await store.list_retention() == []
        assert (await store.history_stats())["burgo_history_instances"] == 0

    async def test_retention_is_per_tenant_and_per_entity_type(self, store: Store) -> None:
        lamp, town = "https://example.org/Streetlight", "fundao"

        def days(n: int) -> tuple[Attribute, ...]:
            return tuple(reading(v, BASE + v * DAY) for v in range(n))

        await store.add_history(DEFAULT_TENANT, "urn:a:room", (ROOM,), {TEMPERATURE: days(10)})
        await store.add_history(DEFAULT_TENANT, "urn:a:lamp", (lamp,), {TEMPERATURE: days(10)})
        await store.add_history(DEFAULT_TENANT, "urn:a:both", (ROOM, lamp), {TEMPERATURE: days(10)})
        await store.add_history(town, "urn:a:room", (ROOM,), {TEMPERATURE: days(10)})
        await store.add_history(town, "urn:a:lamp", (lamp,), {TEMPERATURE: days(10)})
        await store.set_retention(DEFAULT_TENANT, ROOM, 3)
        await store.set_retention(DEFAULT_TENANT, lamp, 6)
        await store.set_retention(town, "", 2)  # the tenant's default, for every type
        await store.set_retention(town, lamp, 8)
        report = await store.prune_history(BASE + 10 * DAY, None)

        async def kept(tenant: str, entity_id: str) -> list[Any]:
            page = await store.query_history(
                tenant, HistorySelection(ids=(entity_id,)), TemporalQuery(), max_instances=99
            )
            return [i.attribute.value for i in page.entities[0].attrs[TEMPERATURE]]

        assert await kept(DEFAULT_TENANT, "urn:a:room") == [7, 8, 9]
        assert await kept(DEFAULT_TENANT, "urn:a:lamp") == [4, 5, 6, 7, 8, 9]
        assert await kept(DEFAULT_TENANT, "urn:a:both") == [4, 5, 6, 7, 8, 9]  # the longest
        assert await kept(town, "urn:a:room") == [8, 9]
        assert await kept(town, "urn:a:lamp") == [2, 3, 4, 5, 6, 7, 8, 9]
        assert report.instances == 7 + 4 + 4 + 8 + 2

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        values=st.lists(
            st.one_of(st.integers(-1000, 1000), st.floats(-1e6, 1e6, allow_nan=False)),
            min_size=1, max_size=60,
        ),
        steps=st.lists(st.integers(0, 5 * HOUR), min_size=60, max_size=60),
        methods=st.lists(st.sampled_from(AGGR_METHODS), min_size=1, max_size=4, unique=True),
        period=st.sampled_from([Duration(0, HOUR), Duration(0, 2 * HOUR), Duration(0, DAY),
                                Duration(1, 0), Duration(0, 0), Duration(0, 90 * 60_000)]),
        start_offset=st.sampled_from([0, -DAY, 30 * 60_000]),
        live=st.booleans(),
    )  # fmt: skip
    async def test_aggregates_equal_a_plain_aggregation(
        self, store: Store, values: list[Any], steps: list[int], methods: list[str],
        period: Duration, start_offset: int, live: bool,
    ) -> None:  # fmt: skip
        entity_id = f"urn:ngsi-ld:Room:{next(_EXAMPLES)}"
        times, t = [], BASE
        for step in steps[: len(values)]:
            t += step
            times.append(t)
        instances = [reading(v, t) for v, t in zip(values, times, strict=True)]
        if live:
            first = Entity(entity_id, (ROOM,), MappingProxyType({TEMPERATURE: (instances[0],)}),
                           created_at=T0, modified_at=T0)  # fmt: skip
            await store.create_entity(DEFAULT_TENANT, first)
            for instance in instances[1:]:
                await store.modify_entity(
                    DEFAULT_TENANT, entity_id,
                    lambda e, i=instance: (e.with_attrs({TEMPERATURE: (i,)}, T0), None),
                )  # fmt: skip
        else:
            await store.add_history(
                DEFAULT_TENANT, entity_id, (ROOM,), {TEMPERATURE: tuple(instances)}
            )
        start = BASE + start_offset
        query = TemporalQuery(start=start)
        aggregation = Aggregation(tuple(methods), period)
        page = await store.query_history(
            DEFAULT_TENANT, HistorySelection(ids=(entity_id,)), query,
            max_instances=1, aggregation=aggregation,
        )  # fmt: skip
        points = sorted((p for p in zip(times, values, strict=True) if p[0] >= start),
                        key=lambda p: p[0])  # fmt: skip
        if live:  # a write that leaves the entity as it was (same value, same time) is no change
            pairs = list(zip(times, values, strict=True))
            unchanged = {i for i in range(1, len(pairs)) if pairs[i] == pairs[i - 1]}
            points = [p for i, p in enumerate(pairs) if i not in unchanged and p[0] >= start]
        else:  # an import skips an instance at the time of one already recorded
            points = list({t: (t, v) for t, v in reversed(points)}.values())[::-1]
            points.sort(key=lambda p: p[0])
        if not points:
            assert TEMPERATURE not in page.entities[0].aggregated
            return
        got = page.entities[0].aggregated[TEMPERATURE][0].values
        expected = aggregate(points, methods, period, start, points[-1][0] + 1)
        assert set(got) == set(expected)
        for method in methods:
            assert [(s, e) for _, s, e in got[method]] == [(s, e) for _, s, e in expected[method]]
            for (mine, _, _), (theirs, _, _) in zip(got[method], expected[method], strict=True):
                assert close(mine, theirs), (method, mine, theirs)
