"""Batch writes on PostgreSQL: the whole batch in one set-based transaction leaves exactly the rows
the entity-by-entity way (a savepoint and the change hooks per entity) leaves, and a batch the
database refuses as a whole is written again entity by entity, only the bad entity failing."""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import psycopg
import pytest

from burgo.ngsild.errors import AlreadyExists, BadRequestData, ResourceNotFound
from burgo.ngsild.model import Attribute, AttrKind, Entity
from burgo.store.base import DEFAULT_TENANT
from burgo.store.batch import EntityWrite, WriteOutcome
from burgo.store.postgres import PostgresStore
from tests.services import PostgresServer
from tests.store.contract import (
    T1,
    TEMPERATURE,
    VOCAB,
    every_kind,
    prop,
    room,
    set_temperature,
    subscription,
)

pytestmark = pytest.mark.anyio
PLACE = VOCAB + "location"
LOG = "burgo.store.postgres.batch"
# What each table holds, without the keys the database numbers itself (series, shapes, seq of
# the outbox), and the type counts summed over the sessions that wrote them.
DUMPS = {
    "tenants": "SELECT name, created_at FROM tenants",
    "entities": "SELECT tenant, id, types, created_at, modified_at, doc::text FROM entities",
    "values": "SELECT tenant, entity_id, attr, kind, num, txt FROM entity_attr_values",
    "geo": "SELECT tenant, entity_id, name, geometry::text, bounds::text, lon, lat FROM entity_geo",
    "type ids": "SELECT tenant, type, id FROM entity_type_ids",
    "type counts": "SELECT tenant, types, sum(n) FROM entity_type_counts GROUP BY 1, 2 "
    "HAVING sum(n) <> 0",
    "history entities": "SELECT * FROM history_entities",
    "series": "SELECT tenant, entity_id, attr, dataset_id, kind, mixed FROM history_series",
    "history": "SELECT h.tenant, s.entity_id, s.attr, s.dataset_id, h.t, h.seq, h.whole, h.num, "
    "p.doc, CASE WHEN p.id IS NULL THEN h.shape END, h.doc, h.rec FROM history h "
    "JOIN history_series s ON s.id = h.series LEFT JOIN history_shapes p ON p.id = h.shape",
    "rollups": "SELECT r.tenant, s.entity_id, s.attr, s.dataset_id, r.grain, r.bucket, r.n, "
    "r.total, r.low, r.high, r.sumsq, r.whole FROM history_rollups r "
    "JOIN history_series s ON s.id = r.series",
    "outbox": "SELECT tenant, subscription_id, changes::text, created_at FROM notification_outbox "
    "ORDER BY seq",
}


class FixedClock:
    """The same time for both stores (a deletion is recorded at the store's time)."""

    def now(self) -> datetime:
        return datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def database(server: PostgresServer, name: str) -> str:
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return server.url(name)


@pytest.fixture
async def stores(postgres_server: PostgresServer) -> AsyncIterator[list[PostgresStore]]:
    """Two stores opened on two new databases of the cluster, on a fixed clock."""
    opened = [
        PostgresStore(database(postgres_server, name), clock=FixedClock(), max_connections=2)
        for name in ("burgo_batch_together", "burgo_batch_alone")
    ]
    for store in opened:
        await store.open()
    yield opened
    for store in opened:
        await store.close()


def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row the entity writes leave, table by table, in a stable order."""
    with psycopg.connect(url) as conn:
        found = {name: conn.execute(query).fetchall() for name, query in DUMPS.items()}
    # Sorted but the outbox, which stays in the order its notifications are sent.
    return {
        name: rows if name == "outbox" else sorted(rows, key=repr) for name, rows in found.items()
    }


def placed(entity: Entity, lon: float, at: str = T1) -> Entity:
    """The entity with a Point location (a GeoProperty) at ``lon``."""
    point = Attribute(AttrKind.GEO_PROPERTY, {"type": "Point", "coordinates": [lon, 40.1]})
    return entity.with_attrs({**entity.attrs, PLACE: (point,)}, at)


def refuse(current: Entity) -> tuple[Entity, None]:
    raise BadRequestData("refused")


def seen(outcomes: list[WriteOutcome]) -> list[tuple[Any, ...]]:
    return [
        (o.entity_id, o.created, o.result, type(o.error).__name__ if o.error else None)
        for o in outcomes
    ]


async def test_a_mixed_batch_leaves_the_rows_of_the_entity_by_entity_way(
    stores: list[PostgresStore], caplog: pytest.LogCaptureFixture
) -> None:
    together, alone = stores
    reading = Attribute(AttrKind.PROPERTY, 5, observed_at=T1, modified_at=T1)
    nul_inside = {VOCAB + "j": (Attribute(AttrKind.JSON_PROPERTY, {"a": "x\x00"}),)}
    retyped = placed(replace(room("urn:ngsi-ld:Room:2"), types=(VOCAB + "Office",)), 2.0)
    writes = [
        EntityWrite(every_kind().id, create=every_kind()),
        EntityWrite(room().id, create=room(temperature=9.0)),  # exists: AlreadyExists
        EntityWrite("urn:ngsi-ld:Room:2", change=set_temperature(30.0)),
        EntityWrite("urn:ngsi-ld:Room:2", change=lambda e: (retyped, "retyped")),  # again
        EntityWrite("urn:ngsi-ld:Room:3", change=lambda e: (None, "gone")),
        EntityWrite("urn:ngsi-ld:Room:3", create=placed(room("urn:ngsi-ld:Room:3"), 3.0)),
        EntityWrite("urn:ngsi-ld:Room:404", change=set_temperature(1.0)),  # ResourceNotFound
        EntityWrite("urn:ngsi-ld:Room:4", change=refuse),
        EntityWrite("urn:ngsi-ld:Room:4", change=lambda e: (e, "same")),
        EntityWrite("urn:ngsi-ld:Room:5", create=room("urn:ngsi-ld:Room:5")),
        EntityWrite("urn:ngsi-ld:Room:5", change=lambda e: (None, "made and gone")),
        EntityWrite(
            "urn:ngsi-ld:Room:6",
            change=lambda e: (e.with_attrs({**e.attrs, VOCAB + "n": (reading,)}, T1), None),
        ),
        EntityWrite("urn:ngsi-ld:Room:7", change=lambda e: (placed(e, 7.5), None)),
        # A NUL inside a JSON object is stored (no text column holds it): no fallback.
        EntityWrite("urn:ngsi-ld:Room:8", create=room("urn:ngsi-ld:Room:8", more=nul_inside)),
    ]
    found = []
    for store in stores:
        await store.create_subscription(DEFAULT_TENANT, subscription())
        await store.write_entities(
            DEFAULT_TENANT,
            [
                EntityWrite(e.id, create=e)
                for e in [
                    room(),
                    placed(room("urn:ngsi-ld:Room:2"), 1.0, "2024-05-01T10:00:00.000Z"),
                    room("urn:ngsi-ld:Room:3"),
                    room("urn:ngsi-ld:Room:4"),
                    # A reading observed at T1, changed by the batch at the same time.
                    room("urn:ngsi-ld:Room:6", more={VOCAB + "n": (replace(reading, value=4),)}),
                    placed(room("urn:ngsi-ld:Room:7"), 7.0, "2024-05-01T10:00:00.000Z"),
                ]
            ],
        )
    with caplog.at_level(logging.DEBUG, logger=LOG):
        found.append(seen(await together.write_entities(DEFAULT_TENANT, writes)))
    assert not caplog.records, "a batch the database accepts is written in one go"
    found.append(seen(await alone._write_alone(DEFAULT_TENANT, writes)))
    # A tenant made by an entity the same batch deletes again.
    brief = [
        EntityWrite(room().id, create=room()),
        EntityWrite(room().id, change=lambda e: (None, None)),
    ]
    await together.write_entities("fundao", brief)
    await alone._write_alone("fundao", brief)

    assert found[0] == found[1]
    assert [error for *_, error in found[0]] == [
        None, AlreadyExists.__name__, None, None, None, None, ResourceNotFound.__name__,
        BadRequestData.__name__, None, None, None, None, None, None,
    ]  # fmt: skip
    assert [result for _, _, result, _ in found[0]][2:6] == [21.5, "retyped", "gone", None]
    rows = dump(together.url)
    assert rows == dump(alone.url)
    assert rows["history"] and rows["rollups"] and rows["geo"] and rows["outbox"]
    assert await together.get_entity(DEFAULT_TENANT, "urn:ngsi-ld:Room:2") == retyped
    assert await together.get_entity(DEFAULT_TENANT, "urn:ngsi-ld:Room:5") is None


async def test_a_batch_the_database_refuses_is_written_again_entity_by_entity(
    stores: list[PostgresStore], caplog: pytest.LogCaptureFixture
) -> None:
    store = stores[0]
    await store.create_entity(DEFAULT_TENANT, room(temperature=1.0))
    # A text PostgreSQL cannot hold: known only once the database reads it.
    nul = {TEMPERATURE: prop("12\x00", unit_code="CEL")}
    bad = Entity("urn:ngsi-ld:Room:bad", room().types, MappingProxyType(nul), created_at=T1)
    good = [placed(room(f"urn:ngsi-ld:Room:{n}", temperature=float(n)), float(n)) for n in (2, 3)]
    writes = [
        EntityWrite(good[0].id, create=good[0]),
        EntityWrite(bad.id, create=bad),
        EntityWrite(room().id, change=set_temperature(7.0)),
        EntityWrite(room().id, create=room()),
        EntityWrite(good[1].id, create=good[1]),
    ]
    with caplog.at_level(logging.DEBUG, logger=LOG):
        outcomes = await store.write_entities(DEFAULT_TENANT, writes)
    assert [r.message for r in caplog.records] == [
        "A batch of 5 writes is written entity by entity: "
        "The database cannot store this value (text with a NUL character \\u0000)"
    ]
    assert seen(outcomes) == [
        (good[0].id, True, None, None),
        (bad.id, False, None, BadRequestData.__name__),
        (room().id, False, 1.0, None),
        (room().id, False, None, AlreadyExists.__name__),
        (good[1].id, True, None, None),
    ]
    assert await store.get_entity(DEFAULT_TENANT, bad.id) is None
    for entity in good:
        assert await store.get_entity(DEFAULT_TENANT, entity.id) == entity
    changed = await store.get_entity(DEFAULT_TENANT, room().id)
    assert changed is not None and changed.instance(TEMPERATURE).value == 7.0  # type: ignore[union-attr]
    rows = dump(store.url)
    assert {row[1] for row in rows["history entities"]} == {room().id, *(e.id for e in good)}
    assert {row[1] for row in rows["geo"]} == {e.id for e in good}
    assert bad.id not in {row[1] for row in rows["values"]}


def random_write(rng: random.Random, step: int) -> EntityWrite:
    """One write of a small pool of ids: a create, a change, a retype, a delete, a refusal or
    nothing, at one of a few instants (so that readings meet at the same time)."""
    entity_id = f"urn:ngsi-ld:Room:{rng.randrange(5)}"
    at = f"2024-05-01T1{rng.randrange(3)}:00:00.000Z"
    value = rng.choice([1, 2.5, 2.5, "warm", True])
    kind = rng.randrange(7)
    if kind == 0:
        made = replace(room(entity_id, temperature=step), created_at=at, modified_at=at)
        return EntityWrite(entity_id, create=placed(made, rng.choice([1.0, 2.0]), at))
    if kind == 1:
        return EntityWrite(entity_id, change=set_temperature(value))
    if kind == 2:
        reading = Attribute(AttrKind.PROPERTY, value, observed_at=at, modified_at=at)
        more = {VOCAB + "n": (reading,)}
        return EntityWrite(entity_id, change=lambda e: (e.with_attrs({**e.attrs, **more}, at), 0))
    if kind == 3:
        types = rng.choice([(VOCAB + "Office",), (VOCAB + "Room", VOCAB + "Office")])
        return EntityWrite(entity_id, change=lambda e: (replace(e, types=types), None))
    if kind == 4:
        return EntityWrite(entity_id, change=lambda e: (None, None))
    if kind == 5:
        return EntityWrite(entity_id, change=refuse)
    return EntityWrite(entity_id, create=room(entity_id), change=lambda e: (e, None))


async def test_random_batches_leave_the_rows_of_the_entity_by_entity_way(
    stores: list[PostgresStore], caplog: pytest.LogCaptureFixture
) -> None:
    together, alone = stores
    rng = random.Random(20261202)
    for store in stores:
        await store.create_subscription(DEFAULT_TENANT, subscription())
    for round_ in range(8):
        writes = [random_write(rng, 10 * round_ + n) for n in range(12)]
        with caplog.at_level(logging.DEBUG, logger=LOG):
            expected = seen(await alone._write_alone(DEFAULT_TENANT, writes))
            assert seen(await together.write_entities(DEFAULT_TENANT, writes)) == expected
        assert not caplog.records
        assert dump(together.url) == dump(alone.url), f"round {round_}"
