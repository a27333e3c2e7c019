"""The Store contract: what every backend must do, written against the protocol only.

The classes here are run against every backend by tests/store/test_contract.py, through the
``store`` fixture of tests/store/conftest.py (one freshly opened, empty store per backend):

>>> class TestStore(StoreContract):
...     pass
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
from burgo.store.batch import EntityWrite

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


class BatchContract:
    """Batch writes and discovery: every Store backend passes these tests (issue 3)."""

    pytestmark = pytest.mark.anyio

    async def test_creates_are_stored_and_reported_in_order(self, store: Store) -> None:
        rooms = [room(f"urn:ngsi-ld:Room:{n}", temperature=n) for n in range(3)]
        outcomes = await store.write_entities(
            DEFAULT_TENANT, [EntityWrite(r.id, create=r) for r in rooms]
        )
        assert [(o.entity_id, o.created, o.ok) for o in outcomes] == [
            (r.id, True, True) for r in rooms
        ]
        for stored_room in rooms:
            assert await store.get_entity(DEFAULT_TENANT, stored_room.id) == stored_room

    async def test_an_existing_id_fails_alone_and_keeps_the_stored_entity(
        self, store: Store
    ) -> None:
        await store.create_entity(DEFAULT_TENANT, room(temperature=1.0))
        new = room("urn:ngsi-ld:Room:2")
        outcomes = await store.write_entities(
            DEFAULT_TENANT,
            [EntityWrite(room().id, create=room(temperature=9.0)), EntityWrite(new.id, create=new)],
        )
        assert isinstance(outcomes[0].error, AlreadyExists)
        assert outcomes[1].ok and outcomes[1].created
        assert await store.get_entity(DEFAULT_TENANT, room().id) == room(temperature=1.0)
        assert await store.get_entity(DEFAULT_TENANT, new.id) == new

    async def test_writes_of_one_id_apply_in_order(self, store: Store) -> None:
        outcomes = await store.write_entities(
            DEFAULT_TENANT,
            [
                EntityWrite(room().id, create=room(temperature=1.0)),
                EntityWrite(room().id, create=room(temperature=2.0)),
                EntityWrite(room().id, change=set_temperature(3.0)),
                EntityWrite(room().id, change=lambda e: (None, "gone")),
                EntityWrite(room().id, change=set_temperature(4.0)),
                EntityWrite(room().id, create=room(temperature=5.0)),
            ],
        )
        assert [o.ok for o in outcomes] == [True, False, True, True, False, True]
        assert isinstance(outcomes[1].error, AlreadyExists)
        assert outcomes[2].result == 1.0
        assert outcomes[3].result == "gone"
        assert isinstance(outcomes[4].error, ResourceNotFound)
        assert await store.get_entity(DEFAULT_TENANT, room().id) == room(temperature=5.0)
        assert await store.count_entities(DEFAULT_TENANT) == 1

    async def test_a_failing_change_leaves_its_entity_and_spares_the_others(
        self, store: Store
    ) -> None:
        await store.create_entity(DEFAULT_TENANT, room(temperature=1.0))
        await store.create_entity(DEFAULT_TENANT, room("urn:ngsi-ld:Room:2", temperature=2.0))

        def refuse(current: Entity) -> tuple[Entity, None]:
            raise BadRequestData("refused")

        outcomes = await store.write_entities(
            DEFAULT_TENANT,
            [
                EntityWrite(room().id, change=refuse),
                EntityWrite("urn:ngsi-ld:Room:2", change=set_temperature(7.0)),
                EntityWrite("urn:ngsi-ld:Room:404", change=set_temperature(7.0)),
            ],
        )
        assert isinstance(outcomes[0].error, BadRequestData)
        assert outcomes[1].ok and not outcomes[1].created and outcomes[1].result == 2.0
        assert isinstance(outcomes[2].error, ResourceNotFound)
        assert await store.get_entity(DEFAULT_TENANT, room().id) == room(temperature=1.0)
        changed = await store.get_entity(DEFAULT_TENANT, "urn:ngsi-ld:Room:2")
        assert changed is not None and changed.instance(TEMPERATURE).value == 7.0  # type: ignore[union-attr]
        assert await store.count_entities(DEFAULT_TENANT) == 2

    async def test_a_change_returning_the_same_entity_writes_nothing(self, store: Store) -> None:
        await store.create_entity(DEFAULT_TENANT, room())
        outcomes = await store.write_entities(
            DEFAULT_TENANT, [EntityWrite(room().id, change=lambda e: (e, "same"))]
        )
        assert outcomes[0].ok and outcomes[0].result == "same"
        assert await store.get_entity(DEFAULT_TENANT, room().id) == room()

    async def test_a_batch_change_can_retype_an_entity(self, store: Store) -> None:
        await store.create_entity(DEFAULT_TENANT, room())

        def retype(current: Entity) -> tuple[Entity, None]:
            return Entity(current.id, (VOCAB + "Office",), current.attrs, modified_at=T1), None

        await store.write_entities(DEFAULT_TENANT, [EntityWrite(room().id, change=retype)])
        assert await store.entity_types(DEFAULT_TENANT) == [VOCAB + "Office"]

    async def test_creates_make_the_tenant_and_only_changes_need_it(self, store: Store) -> None:
        with pytest.raises(NonexistentTenant):
            await store.write_entities(
                "fundao", [EntityWrite(room().id, change=set_temperature(1))]
            )
        assert not await store.tenant_exists("fundao")
        await store.write_entities("fundao", [EntityWrite(room().id, create=room())])
        assert await store.tenant_exists("fundao")
        assert await store.get_entity(DEFAULT_TENANT, room().id) is None
        assert await store.get_entity("fundao", room().id) == room()

    async def test_a_large_batch_is_stored_whole(self, store: Store) -> None:
        rooms = [room(f"urn:ngsi-ld:Room:{n}") for n in range(2_000)]
        outcomes = await store.write_entities(
            DEFAULT_TENANT, [EntityWrite(r.id, create=r) for r in rooms]
        )
        assert all(o.ok for o in outcomes)
        assert await store.count_entities(DEFAULT_TENANT) == 2_000
        outcomes = await store.write_entities(
            DEFAULT_TENANT, [EntityWrite(r.id, change=set_temperature(0)) for r in rooms]
        )
        assert all(o.ok and o.result == 21.5 for o in outcomes)

    # -- discovery -----------------------------------------------------------------------------

    async def _town(self, store: Store) -> None:
        office = VOCAB + "Office"
        level = {VOCAB + "level": prop(3)}
        located = {
            VOCAB + "at": (Attribute(AttrKind.RELATIONSHIP, "urn:ngsi-ld:Building:1"),),
        }
        both = Entity(
            "urn:ngsi-ld:Room:both",
            (ROOM, office),
            MappingProxyType({TEMPERATURE: prop(1), **located}),
        )
        await store.create_entity(DEFAULT_TENANT, room("urn:ngsi-ld:Room:1", more=level))
        await store.create_entity(DEFAULT_TENANT, room("urn:ngsi-ld:Room:2"))
        await store.create_entity(DEFAULT_TENANT, both)
        other = Entity(
            "urn:ngsi-ld:Office:1",
            (office,),
            MappingProxyType(
                {
                    VOCAB + "at": (
                        Attribute(AttrKind.PROPERTY, "hall"),
                        Attribute(AttrKind.RELATIONSHIP, "urn:a:b", dataset_id="urn:d:1"),
                    )
                }
            ),
        )
        await store.create_entity(DEFAULT_TENANT, other)
        await store.create_entity("fundao", Entity("urn:x:1", (VOCAB + "Bin",)))

    async def test_entity_types_are_listed_once_per_tenant(self, store: Store) -> None:
        await self._town(store)
        assert await store.entity_types(DEFAULT_TENANT) == [VOCAB + "Office", ROOM]
        assert await store.entity_types("fundao") == [VOCAB + "Bin"]
        with pytest.raises(NonexistentTenant):
            await store.entity_types("nowhere")

    async def test_type_details_count_entities_and_their_attribute_kinds(
        self, store: Store
    ) -> None:
        await self._town(store)
        office, room_type = await store.type_details(DEFAULT_TENANT)
        assert (office.name, office.entity_count) == (VOCAB + "Office", 2)
        assert dict(office.attributes) == {
            VOCAB + "at": ("Property", "Relationship"),
            TEMPERATURE: ("Property",),
        }
        assert (room_type.name, room_type.entity_count) == (ROOM, 3)
        assert dict(room_type.attributes) == {
            VOCAB + "at": ("Relationship",),
            VOCAB + "level": ("Property",),
            TEMPERATURE: ("Property",),
        }
        assert await store.type_details(DEFAULT_TENANT, [VOCAB + "Bin"]) == []
        [bins] = await store.type_details("fundao", [VOCAB + "Bin"])
        assert (bins.entity_count, dict(bins.attributes)) == (1, {})

    async def test_attributes_count_instances_kinds_and_holders(self, store: Store) -> None:
        await self._town(store)
        assert await store.attribute_names(DEFAULT_TENANT) == [
            VOCAB + "at",
            VOCAB + "level",
            TEMPERATURE,
        ]
        at, level, temperature = await store.attribute_details(DEFAULT_TENANT)
        assert (at.name, at.count, at.kinds) == (VOCAB + "at", 3, ("Property", "Relationship"))
        assert at.entity_types == (VOCAB + "Office", ROOM)
        assert (level.count, level.kinds, level.entity_types) == (1, ("Property",), (ROOM,))
        assert temperature.count == 3
        assert temperature.entity_types == (VOCAB + "Office", ROOM)
        assert await store.attribute_details(DEFAULT_TENANT, [VOCAB + "nothing"]) == []
        assert await store.attribute_names("fundao") == []
        with pytest.raises(NonexistentTenant):
            await store.attribute_details("nowhere")


def subscription(sub_id: str = "urn:ngsi-ld:Subscription:1", **fields: Any) -> Any:
    """A subscription to Rooms notifying http://192.0.2.1/n, created at T0."""
    from burgo.ngsild.subscription import Endpoint, EntitySelector, NotificationParams, Subscription

    return Subscription(
        id=sub_id,
        notification=NotificationParams(Endpoint("http://192.0.2.1/n")),
        entities=(EntitySelector(ROOM),),
        created_at=T0,
        modified_at=T0,
        **fields,
    )


class SubscriptionContract:
    """Subscriptions and their outbox, filled in the same transaction as the entity change."""

    pytestmark = pytest.mark.anyio

    async def test_subscriptions_are_kept_listed_changed_and_deleted(self, store: Store) -> None:
        from dataclasses import replace

        for n in range(3):
            await store.create_subscription("fundao", subscription(f"urn:s:{n}"))
        with pytest.raises(AlreadyExists):
            await store.create_subscription("fundao", subscription("urn:s:1"))
        found = await store.get_subscription("fundao", "urn:s:1")
        assert found is not None and found.subscription == subscription("urn:s:1")
        assert found.status.times_sent == 0
        page, total = await store.list_subscriptions("fundao", limit=2, offset=1)
        assert ([s.subscription.id for s in page], total) == (["urn:s:1", "urn:s:2"], 3)
        changed = await store.modify_subscription(
            "fundao", "urn:s:2", lambda s: replace(s, is_active=False)
        )
        assert changed.is_active is False
        stored = await store.get_subscription("fundao", "urn:s:2")
        assert stored is not None and stored.subscription.is_active is False
        await store.delete_subscription("fundao", "urn:s:2")
        assert await store.get_subscription("fundao", "urn:s:2") is None
        with pytest.raises(ResourceNotFound):
            await store.delete_subscription("fundao", "urn:s:2")
        with pytest.raises(ResourceNotFound):
            await store.modify_subscription("fundao", "urn:s:9", lambda s: s)
        assert await store.get_subscription(DEFAULT_TENANT, "urn:s:1") is None
        with pytest.raises(NonexistentTenant):
            await store.list_subscriptions("nowhere", limit=10, offset=0)

    async def test_matching_changes_are_queued_in_order_and_settled(self, store: Store) -> None:
        await store.create_subscription(DEFAULT_TENANT, subscription())
        await store.create_entity(DEFAULT_TENANT, room())
        with pytest.raises(AlreadyExists):
            await store.create_entity(DEFAULT_TENANT, room())  # a failed write queues nothing
        await store.create_entity(DEFAULT_TENANT, room("urn:ngsi-ld:Office:1").__class__(
            "urn:ngsi-ld:Office:1", (VOCAB + "Office",), room().attrs))  # fmt: skip
        await store.modify_entity(DEFAULT_TENANT, room().id, set_temperature(30.0))
        lanes, high = await store.outbox_lanes(0)
        assert [(lane.tenant, lane.subscription_id) for lane in lanes] == [
            (DEFAULT_TENANT, "urn:ngsi-ld:Subscription:1")
        ]
        assert store.outbox_written() == high
        pending = await store.pending_notifications(
            DEFAULT_TENANT, "urn:ngsi-ld:Subscription:1", limit=10
        )
        temperatures = [p.changes[0].entity.instance(TEMPERATURE) for p in pending]
        assert [t.value for t in temperatures if t is not None] == [21.5, 30.0]
        assert pending[0].seq < pending[1].seq
        await store.notification_failed(DEFAULT_TENANT, pending[0].subscription_id,
                                        pending[0].seq, T1)  # fmt: skip
        again = await store.pending_notifications(DEFAULT_TENANT, pending[0].subscription_id,
                                                  limit=10)  # fmt: skip
        assert [p.attempts for p in again] == [1, 0]
        await store.notifications_delivered(
            DEFAULT_TENANT, pending[0].subscription_id, [pending[0].seq], 1, T1
        )
        left = await store.pending_notifications(DEFAULT_TENANT, pending[0].subscription_id,
                                                 limit=10)  # fmt: skip
        assert [p.seq for p in left] == [pending[1].seq]
        stored = await store.get_subscription(DEFAULT_TENANT, pending[0].subscription_id)
        assert stored is not None
        assert (stored.status.times_sent, stored.status.times_failed) == (1, 1)
        assert (stored.status.last_success, stored.status.failing) == (T1, False)
        await store.delete_subscription(DEFAULT_TENANT, pending[0].subscription_id)
        assert await store.outbox_lanes(0) == ([], 0)

    async def test_other_tenants_and_inactive_subscriptions_queue_nothing(
        self, store: Store
    ) -> None:
        await store.create_subscription("fundao", subscription())
        await store.create_subscription("fundao", subscription("urn:s:off", is_active=False))
        await store.create_entity(DEFAULT_TENANT, room())
        assert (await store.outbox_lanes(0))[0] == []

    async def test_periodic_notifications_hold_the_selected_entities(self, store: Store) -> None:
        await store.create_entity(DEFAULT_TENANT, room())
        await store.create_subscription(DEFAULT_TENANT, subscription(time_interval=60.0))
        assert [s.id for _, s in store.periodic_subscriptions()] == ["urn:ngsi-ld:Subscription:1"]
        assert (await store.outbox_lanes(0))[0] == []
        assert await store.enqueue_periodic(DEFAULT_TENANT, "urn:ngsi-ld:Subscription:1", T1)
        [pending] = await store.pending_notifications(
            DEFAULT_TENANT, "urn:ngsi-ld:Subscription:1", limit=5
        )
        assert [c.entity.id for c in pending.changes] == [room().id]


def device(device_id: str = "aq-1", tenant: str = DEFAULT_TENANT, **fields: Any) -> Any:
    """A registered device feeding an AirQualityObserved, expected every 300 s."""
    from burgo.store.base import devices

    values: dict[str, Any] = {
        "tenant": tenant,
        "id": device_id,
        "name": "Praça",
        "protocol": "lorawan",
        "entity_id": f"urn:ngsi-ld:AirQualityObserved:{device_id}",
        "entity_type": "AirQualityObserved",
        "entity_type_iri": VOCAB + "AirQualityObserved",
        "mapping": (devices.AttributeMap("pm25", "pm25", VOCAB + "pm25", "GQ", 1.0, 0.0),),
        "dev_eui": "0004A30B001C0530",
        "static_attrs": (devices.StaticAttribute("name", VOCAB + "name", "Praça"),),
        "location": (-7.5, 40.14),
        "interval": 300,
        "key_hash": "scrypt$4096$8$1$00$00",
        "created_at": T0,
        **fields,
    }
    return devices.Device(**values)


class DeviceContract:
    """The device registry: devices, their status, and message ids taken in once."""

    pytestmark = pytest.mark.anyio

    async def test_a_device_round_trips(self, store: Store) -> None:
        await store.create_device(device())
        assert await store.get_device(DEFAULT_TENANT, "aq-1") == device()
        assert await store.find_device_by_eui(DEFAULT_TENANT, "0004A30B001C0530") == device()
        assert await store.find_device_by_eui("other", "0004A30B001C0530") is None
        assert await store.get_device("other", "aq-1") is None
        status = await store.get_device_status(DEFAULT_TENANT, "aq-1")
        assert status is not None
        assert (status.state, status.messages, status.interval) == ("unknown", 0, 300)

    async def test_ids_and_dev_euis_are_unique_per_tenant(self, store: Store) -> None:
        await store.create_device(device())
        with pytest.raises(AlreadyExists, match="id aq-1"):
            await store.create_device(device(dev_eui=None))
        with pytest.raises(AlreadyExists, match="DevEUI 0004A30B001C0530"):
            await store.create_device(device("aq-2"))
        await store.create_device(device(tenant="fundao"))
        await store.create_device(device("aq-3", dev_eui=None))
        await store.create_device(device("aq-4", dev_eui=None))
        assert [d.id for d in await store.list_devices(DEFAULT_TENANT)] == ["aq-1", "aq-3", "aq-4"]
        assert [d.id for d in await store.list_devices("fundao")] == ["aq-1"]
        assert "fundao" in await store.list_tenants()

    async def test_reports_update_the_status_and_message_ids_count_once(self, store: Store) -> None:
        from burgo.store.base import devices

        await store.create_device(device())
        report = devices.DeviceReport(at=T0, rssi=-90.0, snr=7.5, gateway="gw-1", frame_counter=3)
        first = await store.record_device_report(DEFAULT_TENANT, "aq-1", report, "up-1")
        assert first == devices.ReportOutcome(duplicate=False, previous_state="unknown")
        again = await store.record_device_report(DEFAULT_TENANT, "aq-1", report, "up-1")
        assert again == devices.ReportOutcome(duplicate=True, previous_state="online")
        later = devices.DeviceReport(at=T1, battery=81.0)
        await store.record_device_report(DEFAULT_TENANT, "aq-1", later)
        status = await store.get_device_status(DEFAULT_TENANT, "aq-1")
        assert status is not None
        assert (status.state, status.state_since, status.last_seen) == ("online", T0, T1)
        radio = (status.rssi, status.snr, status.gateway, status.battery)
        assert radio == (-90.0, 7.5, "gw-1", 81.0)
        assert (status.frame_counter, status.messages, status.duplicates) == (3, 2, 1)

        await store.forget_device_message(DEFAULT_TENANT, "aq-1", "up-1")
        retried = await store.record_device_report(DEFAULT_TENANT, "aq-1", report, "up-1")
        assert not retried.duplicate

    async def test_errors_and_state_changes(self, store: Store) -> None:
        await store.create_device(device())
        await store.record_device_error(DEFAULT_TENANT, "aq-1", "bad payload", T0)
        assert not await store.set_device_state(
            DEFAULT_TENANT, "aq-1", "offline", T1, expected="online"
        )
        assert await store.set_device_state(
            DEFAULT_TENANT, "aq-1", "offline", T1, expected="unknown"
        )
        [status] = await store.list_device_statuses()
        assert (status.errors, status.last_error, status.last_error_at) == (1, "bad payload", T0)
        assert (status.state, status.state_since) == ("offline", T1)

    async def test_deleting_a_device_forgets_its_status_and_messages(self, store: Store) -> None:
        from burgo.store.base import devices

        await store.create_device(device())
        await store.record_device_report(
            DEFAULT_TENANT, "aq-1", devices.DeviceReport(at=T0), "up-1"
        )
        assert await store.delete_device(DEFAULT_TENANT, "aq-1")
        assert not await store.delete_device(DEFAULT_TENANT, "aq-1")
        assert await store.get_device(DEFAULT_TENANT, "aq-1") is None
        assert await store.get_device_status(DEFAULT_TENANT, "aq-1") is None
        assert await store.list_device_statuses() == []
        await store.create_device(device())
        outcome = await store.record_device_report(
            DEFAULT_TENANT, "aq-1", devices.DeviceReport(at=T1), "up-1"
        )
        assert not outcome.duplicate
