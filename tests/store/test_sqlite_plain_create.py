"""Batch creates of plain entities on SQLite: the rows their set-based hooks write (history,
q index, type and geo indexes) are the rows the Python hooks write for the same entities created
one by one, byte for byte."""

from __future__ import annotations

import random
import sqlite3
import struct
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from burgo.ngsild.model import Attribute, AttrKind, Entity
from burgo.store.base import DEFAULT_TENANT
from burgo.store.batch import EntityWrite
from burgo.store.sqlite import SqliteStore
from burgo.store.sqlite.plain import is_plain
from tests.api.entity_checks import ManualClock

pytestmark = pytest.mark.anyio

VOCAB = "https://example.org/vocab/"
TYPES = (VOCAB + "Sensor", VOCAB + "Spot", VOCAB + "Bin")
NOW = "2026-12-02T10:00:00.000Z"
OBSERVED = (
    "2024-05-01T10:00:00.000Z",
    "2024-05-01T10:59:59.999Z",
    "1969-12-31T23:59:59.500Z",
    "2026-12-02T09:30:00.250Z",
)
UNITS = ("CEL", "GQ", 'G"Q\\', "ünit")
TEXTS = ("free", "ok", 'quote " and \\ back', "tab\tnew\nline\x01", "ção 😀", "", "12")


def _float(rng: random.Random) -> float:
    if rng.random() < 0.3:
        value: float = struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0]
        if value == value and abs(value) != float("inf"):
            return value
    return rng.choice([rng.uniform(-180, 180), round(rng.uniform(-1e3, 1e3), rng.randint(0, 6))])


def _plain_attribute(rng: random.Random, dataset_id: str | None) -> Attribute:
    observed = rng.choice((None, *OBSERVED))
    unit = rng.choice((None, None, *UNITS))
    choice = rng.randrange(9)
    kind, value = AttrKind.PROPERTY, Any
    if choice == 0:
        value = rng.randint(-(2**40), 2**40)
    elif choice == 1:
        value = _float(rng)
    elif choice == 2:
        value = rng.choice(TEXTS)
    elif choice == 3:
        value = rng.choice((True, False))
    elif choice == 4:
        value = [rng.choice(TEXTS), rng.randint(0, 9), _float(rng), True, [1, "x"], {"a": 1}, 1.0]
    elif choice == 5:
        value = {"@type": "DateTime", "@value": rng.choice(OBSERVED)}
    elif choice == 6:
        kind, value, unit = AttrKind.RELATIONSHIP, f"urn:ngsi-ld:Thing:{rng.randrange(50)}", None
    elif choice == 7:
        coordinates = [_float(rng) % 180, _float(rng) % 90][: rng.choice((2, 2, 3))]
        if len(coordinates) == 2 and rng.random() < 0.3:
            coordinates = [rng.randint(-180, 180), rng.randint(-90, 90)]
        kind, value = AttrKind.GEO_PROPERTY, {"type": "Point", "coordinates": coordinates}
    else:
        value = {"nested": {"deep": [rng.choice(TEXTS)]}, "n": rng.randint(0, 5)}
    return Attribute(kind, value, dataset_id, observed, unit, None, created_at=NOW, modified_at=NOW)


def _odd_attribute(rng: random.Random) -> Attribute:
    """An instance the set-based hooks leave to the Python ones."""
    sub = MappingProxyType({VOCAB + "accuracy": Attribute(AttrKind.PROPERTY, 0.5)})
    return rng.choice(
        [
            Attribute(AttrKind.PROPERTY, 21.5, unit_code="CEL", sub=sub),
            Attribute(AttrKind.LANGUAGE_PROPERTY, {"en": "bin", "pt": ["contentor", "lixo"]}),
            Attribute(AttrKind.VOCAB_PROPERTY, VOCAB + "organic"),
            Attribute(AttrKind.RELATIONSHIP, "urn:ngsi-ld:Thing:1", object_type=VOCAB + "Thing"),
            Attribute(
                AttrKind.GEO_PROPERTY,
                {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]},
            ),
            Attribute(AttrKind.PROPERTY, 3, observed_at="2024-05-01T10:00:00Z"),
        ]
    ).stamped(NOW)


def entities(count: int, seed: int, *, odd: float = 0.0) -> list[Entity]:
    """``count`` entities of random shapes; about ``odd`` of them with an instance the
    set-based hooks do not cover."""
    rng = random.Random(seed)
    made = []
    for number in range(count):
        attrs: dict[str, tuple[Attribute, ...]] = {}
        for name in rng.sample(range(12), rng.randint(0, 9)):
            datasets = [None] if rng.random() < 0.8 else [None, "urn:ds:a", "urn:ds:b"][1:]
            attrs[f"{VOCAB}a{name}"] = tuple(_plain_attribute(rng, d) for d in datasets)
        if rng.random() < odd:
            attrs[VOCAB + "odd"] = (_odd_attribute(rng),)
        types = tuple(rng.sample(TYPES, rng.randint(1, 2)))
        entity_id = f"urn:ngsi-ld:Thing:{seed}:{number}"
        made.append(
            Entity(entity_id, types, MappingProxyType(attrs), created_at=NOW, modified_at=NOW)
        )
    return made


def dump(path: Path, *, keyed: bool) -> dict[str, list[Any]]:
    """Every row the entity writes and their hooks leave, sorted; ``keyed``: with series and geo
    rows named by their keys instead of their ids (which depend on the order of writing)."""
    series = "(SELECT tenant || ' ' || entity_id || ' ' || attr || ' ' || dataset_id "
    series += "FROM history_series AS s WHERE s.id = {})"
    queries = {
        "entities": "SELECT pk, tenant, id, types, created_at, modified_at, doc FROM entities",
        "entity_types": "SELECT * FROM entity_types",
        "entity_type_ids": "SELECT * FROM entity_type_ids",
        "attr_values": "SELECT entity_pk, attr, kind, num, typeof(num), txt FROM attr_values",
        "entity_geo": "SELECT g.tenant, g.entity_id, g.entity_pk, g.name, g.geometry, "
        "b.min_x, b.max_x, b.min_y, b.max_y, "
        + ("NULL" if keyed else "g.id")
        + " FROM entity_geo AS g JOIN entity_geo_box AS b ON b.id = g.id",
        "history_entities": "SELECT * FROM history_entities",
        "history_series": "SELECT "
        + ("NULL" if keyed else "id")
        + ", tenant, entity_id, attr, dataset_id, kind, mixed FROM history_series",
        "history": "SELECT "
        + (series.format("h.series") if keyed else "h.series")
        + ", t, seq, num, typeof(num), (SELECT doc FROM history_shapes WHERE id = h.shape), "
        "h.shape < 0, h.doc, h.rec FROM history AS h",
        "history_rollups": "SELECT "
        + (series.format("r.series") if keyed else "r.series")
        + ", grain, bucket, n, total, low, typeof(low), high, sumsq FROM history_rollups AS r",
        "history_shapes": "SELECT " + ("NULL" if keyed else "id") + ", doc FROM history_shapes",
    }
    with sqlite3.connect(path) as conn:
        return {
            table: sorted(conn.execute(sql).fetchall(), key=repr) for table, sql in queries.items()
        }


def count_forms(store: SqliteStore) -> list[int]:
    """How many plain entities the store's set-based forms take (one count per call)."""
    taken: list[int] = []
    for hook, form in list(store._plain_forms.items()):

        def counted(conn: sqlite3.Connection, keys: str, changes: Any, form: Any = form) -> None:
            taken.append(len(changes))
            form(conn, keys, changes)

        store._plain_forms[hook] = counted
    return taken


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[SqliteStore, SqliteStore]]:
    """Two opened stores on new files: one for batches, one for single creates."""
    clock = ManualClock(datetime(2026, 12, 2, 10, 30, tzinfo=UTC))
    batch = SqliteStore(tmp_path / "batch.db", synchronous="NORMAL", clock=clock)
    single = SqliteStore(tmp_path / "single.db", synchronous="NORMAL", clock=clock)
    await batch.open()
    await single.open()
    yield batch, single
    await batch.close()
    await single.close()


async def _create_both(
    stores: tuple[SqliteStore, SqliteStore], made: list[Entity], tenant: str = DEFAULT_TENANT
) -> None:
    batch, single = stores
    outcomes = await batch.write_entities(tenant, [EntityWrite(e.id, create=e) for e in made])
    assert all(o.ok and o.created for o in outcomes)
    for entity in made:
        await single.create_entity(tenant, entity)


async def test_a_batch_of_plain_entities_writes_the_rows_single_creates_write(
    stores: tuple[SqliteStore, SqliteStore],
) -> None:
    made = entities(400, seed=1)
    assert all(is_plain(e) for e in made)
    taken = count_forms(stores[0])
    await _create_both(stores, made[:150])
    await _create_both(stores, made[150:])

    batch, single = stores
    assert dump(batch.path, keyed=False) == dump(single.path, keyed=False)
    assert len(dump(batch.path, keyed=False)["history"]) > 1000
    assert sum(taken) == 3 * 400  # history, q index, type and geo index: every entity


async def test_odd_entities_in_the_batch_keep_their_python_rows(
    stores: tuple[SqliteStore, SqliteStore],
) -> None:
    made = entities(600, seed=2, odd=0.04)
    plain = sum(is_plain(e) for e in made)
    assert 500 < plain < 590
    taken = count_forms(stores[0])
    await _create_both(stores, made)
    await _create_both(stores, entities(20, seed=3), tenant="other")

    batch, single = stores
    assert dump(batch.path, keyed=False) == dump(single.path, keyed=False)
    assert 0 < sum(taken) < 3 * plain  # long runs of plain entities; the rest one by one


async def test_a_small_batch_takes_the_python_hooks(
    stores: tuple[SqliteStore, SqliteStore],
) -> None:
    taken = count_forms(stores[0])
    await _create_both(stores, entities(10, seed=6))
    batch, single = stores
    assert dump(batch.path, keyed=False) == dump(single.path, keyed=False)
    assert taken == []


async def test_an_entity_created_again_after_a_delete_continues_its_history(
    stores: tuple[SqliteStore, SqliteStore],
) -> None:
    first = entities(30, seed=4)
    await _create_both(stores, first)
    for store in stores:
        for entity in first[:10]:
            await store.delete_entity(DEFAULT_TENANT, entity.id)
    later = "2026-12-02T11:00:00.000Z"
    again = [
        Entity(e.id, e.types, e.attrs, created_at=later, modified_at=later) for e in first[:10]
    ]
    taken = count_forms(stores[0])
    await _create_both(stores, [*again, *entities(10, seed=5)])

    batch, single = stores
    rows = dump(batch.path, keyed=True)
    assert rows == dump(single.path, keyed=True)
    assert any(row[3] is not None for row in rows["history_entities"])  # deleted once
    assert sum(taken) == 3 * 20
