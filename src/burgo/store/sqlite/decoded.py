"""Entities the writer decoded or wrote lately, kept with the document they stand for.

Decoding an entity's JSON document into attributes costs more than the SQL that reads it, and a
device's entity is read again by the next batch of readings. The writer keeps the entity it last
read or wrote for each row, with that row's document: a row whose document is still the same text
gives back the same entity without decoding it. Whatever wrote the row since (another job, a
rolled back transaction, another process), the text differs and the row is decoded as before.

>>> cache = DecodedEntities()
>>> cache.get(1, '{"id": "urn:a"}') is None
True
"""

from __future__ import annotations

import math

from burgo.ngsild.model import Entity

# Rows kept: the entities of a few thousand devices, a few MB.
DEFAULT_SIZE = 2048

# Attribute values a JSON document gives back as they are; any other value (a container, a float
# that is not finite, which orjson writes as null) is left to the decoder. orjson writes finite
# floats so that they read back equal.
_PLAIN_VALUES = frozenset({int, str, bool, type(None)})
_PLAIN_TEXT = frozenset({str, type(None)})


def _finite_float(value: object) -> bool:
    return type(value) is float and math.isfinite(value)


class DecodedEntities:
    """Decoded entities by row key, each valid only for the exact document it came from."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self._size = size
        self._rows: dict[int, tuple[str, Entity]] = {}

    def get(self, pk: int, doc: str) -> Entity | None:
        """The entity of row ``pk`` if ``doc`` is the document it was kept with."""
        kept = self._rows.get(pk)
        if kept is not None and kept[0] == doc:
            return kept[1]
        return None

    def put(self, pk: int, doc: str, entity: Entity) -> None:
        """Keep ``entity`` as the decoding of ``doc``, the document of row ``pk``."""
        rows = self._rows
        rows.pop(pk, None)
        rows[pk] = (doc, entity)
        if len(rows) > self._size:
            del rows[next(iter(rows))]

    def written(self, pk: int, doc: str, entity: Entity, stored: Entity) -> None:
        """Keep ``entity``, just written as ``doc`` over ``stored`` (a decoded entity), when
        decoding ``doc`` would give it back equal: every attribute it does not share with
        ``stored`` is a plain instance (scalar value, no sub-attributes). Else forget the row."""
        old = stored.attrs
        for name, instances in entity.attrs.items():
            if old.get(name) is instances:
                continue
            for attr in instances:
                value = attr.value
                if (
                    (type(value) not in _PLAIN_VALUES and not _finite_float(value))
                    or attr.sub
                    or type(attr.object_type) not in _PLAIN_TEXT
                ):
                    self._rows.pop(pk, None)
                    return
        if entity.types is not stored.types or entity.scope is not stored.scope:
            self._rows.pop(pk, None)
            return
        self.put(pk, doc, entity)
