"""What the dashboard shows of a tenant's entities, read through the store protocol: things
(entities with their vertical, state and latest values), recent changes and devices with health.

>>> thing = summarise(Entity("urn:ngsi-ld:WasteContainer:1", ("WasteContainer",)), 0)
>>> (thing.vertical, thing.state)
('city', 'unknown')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from burgo.ngsild.errors import NonexistentTenant
from burgo.ngsild.model import Attribute, AttrKind, Entity
from burgo.ngsild.query import EntityQuery
from burgo.store.base import Store
from burgo.store.devices import Device, DeviceStatus
from burgo.verticals.catalog import (
    DEVICE_TYPES,
    STALE,
    UNKNOWN,
    short_name,
    state_of,
    vertical_of,
)

LOCATION = "https://uri.etsi.org/ngsi-ld/location"
# A thing whose newest value is older than this is shown as stale (grey), whatever it said.
STALE_AFTER_MS = 3 * 3600 * 1000
_SYSTEM_ATTRS = frozenset({LOCATION})


@dataclass(frozen=True, slots=True)
class Value:
    """One attribute's latest value as the dashboard shows it."""

    name: str
    iri: str
    value: Any
    unit: str | None
    observed_at: str | None
    kind: str

    @property
    def numeric(self) -> bool:
        """Whether it can be charted."""
        return isinstance(self.value, int | float) and not isinstance(self.value, bool)


@dataclass(frozen=True, slots=True)
class Thing:
    """An entity on the dashboard: its vertical, state, place and latest values."""

    id: str
    type: str
    vertical: str | None
    state: str
    name: str
    location: tuple[float, float] | None
    values: tuple[Value, ...]
    updated: str | None

    def properties(self) -> dict[str, Any]:
        """The flat properties of its GeoJSON feature and CSV row."""
        props: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            "vertical": self.vertical,
            "state": self.state,
            "name": self.name,
            "updated": self.updated,
        }
        for value in self.values:
            props.setdefault(value.name, value.value)
        return props

    def feature(self) -> dict[str, Any]:
        """A GeoJSON (RFC 7946) feature of the thing."""
        geometry = None
        if self.location is not None:
            geometry = {"type": "Point", "coordinates": list(self.location)}
        return {
            "type": "Feature",
            "id": self.id,
            "geometry": geometry,
            "properties": self.properties(),
        }


def _millis(text: str | None) -> int | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _point(attr: Attribute | None) -> tuple[float, float] | None:
    if attr is None or not isinstance(attr.value, dict) or attr.value.get("type") != "Point":
        return None
    coords = attr.value.get("coordinates")
    if not isinstance(coords, list) or len(coords) < 2:
        return None
    lon, lat = coords[0], coords[1]
    if not all(isinstance(c, int | float) for c in (lon, lat)):
        return None
    return float(lon), float(lat)


def _value(iri: str, attr: Attribute) -> Value:
    return Value(
        name=short_name(iri),
        iri=iri,
        value=attr.value,
        unit=attr.unit_code,
        observed_at=attr.observed_at,
        kind=attr.kind.value,
    )


def summarise(entity: Entity, now_ms: int, label: str | None = None) -> Thing:
    """The dashboard's view of an entity at ``now_ms`` (epoch milliseconds); ``label`` names it
    when it has no ``name`` attribute (its device's name)."""
    values = []
    for iri, instances in entity.attrs.items():
        if iri in _SYSTEM_ATTRS or not instances or instances[0].kind == AttrKind.GEO_PROPERTY:
            continue
        values.append(_value(iri, instances[0]))
    values.sort(key=lambda v: v.name.lower())
    latest = {v.name: v.value for v in values}
    state = state_of(entity.types, latest)
    observed = [v.observed_at for v in values if v.observed_at]
    updated = max(observed) if observed else entity.modified_at
    updated_ms = _millis(updated)
    if updated_ms is not None and now_ms - updated_ms > STALE_AFTER_MS and state != UNKNOWN:
        state = STALE
    name = latest.get("name")
    return Thing(
        id=entity.id,
        type=short_name(entity.types[0]) if entity.types else "",
        vertical=vertical_of(entity.types, entity.id),
        state=state,
        name=name if isinstance(name, str) and name else label or entity.id.rsplit(":", 1)[-1],
        location=_point(entity.instance(LOCATION)),
        values=tuple(values),
        updated=updated,
    )


async def tenants(store: Store) -> list[str]:
    """Every tenant, the default one (empty name) first."""
    return sorted(await store.list_tenants())


async def check_tenant(store: Store, tenant: str) -> None:
    """NonexistentTenant unless ``tenant`` holds data (the default always exists)."""
    if not await store.tenant_exists(tenant):
        raise NonexistentTenant(f"There is no tenant {tenant!r}")


async def all_entities(store: Store, tenant: str, page: int) -> list[Entity]:
    """Every entity of ``tenant``, read ``page`` at a time."""
    found: list[Entity] = []
    offset = 0
    while True:
        result = await store.query_entities(tenant, EntityQuery(limit=page, offset=offset))
        found.extend(result.entities)
        if not result.more or not result.entities:
            return found
        offset += len(result.entities)


async def things(store: Store, tenant: str, now_ms: int, page: int) -> list[Thing]:
    """The tenant's things (device entities left out: they are listed with the devices)."""
    labels = {d.entity_id: d.name for d in await store.list_devices(tenant)}
    entities = await all_entities(store, tenant, page)
    summaries = (summarise(e, now_ms, labels.get(e.id)) for e in entities)
    return [t for t in summaries if t.type not in DEVICE_TYPES]


@dataclass(frozen=True, slots=True)
class Change:
    """A recent change: which thing, when, and the values it reported then."""

    thing: Thing
    at: str
    values: tuple[Value, ...]


def recent_changes(found: Sequence[Thing], count: int) -> list[Change]:
    """The ``count`` most recently updated things, newest first, with what changed."""
    dated = sorted((t for t in found if t.updated), key=lambda t: t.updated or "", reverse=True)
    return [
        Change(t, t.updated or "", tuple(v for v in t.values if v.observed_at == t.updated))
        for t in dated[:count]
    ]


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """A registered device and its health."""

    device: Device
    status: DeviceStatus | None

    def properties(self) -> dict[str, Any]:
        """Its CSV row and GeoJSON properties."""
        status = self.status
        return {
            "id": self.device.id,
            "name": self.device.name,
            "protocol": self.device.protocol,
            "entity": self.device.entity_id,
            "entityType": short_name(self.device.entity_type),
            "state": status.state if status else "unknown",
            "lastSeen": status.last_seen if status else None,
            "battery": status.battery if status else None,
            "rssi": status.rssi if status else None,
            "snr": status.snr if status else None,
            "messages": status.messages if status else 0,
        }

    def feature(self) -> dict[str, Any]:
        """A GeoJSON feature of the device."""
        location = self.device.location
        geometry = {"type": "Point", "coordinates": list(location)} if location else None
        return {
            "type": "Feature",
            "id": self.device.id,
            "geometry": geometry,
            "properties": self.properties(),
        }


async def device_rows(store: Store, tenant: str) -> list[DeviceRow]:
    """The tenant's devices with their health, by id."""
    statuses = {s.device_id: s for s in await store.list_device_statuses() if s.tenant == tenant}
    return [DeviceRow(d, statuses.get(d.id)) for d in await store.list_devices(tenant)]
