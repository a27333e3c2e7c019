"""The contract of a sequence of entity changes in one transaction (``Store.modify_entities``) and
of a device report with its readings (``Store.ingest_device_report``), against the protocol only.

test_contract.py runs it on every backend through the ``store`` fixture, a freshly opened, empty
store (as for ``StoreContract``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from burgo.ngsild.errors import (
    BadRequestData,
    NonexistentTenant,
    ResourceNotFound,
)
from burgo.ngsild.model import Attribute, AttrKind, Entity
from burgo.ngsild.qlang import parse_q
from burgo.ngsild.query import EntityQuery
from burgo.ngsild.temporal import TemporalQuery
from burgo.store.base import DEFAULT_TENANT, Store, devices
from burgo.store.temporal import HistorySelection
from tests.store.contract import ROOM, T0, TEMPERATURE, VOCAB, device, room, subscription

ROOM_1 = "urn:ngsi-ld:Room:1"
ROOM_2 = "urn:ngsi-ld:Room:2"


def observe(value: float, at: str) -> Any:
    """A change setting the temperature observed at ``at``, handing back the value it replaced."""

    def change(current: Entity) -> tuple[Entity, Any]:
        before = current.instance(TEMPERATURE)
        reading = Attribute(AttrKind.PROPERTY, value, observed_at=at, created_at=T0, modified_at=at)
        return current.with_attrs({**current.attrs, TEMPERATURE: (reading,)}, at), (
            before.value if before else None
        )

    return change


def refuse(current: Entity) -> tuple[Entity, Any]:
    """A change that fails, as a change finding bad input does."""
    raise BadRequestData("this change refuses")


def minute(n: int) -> str:
    """2024-05-01T10:0n:00.000Z."""
    return f"2024-05-01T10:{n:02d}:00.000Z"


async def temperatures(store: Store, entity_id: str = ROOM_1) -> list[Any]:
    """The entity's temperature history, oldest first."""
    page = await store.query_history(
        DEFAULT_TENANT,
        HistorySelection(ids=(entity_id,)),
        TemporalQuery(),
        max_instances=1000,
    )
    found = [e for e in page.entities if e.id == entity_id]
    if not found:
        return []
    return [i.attribute.value for i in found[0].attrs.get(TEMPERATURE, [])]


async def current(store: Store, entity_id: str = ROOM_1) -> Any:
    """The entity's stored temperature (None if the entity is gone)."""
    entity = await store.get_entity(DEFAULT_TENANT, entity_id)
    if entity is None:
        return None
    instance = entity.instance(TEMPERATURE)
    return instance.value if instance else None


class EntityChangesContract:
    """Many changes of one or several entities applied in one transaction, each state seen."""

    pytestmark = pytest.mark.anyio

    async def test_changes_apply_in_order_and_return_their_results(self, store: Store) -> None:
        await store.create_entity(DEFAULT_TENANT, room(ROOM_1))
        await store.create_entity(DEFAULT_TENANT, room(ROOM_2, temperature=5.0))
        results = await store.modify_entities(
            DEFAULT_TENANT,
            [
                (ROOM_1, observe(22.0, minute(1))),
                (ROOM_2, observe(6.0, minute(1))),
                (ROOM_1, observe(23.0, minute(2))),
            ],
        )
        assert results == [21.5, 5.0, 22.0]
        assert (await current(store, ROOM_1), await current(store, ROOM_2)) == (23.0, 6.0)
        stored = await store.get_entity(DEFAULT_TENANT, ROOM_1)
        assert stored is not None and stored.modified_at == minute(2)
        assert await store.modify_entities(DEFAULT_TENANT, []) == []

    async def test_every_intermediate_state_reaches_the_history(self, store: Store) -> None:
        await store.create_entity(DEFAULT_TENANT, room(ROOM_1))
        changes = [(ROOM_1, observe(20.0 + n, minute(n))) for n in range(1, 6)]
        await store.modify_entities(DEFAULT_TENANT, changes)
        assert await temperatures(store) == [21.5, 21.0, 22.0, 23.0, 24.0, 25.0]

    async def test_readings_of_one_moment_on_a_new_attribute_are_all_kept(
        self, store: Store
    ) -> None:
        bare = room(ROOM_1)
        await store.create_entity(DEFAULT_TENANT, replace(bare, attrs={}))
        changes = [(ROOM_1, observe(v, minute(1))) for v in (20.0, 20.5, 21.0)]
        await store.modify_entities(DEFAULT_TENANT, changes)
        assert await temperatures(store) == [20.0, 20.5, 21.0]
        assert await current(store) == 21.0

    async def test_every_intermediate_state_reaches_the_subscriptions(self, store: Store) -> None:
        await store.create_entity(DEFAULT_TENANT, room(ROOM_1))
        await store.create_subscription(DEFAULT_TENANT, subscription())
        await store.modify_entities(
            DEFAULT_TENANT, [(ROOM_1, observe(30.0, minute(1))), (ROOM_1, observe(31.0, minute(2)))]
        )
        pending = await store.pending_notifications(
            DEFAULT_TENANT, "urn:ngsi-ld:Subscription:1", limit=10
        )
        seen = [p.changes[0].entity.instance(TEMPERATURE) for p in pending]
        assert [t.value for t in seen if t is not None] == [30.0, 31.0]

    async def test_the_query_index_holds_the_final_state(self, store: Store) -> None:
        await store.create_entity(DEFAULT_TENANT, room(ROOM_1))
        await store.modify_entities(
            DEFAULT_TENANT, [(ROOM_1, observe(30.0, minute(1))), (ROOM_1, observe(31.0, minute(2)))]
        )

        async def matching(q: str) -> list[str]:
            query = EntityQuery(q=parse_q(q, lambda name: VOCAB + name), limit=10)
            return [e.id for e in (await store.query_entities(DEFAULT_TENANT, query)).entities]

        assert await matching("temperature==31") == [ROOM_1]
        assert await matching("temperature==30") == []
        assert await matching("temperature==21.5") == []

    async def test_a_failing_change_leaves_every_entity_as_it_was(self, store: Store) -> None:
        await store.create_entity(DEFAULT_TENANT, room(ROOM_1))
        await store.create_entity(DEFAULT_TENANT, room(ROOM_2, temperature=5.0))
        with pytest.raises(BadRequestData, match="refuses"):
            await store.modify_entities(
                DEFAULT_TENANT,
                [(ROOM_1, observe(22.0, minute(1))), (ROOM_2, observe(6.0, minute(1))),
                 (ROOM_1, refuse)],
            )  # fmt: skip
        assert (await current(store, ROOM_1), await current(store, ROOM_2)) == (21.5, 5.0)
        assert await temperatures(store) == [21.5]

    async def test_a_missing_entity_fails_the_whole_sequence(self, store: Store) -> None:
        await store.create_entity(DEFAULT_TENANT, room(ROOM_1))
        with pytest.raises(ResourceNotFound, match="urn:ngsi-ld:Room:9"):
            await store.modify_entities(
                DEFAULT_TENANT,
                [(ROOM_1, observe(22.0, minute(1))), ("urn:ngsi-ld:Room:9", observe(1, T0))],
            )
        assert await current(store, ROOM_1) == 21.5
        with pytest.raises(NonexistentTenant):
            await store.modify_entities("nowhere", [(ROOM_1, observe(22.0, minute(1)))])

    async def test_a_change_can_delete_and_nothing_follows_a_deletion(self, store: Store) -> None:
        await store.create_entity(DEFAULT_TENANT, room(ROOM_1))
        await store.create_entity(DEFAULT_TENANT, room(ROOM_2))
        with pytest.raises(ResourceNotFound):
            await store.modify_entities(
                DEFAULT_TENANT,
                [(ROOM_2, lambda e: (None, "gone")), (ROOM_2, observe(1.0, minute(1)))],
            )
        assert await current(store, ROOM_2) == 21.5
        results = await store.modify_entities(
            DEFAULT_TENANT,
            [(ROOM_2, observe(3.0, minute(1))), (ROOM_2, lambda e: (None, "gone")),
             (ROOM_1, lambda e: (e, "kept"))],
        )  # fmt: skip
        assert results == [21.5, "gone", "kept"]
        assert await store.get_entity(DEFAULT_TENANT, ROOM_2) is None
        assert await store.count_entities(DEFAULT_TENANT) == 1
        assert await store.get_entity(DEFAULT_TENANT, ROOM_1) == room(ROOM_1)

    async def test_a_change_can_retype_an_entity(self, store: Store) -> None:
        await store.create_entity(DEFAULT_TENANT, room(ROOM_1))
        office = VOCAB + "Office"
        await store.modify_entities(
            DEFAULT_TENANT,
            [(ROOM_1, lambda e: (replace(e, types=(ROOM, office)), None)),
             (ROOM_1, observe(25.0, minute(1)))],
        )  # fmt: skip
        stored = await store.get_entity(DEFAULT_TENANT, ROOM_1)
        assert stored is not None and stored.types == (ROOM, office)
        assert office in await store.entity_types(DEFAULT_TENANT)

    # -- a device report with its readings ------------------------------------------------------

    async def _device_and_target(self, store: Store) -> devices.Device:
        registered = device(entity_id=ROOM_1)
        await store.create_device(registered)
        await store.create_entity(DEFAULT_TENANT, room(ROOM_1))
        return registered

    async def test_a_report_and_its_readings_are_stored_together(self, store: Store) -> None:
        await self._device_and_target(store)
        report = devices.DeviceReport(at=minute(3), battery=80.0, rssi=-100.0)
        outcome = await store.ingest_device_report(
            DEFAULT_TENANT,
            "aq-1",
            report,
            "up-1",
            [(ROOM_1, observe(22.0, minute(1))), (ROOM_1, observe(23.0, minute(2)))],
        )
        assert outcome == devices.ReportOutcome(duplicate=False, previous_state="unknown")
        assert await temperatures(store) == [21.5, 22.0, 23.0]
        status = await store.get_device_status(DEFAULT_TENANT, "aq-1")
        assert status is not None
        assert (status.state, status.last_seen, status.battery, status.rssi, status.messages) == (
            "online", minute(3), 80.0, -100.0, 1)  # fmt: skip

    async def test_a_redelivered_message_applies_nothing(self, store: Store) -> None:
        await self._device_and_target(store)
        report = devices.DeviceReport(at=minute(3))
        updates = [(ROOM_1, observe(22.0, minute(1)))]
        await store.ingest_device_report(DEFAULT_TENANT, "aq-1", report, "up-1", updates)
        again = await store.ingest_device_report(
            DEFAULT_TENANT, "aq-1", report, "up-1", [(ROOM_1, observe(99.0, minute(2)))]
        )
        assert again == devices.ReportOutcome(duplicate=True, previous_state="online")
        assert await current(store) == 22.0
        assert await temperatures(store) == [21.5, 22.0]
        status = await store.get_device_status(DEFAULT_TENANT, "aq-1")
        assert status is not None and (status.messages, status.duplicates) == (1, 1)

    async def test_a_failed_report_claims_nothing(self, store: Store) -> None:
        await store.create_device(device(entity_id=ROOM_1))
        report = devices.DeviceReport(at=minute(3), battery=50.0)
        updates = [(ROOM_1, observe(22.0, minute(1)))]
        with pytest.raises(ResourceNotFound):
            await store.ingest_device_report(DEFAULT_TENANT, "aq-1", report, "up-1", updates)
        status = await store.get_device_status(DEFAULT_TENANT, "aq-1")
        assert status is not None
        assert (status.state, status.messages, status.battery) == ("unknown", 0, None)
        await store.create_entity(DEFAULT_TENANT, room(ROOM_1))
        with pytest.raises(BadRequestData):
            await store.ingest_device_report(
                DEFAULT_TENANT, "aq-1", report, "up-1", [*updates, (ROOM_1, refuse)]
            )
        assert await temperatures(store) == [21.5]
        retried = await store.ingest_device_report(DEFAULT_TENANT, "aq-1", report, "up-1", updates)
        assert not retried.duplicate
        assert await current(store) == 22.0

    async def test_a_report_without_readings_still_counts(self, store: Store) -> None:
        await self._device_and_target(store)
        outcome = await store.ingest_device_report(
            DEFAULT_TENANT, "aq-1", devices.DeviceReport(at=T0, battery=12.0), None, []
        )
        assert not outcome.duplicate
        status = await store.get_device_status(DEFAULT_TENANT, "aq-1")
        assert status is not None and (status.messages, status.battery) == (1, 12.0)
        assert await store.get_entity(DEFAULT_TENANT, ROOM_1) == room(ROOM_1)

    async def test_messages_taken_together_succeed_or_fail_each_on_its_own(
        self, store: Store
    ) -> None:
        await self._device_and_target(store)
        await store.create_device(device("aq-2", entity_id=ROOM_2, dev_eui="70B3D57ED0000002"))

        def message(device_id: str, n: int, *updates: Any, up: str | None = None) -> Any:
            report = devices.DeviceReport(at=minute(n), battery=float(n))
            return devices.DeviceMessage(DEFAULT_TENANT, device_id, report, up, updates)

        results = await store.ingest_device_messages(
            [
                message("aq-1", 1, (ROOM_1, observe(22.0, minute(1))), up="up-1"),
                message("aq-2", 2, (ROOM_2, observe(5.0, minute(2)))),  # ROOM_2 does not exist
                message("aq-1", 3, (ROOM_1, observe(23.0, minute(3))), (ROOM_1, refuse)),
                message("aq-1", 4, (ROOM_1, observe(24.0, minute(4))), up="up-1"),
                message("aq-1", 5, (ROOM_1, observe(25.0, minute(5))), up="up-5"),
            ]
        )
        assert results[0] == devices.ReportOutcome(duplicate=False, previous_state="unknown")
        assert isinstance(results[1], ResourceNotFound)
        assert isinstance(results[2], BadRequestData)
        assert results[3] == devices.ReportOutcome(duplicate=True, previous_state="online")
        assert results[4] == devices.ReportOutcome(duplicate=False, previous_state="online")
        assert await current(store) == 25.0
        one = await store.get_device_status(DEFAULT_TENANT, "aq-1")
        two = await store.get_device_status(DEFAULT_TENANT, "aq-2")
        assert one is not None and (one.messages, one.duplicates, one.battery) == (2, 1, 5.0)
        assert two is not None and (two.state, two.messages) == ("unknown", 0)
        assert await store.ingest_device_messages([]) == []
        assert await temperatures(store) == [21.5, 22.0, 25.0]

    async def test_messages_without_ids_taken_together_count_as_one_by_one(
        self, store: Store
    ) -> None:
        await self._device_and_target(store)
        await store.create_device(device("aq-2", entity_id=ROOM_2, dev_eui="70B3D57ED0000002"))

        def message(device_id: str, n: int, battery: float | None, *updates: Any) -> Any:
            report = devices.DeviceReport(at=minute(n), battery=battery, rssi=-n)
            up = f"up-{n}" if n % 3 == 0 else None  # every third one claims an id
            return devices.DeviceMessage(DEFAULT_TENANT, device_id, report, up, updates)

        results = await store.ingest_device_messages(
            [
                message("aq-1", 1, 10.0, (ROOM_1, observe(22.0, minute(1)))),
                message("aq-1", 2, None, (ROOM_1, observe(23.0, minute(2))), (ROOM_1, refuse)),
                message("aq-1", 3, 30.0, (ROOM_1, observe(24.0, minute(3)))),
                message("aq-1", 4, None, (ROOM_1, observe(25.0, minute(4)))),
                message("aq-2", 5, 50.0, (ROOM_2, observe(5.0, minute(5)))),  # no ROOM_2
                message("aq-1", 7, None),
                message("ghost", 8, 80.0),
            ]
        )
        online = devices.ReportOutcome(duplicate=False, previous_state="online")
        assert results[0] == devices.ReportOutcome(duplicate=False, previous_state="unknown")
        assert isinstance(results[1], BadRequestData)
        assert results[2:4] == [online, online]
        assert isinstance(results[4], ResourceNotFound)
        assert results[5] == online
        assert results[6] == devices.ReportOutcome(duplicate=False, previous_state="unknown")
        assert await temperatures(store) == [21.5, 22.0, 24.0, 25.0]
        one = await store.get_device_status(DEFAULT_TENANT, "aq-1")
        assert one is not None
        assert (one.state, one.state_since, one.last_seen) == ("online", minute(1), minute(7))
        assert (one.messages, one.battery, one.rssi) == (4, 30.0, -7)
        two = await store.get_device_status(DEFAULT_TENANT, "aq-2")
        assert two is not None and (two.state, two.messages, two.battery) == ("unknown", 0, None)
