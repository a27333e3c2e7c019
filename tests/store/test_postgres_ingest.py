"""Device messages taken together on PostgreSQL: what the contract (test_contract.py) does not
show: a message the database itself refuses, two workers taking the same devices' messages at
once, the history of a batch recorded set by set, and the notifications a batch queues."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from burgo.ngsild.duration import DAY, HOUR, Duration
from burgo.ngsild.errors import BadRequestData
from burgo.ngsild.model import Entity
from burgo.ngsild.temporal import Aggregation, TemporalQuery, to_millis
from burgo.ngsild.times import format_datetime, parse_datetime
from burgo.store.base import DEFAULT_TENANT, devices
from burgo.store.postgres import PostgresStore
from burgo.store.temporal import HistorySelection
from tests.store.contract import T0, TEMPERATURE, VOCAB, device, prop, room, subscription
from tests.store.contract_changes import (
    ROOM_1,
    ROOM_2,
    current,
    minute,
    observe,
    refuse,
    temperatures,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
async def pg_store(empty_postgres: str) -> AsyncIterator[PostgresStore]:
    """An opened PostgresStore on the emptied test database, with two devices feeding two
    rooms."""
    opened = PostgresStore(empty_postgres, max_connections=4)
    await opened.open()
    await opened.create_device(device("aq-1", entity_id=ROOM_1))
    await opened.create_device(device("aq-2", entity_id=ROOM_2, dev_eui="70B3D57ED0000002"))
    await opened.create_entity(DEFAULT_TENANT, room(ROOM_1))
    await opened.create_entity(DEFAULT_TENANT, room(ROOM_2))
    yield opened
    await opened.close()


def message(device_id: str, n: int, *updates: Any, up: str | None = None) -> Any:
    """A message of ``device_id`` at minute ``n``."""
    report = devices.DeviceReport(at=minute(n), battery=float(n))
    return devices.DeviceMessage(DEFAULT_TENANT, device_id, report, up, updates)


def nul(current: Entity) -> tuple[Entity, Any]:
    """A change to a value PostgreSQL cannot hold (text with a NUL character)."""
    return current.with_attrs({TEMPERATURE: prop("12\x00")}, minute(9)), None


async def test_a_message_the_database_refuses_fails_alone(pg_store: PostgresStore) -> None:
    results = await pg_store.ingest_device_messages(
        [
            message("aq-1", 1, (ROOM_1, observe(22.0, minute(1))), up="up-1"),
            message("aq-2", 2, (ROOM_2, observe(5.0, minute(2))), up="up-2"),
            message("aq-2", 3, (ROOM_2, nul), up="up-3"),
        ]
    )
    online = devices.ReportOutcome(duplicate=False, previous_state="online")
    assert results[:2] == [devices.ReportOutcome(duplicate=False, previous_state="unknown")] * 2
    assert isinstance(results[2], BadRequestData)
    assert await temperatures(pg_store) == [21.5, 22.0]
    assert await current(pg_store, ROOM_2) == 5.0
    two = await pg_store.get_device_status(DEFAULT_TENANT, "aq-2")
    assert two is not None and (two.messages, two.battery) == (1, 2.0)
    # The refused message left no claim: its redelivery, corrected, is stored.
    again = await pg_store.ingest_device_messages(
        [message("aq-2", 3, (ROOM_2, observe(6.0, minute(4))), up="up-3")]
    )
    assert again == [online]
    assert await current(pg_store, ROOM_2) == 6.0


async def test_two_workers_take_the_same_devices_messages_at_once(
    pg_store: PostgresStore,
) -> None:
    """Two stores on one database (two workers) lock the devices and entities they share in
    the same order (no deadlock), and an uplink both receive is stored once."""
    other = PostgresStore(pg_store.url, max_connections=2)
    await other.open()
    try:
        batches = []
        for n in range(1, 9):
            first, second = ("aq-1", ROOM_1), ("aq-2", ROOM_2)
            if n % 2:
                first, second = second, first
            batches.append(
                [
                    message(first[0], n, (first[1], observe(float(n), minute(n)))),
                    message(second[0], n, (second[1], observe(float(n), minute(n))), up=f"u{n}"),
                    message("aq-1", n, (ROOM_1, observe(float(n), minute(n))), up="shared"),
                ]
            )
        outcomes = await asyncio.gather(
            *(
                (pg_store if n % 2 else other).ingest_device_messages(batch)
                for n, batch in enumerate(batches)
            )
        )
        assert not [r for batch in outcomes for r in batch if isinstance(r, Exception)]
        shared = [batch[2].duplicate for batch in outcomes]  # type: ignore[union-attr]
        assert shared.count(False) == 1, "the uplink both workers received is stored once"
        one = await pg_store.get_device_status(DEFAULT_TENANT, "aq-1")
        two = await pg_store.get_device_status(DEFAULT_TENANT, "aq-2")
        assert one is not None and two is not None
        assert (one.messages, one.duplicates, two.messages, two.duplicates) == (9, 7, 8, 0)
        assert len(await temperatures(pg_store, ROOM_2)) == 1 + 8
    finally:
        await other.close()


async def test_a_batch_records_history_and_rollups_as_writes_one_by_one_do(
    pg_store: PostgresStore,
) -> None:
    """Many instances in one transaction are recorded set by set (each rollup bucket once):
    the same instances, in the same order, and the same aggregates as when each is written
    on its own."""

    def later(minutes: int) -> str:
        return format_datetime(parse_datetime(minute(0)) + timedelta(minutes=minutes))

    readings = [(1.5, 1), (2.0, 1), (7.25, 2), ("high", 3), (4.0, 61), (-3.0, 62), (9.0, 62)]
    readings += [(float(n), 30 + n) for n in range(8)] + [(5.0, 24 * 60 + 5)]
    batch = [
        message("aq-1", n, *((ROOM_1, observe(value, later(at))) for value, at in readings[n::3]))
        for n in range(3)
    ]
    assert not [r for r in await pg_store.ingest_device_messages(batch) if isinstance(r, Exception)]
    for n in range(3):
        for value, at in readings[n::3]:
            await pg_store.modify_entity(DEFAULT_TENANT, ROOM_2, observe(value, later(at)))
    assert await temperatures(pg_store) == await temperatures(pg_store, ROOM_2)
    assert len(await temperatures(pg_store)) == 1 + len(readings)
    for period in (Duration(0, HOUR), Duration(0, DAY)):
        methods = ("totalCount", "sum", "min", "max", "avg", "stddev")
        aggregated = [
            (await pg_store.query_history(
                DEFAULT_TENANT, HistorySelection(ids=(entity_id,)),
                TemporalQuery(start=to_millis(parse_datetime(T0))), max_instances=100,
                aggregation=Aggregation(methods, period),
            )).entities[0].aggregated[TEMPERATURE][0].values
            for entity_id in (ROOM_1, ROOM_2)
        ]  # fmt: skip
        assert aggregated[0] == aggregated[1]
        assert sum(count for count, _, _ in aggregated[0]["totalCount"]) == 1 + len(readings)


async def test_messages_taken_together_queue_their_notifications(pg_store: PostgresStore) -> None:
    await pg_store.create_subscription(DEFAULT_TENANT, subscription())
    for nul_too in (False, True):  # with a message the database refuses: taken one by one
        first = 1 + 10 * nul_too
        batch = [
            message("aq-1", first, (ROOM_1, observe(first, minute(first))), up=f"up-{first}"),
            message("aq-2", first + 1, (ROOM_2, refuse)),
            message("aq-1", first + 2, (ROOM_1, observe(first + 2, minute(first + 2)))),
            *([message("aq-2", first + 3, (ROOM_2, nul))] if nul_too else []),
        ]
        await pg_store.ingest_device_messages(batch)
        lanes, high = await pg_store.outbox_lanes(0)
        # Taken one by one, the refused message's notification took a seq before it was
        # rolled back with its savepoint.
        assert pg_store.outbox_written() == high or (nul_too and pg_store.outbox_written() > high)
    [lane] = lanes
    pending = await pg_store.pending_notifications(DEFAULT_TENANT, lane.subscription_id, limit=9)
    temperatures = [p.changes[0].entity.instance(TEMPERATURE) for p in pending]
    assert [t.value for t in temperatures if t is not None] == [1, 3, 11, 13]


async def test_a_document_holding_a_nul_inside_an_object_is_stored(pg_store: PostgresStore) -> None:
    """PostgreSQL's json holds a \\u0000 that text cannot: a value with one deep inside an
    object is stored by a device message and by a PATCH, as it was one write at a time."""
    value = prop({"note": "12\x00"})

    def deep(current: Entity) -> tuple[Entity, Any]:
        return current.with_attrs({**current.attrs, VOCAB + "note": value}, minute(5)), None

    [outcome] = await pg_store.ingest_device_messages([message("aq-1", 5, (ROOM_1, deep))])
    assert not isinstance(outcome, Exception)
    await pg_store.modify_entity(DEFAULT_TENANT, ROOM_2, deep)
    for entity_id in (ROOM_1, ROOM_2):
        stored = await pg_store.get_entity(DEFAULT_TENANT, entity_id)
        assert stored is not None and stored.attrs[VOCAB + "note"] == value
