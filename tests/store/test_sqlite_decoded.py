"""The SQLite writer's decoded entities: kept only while the stored document is the same text,
and only when decoding that document would give back an equal entity."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from burgo.ngsild.model import Attribute, AttrKind, Entity, entity_from_storage, entity_to_storage
from burgo.store.base import DEFAULT_TENANT
from burgo.store.sqlite import SqliteStore
from burgo.store.sqlite.decoded import DecodedEntities
from tests.strategies import entities, instances, names

ROOM = "urn:ngsi-ld:Room:1"
TEMPERATURE = "https://smartdatamodels.org/temperature"

# Plain values, with the floats JSON cannot hold as they are.
plain_values = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.text(max_size=5),
    st.booleans(),
    st.none(),
)


@st.composite
def written(draw: st.DrawFn) -> tuple[Entity, Entity]:
    """A stored entity (as decoded from its document) and a write over it: some attributes
    kept as they were, others replaced by instances of any kind or by plain properties."""
    original = draw(entities(max_attrs=2))
    stored = entity_from_storage(orjson.loads(orjson.dumps(entity_to_storage(original))))
    attrs = dict(stored.attrs)
    for name in draw(st.lists(names, max_size=3)):
        if draw(st.booleans()):
            attrs[name] = draw(instances())
        else:
            value = draw(plain_values)
            attrs[name] = (Attribute(AttrKind.PROPERTY, value, observed_at="2024-05-01T10:00:00Z"),)
    types = stored.types if draw(st.booleans()) else (*stored.types, "Extra")
    return stored, Entity(stored.id, types, MappingProxyType(attrs), stored.scope, "a", "b")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(written())
def test_an_entity_is_kept_only_when_its_document_gives_it_back(
    pair: tuple[Entity, Entity],
) -> None:
    stored, new = pair
    try:
        doc = orjson.dumps(entity_to_storage(new)).decode()
    except orjson.JSONEncodeError:
        return  # not storable: never written
    cache = DecodedEntities()
    cache.put(1, "the document before", stored)
    cache.written(1, doc, new, stored)
    kept = cache.get(1, doc)
    if kept is not None:
        assert kept == entity_from_storage(orjson.loads(doc))
    assert cache.get(1, "the document before") is None


def test_a_write_of_plain_readings_is_kept() -> None:
    stored = Entity(ROOM, ("Room",), MappingProxyType({}))
    reading = Attribute(AttrKind.PROPERTY, 21.5, None, "2024-05-01T10:00:00.000Z", "CEL")
    new = replace(stored, attrs=MappingProxyType({TEMPERATURE: (reading,)}))
    doc = orjson.dumps(entity_to_storage(new)).decode()
    cache = DecodedEntities()
    cache.written(1, doc, new, stored)
    assert cache.get(1, doc) is new
    assert cache.get(1, doc.replace("21.5", "22.5")) is None


def test_a_float_that_json_cannot_hold_is_not_kept() -> None:
    stored = Entity(ROOM, ("Room",), MappingProxyType({}))
    for value in (float("nan"), float("inf")):
        attrs = {TEMPERATURE: (Attribute(AttrKind.PROPERTY, value),)}
        new = replace(stored, attrs=MappingProxyType(attrs))
        doc = orjson.dumps(entity_to_storage(new)).decode()
        cache = DecodedEntities()
        cache.written(1, doc, new, stored)
        assert cache.get(1, doc) is None


def test_the_oldest_rows_make_room() -> None:
    cache = DecodedEntities(size=2)
    entity = Entity(ROOM, ("Room",), MappingProxyType({}))
    for pk in (1, 2, 3):
        cache.put(pk, f"doc {pk}", entity)
    assert cache.get(1, "doc 1") is None
    assert cache.get(2, "doc 2") is entity
    assert cache.get(3, "doc 3") is entity


def set_temperature(value: Any, at: str) -> Any:
    def change(current: Entity) -> tuple[Entity, None]:
        reading = Attribute(AttrKind.PROPERTY, value, observed_at=at, created_at=at, modified_at=at)
        return current.with_attrs({**current.attrs, TEMPERATURE: (reading,)}, at), None

    return change


@pytest.mark.anyio
async def test_a_write_by_another_path_is_seen_by_the_next_sequence(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "burgo.db", synchronous="NORMAL")
    await store.open()
    try:
        await store.create_entity(DEFAULT_TENANT, Entity(ROOM, ("Room",), MappingProxyType({})))
        at = "2024-05-01T10:00:00.000Z"
        await store.modify_entities(DEFAULT_TENANT, [(ROOM, set_temperature(20, at))])
        # modify_entity writes the row without the writer's decoded entities.
        later = "2024-05-01T10:01:00.000Z"
        await store.modify_entity(DEFAULT_TENANT, ROOM, set_temperature(21.5, later))
        seen: list[Any] = []

        def look(current: Entity) -> tuple[Entity, None]:
            seen.append(current.attrs[TEMPERATURE][0].value)
            return current, None

        await store.modify_entities(DEFAULT_TENANT, [(ROOM, look)])
        assert seen == [21.5]
        entity = await store.get_entity(DEFAULT_TENANT, ROOM)
        assert entity is not None and entity.attrs[TEMPERATURE][0].value == 21.5
    finally:
        await store.close()
