"""The Store contract: what every backend must do, written against the protocol only.

A backend's test module subclasses :class:`StoreContract` and provides a ``store`` fixture that
yields a freshly opened, empty store:

>>> class TestMyStore(StoreContract):
...     @pytest.fixture
...     async def store(self) -> AsyncIterator[Store]: ...
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any

import pytest

from burgo.ngsild.errors import (
    AlreadyExists,
    BadRequestData,
    NonexistentTenant,
    ResourceNotFound,
)
from burgo.ngsild.model import Attribute, AttrKind, Entity, Instances
from burgo.store.base import DEFAULT_TENANT, Store, StoredContext

VOCAB = "https://example.org/vocab/"
ROOM = VOCAB + "Room"
TEMPERATURE = VOCAB + "temperature"
COUNTER = VOCAB + "counter"
T0 = "2024-05-01T10:00:00.000Z"
T1 = "2024-05-01T11:00:00.000Z"


def prop(value: Any, **meta: Any) -> tuple[Attribute, ...]:
    """One default instance of a Property."""
    return (Attribute(AttrKind.PROPERTY, value, created_at=T0, modified_at=T0, **meta),)


def room(
    entity_id: str = "urn:ngsi-ld:Room:1",
    temperature: float = 21.5,
    more: Mapping[str, Instances] | None = None,
) -> Entity:
    """A Room with a temperature (and ``more`` attributes), stamped at T0."""
    attrs = {TEMPERATURE: prop(temperature, unit_code="CEL"), **(more or {})}
    return Entity(entity_id, (ROOM,), MappingProxyType(attrs), created_at=T0, modified_at=T0)


def every_kind() -> Entity:
    """An entity using every attribute kind, sub-attributes, datasetIds and scopes."""
    sub = MappingProxyType({VOCAB + "accuracy": Attribute(AttrKind.PROPERTY, 0.5)})
    attrs = {
        VOCAB + "p": (
            Attribute(AttrKind.PROPERTY, {"nested": [1, 2.5, None, "ção"]}, sub=sub),
            Attribute(AttrKind.PROPERTY, 7, dataset_id="urn:ngsi-ld:Dataset:b"),
        ),
        VOCAB + "r": (
            Attribute(AttrKind.RELATIONSHIP, "urn:ngsi-ld:Building:1", object_type=VOCAB + "B"),
        ),
        VOCAB + "g": (
            Attribute(AttrKind.GEO_PROPERTY, {"type": "Point", "coordinates": [-7.5, 40.1]}),
        ),
        VOCAB + "l": (Attribute(AttrKind.LANGUAGE_PROPERTY, {"pt": "sala", "en": "room"}),),
        VOCAB + "v": (Attribute(AttrKind.VOCAB_PROPERTY, VOCAB + "Big"),),
        VOCAB + "j": (Attribute(AttrKind.JSON_PROPERTY, {"@type": "x", "a": [True]}),),
        VOCAB + "lp": (Attribute(AttrKind.LIST_PROPERTY, [1, "two", 3.0]),),
        VOCAB + "lr": (Attribute(AttrKind.LIST_RELATIONSHIP, ["urn:a:1", "urn:a:2"]),),
        VOCAB + "o": (
            Attribute(AttrKind.PROPERTY, 3, observed_at=T1, unit_code="C62", modified_at=T1),
        ),
    }
    return Entity(
        "urn:ngsi-ld:Thing:every",
        (ROOM, VOCAB + "Thing"),
        MappingProxyType(attrs),
        scope=("/Fundão/Centro",),
        created_at=T0,
        modified_at=T1,
    )


def set_temperature(value: float) -> Any:
    """A change that sets the temperature and hands back the previous one."""

    def change(current: Entity) -> tuple[Entity, Any]:
        before = current.instance(TEMPERATURE)
        attrs = {**current.attrs, TEMPERATURE: prop(value, unit_code="CEL")}
        return current.with_attrs(attrs, T1), before.value if before else None

    return change


def context(context_id: str = "ctx-1", kind: str = "hosted", **fields: Any) -> StoredContext:
    """A stored @context."""
    values: dict[str, Any] = {
        "id": context_id,
        "url": f"http://burgo.test/ngsi-ld/v1/jsonldContexts/{context_id}",
        "kind": kind,
        "document": {"@context": {"temperature": TEMPERATURE, "nome": "https://ex.org/ção"}},
        "created_at": T0,
    }
    values.update(fields)
    return StoredContext(**values)


class StoreContract:
    """Every Store backend passes these tests."""

    pytestmark = pytest.mark.anyio

    @pytest.fixture
    def store(self) -> Store:
        """A freshly opened, empty store; each backend's test class provides it."""
        raise NotImplementedError("subclass StoreContract and provide a store fixture")

    # -- tenants -------------------------------------------------------------------------------

    async def test_a_new_store_has_only_the_default_tenant(self, store: Store) -> None:
        assert await store.list_tenants() == [DEFAULT_TENANT]
        assert await store.tenant_exists(DEFAULT_TENANT)
        assert await store.count_entities(DEFAULT_TENANT) == 0

    async def test_a_tenant_is_created_by_its_first_write(self, store: Store) -> None:
        assert not await store.tenant_exists("fundao")
        await store.create_entity("fundao", room())
        assert await store.tenant_exists("fundao")
        assert sorted(await store.list_tenants()) == [DEFAULT_TENANT, "fundao"]
        assert await store.get_entity("fundao", room().id) == room()

    @pytest.mark.parametrize(
        "operation",
        ["get_entity", "count_entities", "modify_entity", "delete_entity"],
    )
    async def test_an_unknown_tenant_is_reported(self, store: Store, operation: str) -> None:
        await store.create_entity(DEFAULT_TENANT, room())
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "get_entity": lambda: store.get_entity("nowhere", room().id),
            "count_entities": lambda: store.count_entities("nowhere"),
            "modify_entity": lambda: store.modify_entity("nowhere", room().id, set_temperature(1)),
            "delete_entity": lambda: store.delete_entity("nowhere", room().id),
        }
        with pytest.raises(NonexistentTenant):
            await calls[operation]()
        assert not await store.tenant_exists("nowhere")
        assert await store.list_tenants() == [DEFAULT_TENANT]
        assert await store.get_entity(DEFAULT_TENANT, room().id) == room()

    async def test_tenants_are_isolated(self, store: Store) -> None:
        await store.create_entity("a", room(temperature=1.0))
        await store.create_entity("b", room(temperature=2.0))
        await store.create_entity("b", room("urn:ngsi-ld:Room:2"))
        assert (await store.get_entity("a", room().id)) == room(temperature=1.0)
        assert (await store.get_entity("b", room().id)) == room(temperature=2.0)
        assert await store.get_entity("a", "urn:ngsi-ld:Room:2") is None
        assert await store.get_entity(DEFAULT_TENANT, room().id) is None
        assert await store.count_entities("a") == 1
        assert await store.count_entities("b") == 2
        assert await store.count_entities(DEFAULT_TENANT) == 0

        await store.modify_entity("a", room().id, set_temperature(9.0))
        await store.delete_entity("b", "urn:ngsi-ld:Room:2")
        assert (await store.get_entity("b", room().id)) == room(temperature=2.0)
        assert await store.get_entity("a", "urn:ngsi-ld:Room:2") is None
        assert await store.count_entities("a") == 1

    async def test_a_tenant_outlives_its_last_entity(self, store: Store) -> None:
        await store.create_entity("fundao", room())
        await store.delete_entity("fundao", room().id)
        assert await store.tenant_exists("fundao")
        assert await store.count_entities("fundao") == 0
        assert await store.get_entity("fundao", room().id) is None

    # -- create and get ------------------------------------------------------------------------

    async def test_an_entity_reads_back_as_stored(self, store: Store) -> None:
        await store.create_entity(DEFAULT_TENANT, every_kind())
        assert await store.get_entity(DEFAULT_TENANT, every_kind().id) == every_kind()

    async def test_system_timestamps_are_optional(self, store: Store) -> None:
        bare = Entity("urn:ngsi-ld:Room:bare", (ROOM,))
        await store.create_entity(DEFAULT_TENANT, bare)
        assert await store.get_entity(DEFAULT_TENANT, bare.id) == bare

    async def test_a_missing_entity_reads_as_none(self, store: Store) -> None:
        await store.create_entity(DEFAULT_TENANT, room())
        assert await store.get_entity(DEFAULT_TENANT, "urn:ngsi-ld:Room:404") is None

    async def test_creating_an_existing_id_fails_and_keeps_the_first(self, store: Store) -> None:
        await store.create_entity(DEFAULT_TENANT, room(temperature=1.0))
        with pytest.raises(AlreadyExists):
            await store.create_entity(DEFAULT_TENANT, room(temperature=2.0))
        assert await store.get_entity(DEFAULT_TENANT, room().id) == room(temperature=1.0)
        assert await store.count_entities(DEFAULT_TENANT) == 1

    async def test_ids_are_case_sensitive(self, store: Store) -> None:
        await store.create_entity(DEFAULT_TENANT, room("urn:ngsi-ld:Room:a"))
        await store.create_entity(DEFAULT_TENANT, room("urn:ngsi-ld:Room:A", temperature=3.0))
        assert await store.get_entity(DEFAULT_TENANT, "urn:ngsi-ld:Room:A") == room(
            "urn:ngsi-ld:Room:A", temperature=3.0
        )

    # -- modify --------------------------------------------------------------------------------

    async def test_modify_stores_the_change_and_returns_its_result(self, store: Store) -> None:
        await store.create_entity(DEFAULT_TENANT, room(temperature=20.0))
        previous = await store.modify_entity(DEFAULT_TENANT, room().id, set_temperature(25.0))
        assert previous == 20.0
        stored = await store.get_entity(DEFAULT_TENANT, room().id)
        assert stored is not None
        assert stored.instance(TEMPERATURE) == prop(25.0, unit_code="CEL")[0]
        assert stored.modified_at == T1
        assert stored.created_at == T0

    async def test_modify_can_change_the_types(self, store: Store) -> None:
        await store.create_entity(DEFAULT_TENANT, room())

        def retype(current: Entity) -> tuple[Entity, None]:
            return Entity(current.id, (VOCAB + "Office",), current.attrs, modified_at=T1), None

        await store.modify_entity(DEFAULT_TENANT, room().id, retype)
        stored = await store.get_entity(DEFAULT_TENANT, room().id)
        assert stored is not None
        assert stored.types == (VOCAB + "Office",)

    async def test_an_error_in_the_change_leaves_the_entity_unchanged(self, store: Store) -> None:
        await store.create_entity(DEFAULT_TENANT, room(temperature=20.0))

        def refuse(current: Entity) -> tuple[Entity, None]:
            raise BadRequestData("no such attribute")

        with pytest.raises(BadRequestData, match="no such attribute"):
            await store.modify_entity(DEFAULT_TENANT, room().id, refuse)
        assert await store.get_entity(DEFAULT_TENANT, room().id) == room(temperature=20.0)
        assert await store.modify_entity(DEFAULT_TENANT, room().id, set_temperature(1)) == 20.0

    async def test_modifying_a_missing_entity_is_not_found(self, store: Store) -> None:
        called: list[Entity] = []

        def change(current: Entity) -> tuple[Entity, None]:
            called.append(current)
            return current, None

        with pytest.raises(ResourceNotFound):
            await store.modify_entity(DEFAULT_TENANT, "urn:ngsi-ld:Room:404", change)
        assert called == []
        assert await store.count_entities(DEFAULT_TENANT) == 0

    async def test_a_change_returning_none_deletes(self, store: Store) -> None:
        await store.create_entity(DEFAULT_TENANT, room())
        await store.create_entity(DEFAULT_TENANT, room("urn:ngsi-ld:Room:2"))
        result = await store.modify_entity(DEFAULT_TENANT, room().id, lambda e: (None, "gone"))
        assert result == "gone"
        assert await store.get_entity(DEFAULT_TENANT, room().id) is None
        assert await store.count_entities(DEFAULT_TENANT) == 1
        await store.create_entity(DEFAULT_TENANT, room(temperature=5.0))
        assert await store.get_entity(DEFAULT_TENANT, room().id) == room(temperature=5.0)

    async def test_concurrent_modifications_lose_no_update(self, store: Store) -> None:
        await store.create_entity(DEFAULT_TENANT, room(more={COUNTER: prop(0)}))

        def increment(current: Entity) -> tuple[Entity, int]:
            counter = current.instance(COUNTER)
            assert counter is not None
            value = counter.value + 1
            return current.with_attrs({**current.attrs, COUNTER: prop(value)}, T1), value

        results = await asyncio.gather(
            *(store.modify_entity(DEFAULT_TENANT, room().id, increment) for _ in range(200))
        )
        assert sorted(results) == list(range(1, 201))
        stored = await store.get_entity(DEFAULT_TENANT, room().id)
        assert stored is not None
        assert stored.instance(COUNTER) == prop(200)[0]

    # -- delete and count ----------------------------------------------------------------------

    async def test_delete_returns_the_entity_and_removes_it(self, store: Store) -> None:
        await store.create_entity(DEFAULT_TENANT, every_kind())
        await store.create_entity(DEFAULT_TENANT, room())
        assert await store.delete_entity(DEFAULT_TENANT, every_kind().id) == every_kind()
        assert await store.get_entity(DEFAULT_TENANT, every_kind().id) is None
        assert await store.count_entities(DEFAULT_TENANT) == 1
        with pytest.raises(ResourceNotFound):
            await store.delete_entity(DEFAULT_TENANT, every_kind().id)
        await store.create_entity(DEFAULT_TENANT, every_kind())
        assert await store.get_entity(DEFAULT_TENANT, every_kind().id) == every_kind()

    async def test_count_follows_creates_and_deletes(self, store: Store) -> None:
        for n in range(5):
            await store.create_entity(DEFAULT_TENANT, room(f"urn:ngsi-ld:Room:{n}"))
        assert await store.count_entities(DEFAULT_TENANT) == 5
        await store.delete_entity(DEFAULT_TENANT, "urn:ngsi-ld:Room:3")
        assert await store.count_entities(DEFAULT_TENANT) == 4

    # -- @contexts -----------------------------------------------------------------------------

    async def test_a_context_reads_back_by_id_and_by_url(self, store: Store) -> None:
        stored = context()
        await store.put_context(stored)
        assert await store.get_context(stored.id) == stored
        assert await store.get_context(stored.url) == stored
        assert await store.get_context("ctx-404") is None

    async def test_putting_a_context_again_replaces_it(self, store: Store) -> None:
        await store.put_context(context())
        newer = context(document={"@context": {"a": "https://ex.org/a"}}, created_at=T1)
        await store.put_context(newer)
        assert await store.get_context("ctx-1") == newer
        assert [c.id for c in await store.list_contexts()] == ["ctx-1"]

    async def test_contexts_list_all_or_one_kind(self, store: Store) -> None:
        hosted = [context("h1"), context("h2", created_at=T1)]
        cached = context("c1", kind="cached", url="https://ex.org/ctx.jsonld")
        for each in [*hosted, cached]:
            await store.put_context(each)
        assert sorted(await store.list_contexts(), key=lambda c: c.id) == [
            cached,
            *hosted,
        ]
        assert sorted(await store.list_contexts("hosted"), key=lambda c: c.id) == hosted
        assert list(await store.list_contexts("cached")) == [cached]
        assert list(await store.list_contexts("implicit")) == []

    async def test_touching_a_context_counts_its_uses(self, store: Store) -> None:
        await store.put_context(context())
        await store.touch_context("ctx-1", T0)
        await store.touch_context("ctx-1", T1)
        touched = await store.get_context("ctx-1")
        assert touched is not None
        assert (touched.hits, touched.last_usage) == (2, T1)
        assert touched.document == context().document

    async def test_touching_a_deleted_context_is_harmless(self, store: Store) -> None:
        await store.touch_context("ctx-404", T1)
        assert await store.get_context("ctx-404") is None

    async def test_deleting_a_context(self, store: Store) -> None:
        await store.put_context(context("keep"))
        await store.put_context(context())
        assert await store.delete_context("ctx-1") is True
        assert await store.get_context("ctx-1") is None
        assert await store.delete_context("ctx-1") is False
        assert [c.id for c in await store.list_contexts()] == ["keep"]

    # -- stats ---------------------------------------------------------------------------------

    async def test_stats_are_prometheus_gauges(self, store: Store) -> None:
        await store.create_entity(DEFAULT_TENANT, room())
        stats = store.stats()
        assert stats
        for name, value in stats.items():
            assert re.fullmatch(r"burgo_[a-z0-9_]+", name), name
            assert isinstance(value, int | float)
            assert math.isfinite(value)
            assert value >= 0
