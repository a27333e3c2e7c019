"""Discovery: which entity types and attributes a tenant holds (ETSI GS CIM 009, 5.7.5-5.7.10).

Names are expanded IRIs; the API compacts them with the request's @context.

>>> types = await store.entity_types("")  # doctest: +SKIP
>>> parking = "https://smartdatamodels.org/dataModel.Parking/ParkingSpot"
>>> [info] = await store.type_details("", [parking])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class TypeDetails:
    """One entity type: how many entities have it, and the kinds of each of their attributes."""

    name: str
    entity_count: int
    attributes: Mapping[str, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class AttributeDetails:
    """One attribute name: its instances, their kinds and the types of the entities holding it."""

    name: str
    count: int
    kinds: tuple[str, ...]
    entity_types: tuple[str, ...]


class DiscoveryStore(Protocol):
    """What types and attributes exist in a tenant, computed from the stored entities."""

    async def entity_types(self, tenant: str) -> list[str]:
        """The entity types in use, sorted; NonexistentTenant for an unknown tenant."""

    async def type_details(
        self, tenant: str, types: Sequence[str] | None = None
    ) -> list[TypeDetails]:
        """Details of ``types`` (all when None) that are in use, sorted by name."""

    async def attribute_names(self, tenant: str) -> list[str]:
        """The attribute names in use, sorted."""

    async def attribute_details(
        self, tenant: str, names: Sequence[str] | None = None
    ) -> list[AttributeDetails]:
        """Details of the attributes ``names`` (all when None) that are in use, sorted."""
