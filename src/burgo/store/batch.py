"""Batch writes: many entities created, changed or deleted in one store call.

A batch is a list of :class:`EntityWrite`, applied in order as if each were a request of its own
(a later write of the same id sees what an earlier one left). Each write succeeds or fails alone;
the store reports a :class:`WriteOutcome` per write, in the same order.

>>> writes = [EntityWrite(room.id, create=room), EntityWrite("urn:x:gone", change=drop)]
>>> outcomes = await store.write_entities("", writes)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from burgo.ngsild.errors import AlreadyExists, NgsiLdError, ResourceNotFound
from burgo.ngsild.model import Entity

# Applied to the stored entity inside the write transaction: the new entity (None deletes it,
# the same object leaves it untouched) and a value handed back in the outcome.
BatchChange = Callable[[Entity], tuple[Entity | None, Any]]


@dataclass(frozen=True, slots=True)
class EntityWrite:
    """One entity's part of a batch.

    ``create`` is stored when no entity with ``entity_id`` exists (None: ResourceNotFound);
    ``change`` is applied when one does (None: AlreadyExists).
    """

    entity_id: str
    create: Entity | None = None
    change: BatchChange | None = None


def written(write: EntityWrite, before: Entity | None) -> tuple[Entity | None, Any]:
    """What ``write`` makes of the entity it finds (``before``; None: none exists), and the value
    its outcome hands back; AlreadyExists or ResourceNotFound when it cannot apply."""
    if before is None:
        if write.create is None:
            raise ResourceNotFound(f"Entity {write.entity_id} was not found")
        return write.create, None
    if write.change is None:
        raise AlreadyExists(f"Entity {write.entity_id} already exists")
    return write.change(before)


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    """What became of one write: created, changed (with the change's result), or its error."""

    entity_id: str
    created: bool = False
    result: Any = None
    error: NgsiLdError | None = None

    @property
    def ok(self) -> bool:
        """Whether the write was stored."""
        return self.error is None


class BatchStore(Protocol):
    """Writes of many entities at once, each succeeding or failing on its own."""

    async def write_entities(
        self, tenant: str, writes: Sequence[EntityWrite]
    ) -> list[WriteOutcome]:
        """Apply ``writes`` in order in one transaction, one outcome per write; the tenant is
        created by the first entity created in it (NonexistentTenant if nothing could be)."""
