"""Registering a device: its description parsed and completed from a profile, the NGSI-LD
``Device`` entity (Smart Data Models) that stands for it, and its JSON form in the API.

>>> draft = parse_device({"id": "aq-1", "profile": "air-quality"})
>>> draft.entity_type, draft.context == PROFILES["air-quality"].context
('AirQualityObserved', True)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from burgo.ingest import decoders
from burgo.ingest.lorawan import normalize_eui
from burgo.ingest.profiles import PROFILES, MeasurementSpec, sdm_context
from burgo.ngsild.context import Context
from burgo.ngsild.errors import BadRequestData
from burgo.ngsild.model import Attribute, AttrKind, Entity
from burgo.ngsild.parse import attribute_iri, build_attribute, check_uri, normalize_attribute
from burgo.store.base import devices

AttributeMap = devices.AttributeMap
Device = devices.Device
DeviceStatus = devices.DeviceStatus
StaticAttribute = devices.StaticAttribute

DEVICE_CONTEXT = sdm_context("Device")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


class MappingIn(BaseModel):
    """One measurement -> attribute rule as a client writes it."""

    model_config = ConfigDict(extra="forbid")

    measurement: str = Field(min_length=1, max_length=64)
    attribute: str = Field(min_length=1, max_length=128)
    unitCode: str | None = Field(default=None, max_length=16)
    scale: float = Field(default=1.0, allow_inf_nan=False)
    offset: float = Field(default=0.0, allow_inf_nan=False)


class DeviceIn(BaseModel):
    """A device as a client registers it; a profile fills what is left out."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str | None = Field(default=None, max_length=200)
    protocol: Literal["http", "mqtt", "lorawan"] = "http"
    devEUI: str | None = None
    profile: str | None = None
    entityId: str | None = None
    entityType: str | None = Field(default=None, max_length=128)
    context: str | None = None
    mapping: list[MappingIn] | None = None
    staticAttributes: dict[str, Any] = Field(default_factory=dict)
    location: dict[str, Any] | None = None
    decoder: str | None = None
    interval: int | None = Field(default=None, ge=10, le=31 * 86400)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError(
                "up to 64 letters, digits, '_', '-' or '.', starting with one of the first two"
            )
        return value


@dataclass(frozen=True, slots=True)
class Draft:
    """A device description completed from its profile, names not yet expanded."""

    id: str
    name: str
    protocol: str
    dev_eui: str | None
    profile: str | None
    entity_id: str
    entity_type: str
    context: str | None
    mapping: tuple[MeasurementSpec, ...]
    static_attrs: dict[str, Any]
    location: tuple[float, float] | None
    decoder: str | None
    interval: int | None


def _problem(exc: ValidationError) -> BadRequestData:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "body"
        parts.append(f"{where}: {error['msg']}")
    return BadRequestData("Invalid device: " + "; ".join(parts))


def _location(raw: dict[str, Any] | None) -> tuple[float, float] | None:
    if raw is None:
        return None
    if raw.get("type") == "Point" and isinstance(raw.get("coordinates"), list):
        coords = raw["coordinates"]
        lon, lat = [*coords, None, None][:2]
    else:
        lon, lat = raw.get("longitude"), raw.get("latitude")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lon, lat)):
        raise BadRequestData(
            "Device location must be a GeoJSON Point or {latitude, longitude} in degrees"
        )
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise BadRequestData(f"Device location is out of range: longitude {lon}, latitude {lat}")
    return (float(lon), float(lat))


def parse_device(body: Any) -> Draft:
    """Validate a registration body and complete it from its profile."""
    if not isinstance(body, dict):
        raise BadRequestData("A device must be a JSON object")
    try:
        given = DeviceIn.model_validate(body)
    except ValidationError as exc:
        raise _problem(exc) from exc
    profile = None
    if given.profile is not None:
        profile = PROFILES.get(given.profile)
        if profile is None:
            raise BadRequestData(
                f"Unknown profile {given.profile!r}; profiles: {', '.join(sorted(PROFILES))}"
            )
    entity_type = given.entityType or (profile.entity_type if profile else None)
    if entity_type is None:
        raise BadRequestData("A device needs an entityType (or a profile that gives one)")
    if given.mapping is not None:
        mapping = tuple(
            MeasurementSpec(m.measurement, m.attribute, m.unitCode, m.scale, m.offset)
            for m in given.mapping
        )
    elif profile is not None:
        mapping = profile.mapping
    else:
        raise BadRequestData("A device needs a mapping (or a profile that gives one)")
    measurements = [m.measurement for m in mapping]
    if len(set(measurements)) != len(measurements) or not mapping:
        raise BadRequestData("A device's mapping needs distinct measurements, at least one")
    dev_eui = normalize_eui(given.devEUI) if given.devEUI is not None else None
    if given.protocol == "lorawan" and dev_eui is None:
        raise BadRequestData("A LoRaWAN device needs its devEUI")
    decoder = given.decoder or (profile.decoder if profile else None)
    if decoder is not None and decoder not in decoders.available():
        raise BadRequestData(
            f"Unknown decoder {decoder!r}; available: {', '.join(decoders.available())}"
        )
    entity_id = given.entityId or f"urn:ngsi-ld:{entity_type}:{given.id}"
    check_uri(entity_id, "entityId")
    context = given.context or (profile.context if profile else None)
    if context is not None:
        check_uri(context, "context")
    return Draft(
        id=given.id,
        name=given.name or given.id,
        protocol=given.protocol,
        dev_eui=dev_eui,
        profile=given.profile,
        entity_id=entity_id,
        entity_type=entity_type,
        context=context,
        mapping=mapping,
        static_attrs=dict(given.staticAttributes),
        location=_location(given.location),
        decoder=decoder,
        interval=given.interval or (profile.interval if profile else None),
    )


def build_device(draft: Draft, tenant: str, ctx: Context, key_hash: str, now: str) -> Device:
    """The device to store, its names expanded with the target entity's @context."""
    mapping = tuple(
        AttributeMap(
            m.measurement,
            m.attribute,
            attribute_iri(m.attribute, ctx),
            m.unit_code,
            m.scale,
            m.offset,
        )
        for m in draft.mapping
    )
    static = []
    for name, value in draft.static_attrs.items():
        normalize_attribute(value, ctx, name=name, patch=False)
        static.append(StaticAttribute(name, attribute_iri(name, ctx), value))
    return Device(
        tenant=tenant,
        id=draft.id,
        name=draft.name,
        protocol=draft.protocol,
        entity_id=draft.entity_id,
        entity_type=draft.entity_type,
        entity_type_iri=ctx.expand(draft.entity_type),
        mapping=mapping,
        dev_eui=draft.dev_eui,
        profile=draft.profile,
        context=draft.context,
        static_attrs=tuple(static),
        location=draft.location,
        decoder=draft.decoder,
        interval=draft.interval,
        key_hash=key_hash,
        created_at=now,
    )


def device_entity_id(device: Device) -> str:
    """The id of the NGSI-LD Device entity that stands for a device."""
    return f"urn:ngsi-ld:Device:{device.id}"


def _prop(value: Any, **meta: Any) -> tuple[Attribute, ...]:
    return (Attribute(AttrKind.PROPERTY, value, **meta),)


def _point(location: tuple[float, float]) -> tuple[Attribute, ...]:
    return (Attribute(AttrKind.GEO_PROPERTY, {"type": "Point", "coordinates": list(location)}),)


def device_entity(device: Device, dctx: Context) -> Entity:
    """The Smart Data Models ``Device`` entity of a device, linked to the entity it feeds."""
    attrs: dict[str, tuple[Attribute, ...]] = {
        dctx.expand("name"): _prop(device.name),
        dctx.expand("deviceCategory"): _prop(["sensor"]),
        dctx.expand("supportedProtocol"): _prop([device.protocol]),
        dctx.expand("controlledProperty"): _prop([m.attribute for m in device.mapping]),
        dctx.expand("controlledAsset"): (Attribute(AttrKind.RELATIONSHIP, device.entity_id),),
        dctx.expand("deviceState"): _prop(devices.STATE_UNKNOWN),
    }
    if device.dev_eui:
        attrs[dctx.expand("serialNumber")] = _prop(device.dev_eui)
    if device.location:
        attrs["https://uri.etsi.org/ngsi-ld/location"] = _point(device.location)
    return Entity(device_entity_id(device), (dctx.expand("Device"),), MappingProxyType(attrs))


def target_attrs(device: Device, ctx: Context) -> dict[str, tuple[Attribute, ...]]:
    """What the device puts on its target entity besides measurements: static attributes,
    location and the ``refDevice`` link."""
    attrs: dict[str, tuple[Attribute, ...]] = {}
    for static in device.static_attrs:
        docs = normalize_attribute(static.value, ctx, name=static.attribute, patch=False)
        attrs[static.iri] = tuple(build_attribute(d, static.attribute) for d in docs)
    if device.location:
        attrs["https://uri.etsi.org/ngsi-ld/location"] = _point(device.location)
    attrs[ctx.expand("refDevice")] = (Attribute(AttrKind.RELATIONSHIP, device_entity_id(device)),)
    return attrs


def render_device(device: Device, status: DeviceStatus | None) -> dict[str, Any]:
    """A device as the API shows it (never its key)."""
    body: dict[str, Any] = {
        "id": device.id,
        "name": device.name,
        "protocol": device.protocol,
        "devEUI": device.dev_eui,
        "profile": device.profile,
        "entityId": device.entity_id,
        "entityType": device.entity_type,
        "deviceEntityId": device_entity_id(device),
        "context": device.context,
        "mapping": [
            {
                "measurement": m.measurement,
                "attribute": m.attribute,
                "unitCode": m.unit_code,
                "scale": m.scale,
                "offset": m.offset,
            }
            for m in device.mapping
        ],
        "staticAttributes": {s.attribute: s.value for s in device.static_attrs},
        "location": (
            {"type": "Point", "coordinates": list(device.location)} if device.location else None
        ),
        "decoder": device.decoder,
        "interval": device.interval,
        "createdAt": device.created_at,
    }
    if status is not None:
        body["status"] = render_status(status)
    return {k: v for k, v in body.items() if v is not None}


def render_status(status: DeviceStatus) -> dict[str, Any]:
    """A device's health as the API shows it."""
    body = {
        "state": status.state,
        "stateSince": status.state_since,
        "lastSeen": status.last_seen,
        "battery": status.battery,
        "rssi": status.rssi,
        "snr": status.snr,
        "gateway": status.gateway,
        "frameCounter": status.frame_counter,
        "messages": status.messages,
        "duplicates": status.duplicates,
        "errors": status.errors,
        "lastError": status.last_error,
        "lastErrorAt": status.last_error_at,
    }
    return {k: v for k, v in body.items() if v is not None}


def with_status_attrs(entity: Entity, dctx: Context, status: DeviceStatus, now: str) -> Entity:
    """The Device entity with its health attributes (state, battery, rssi, last report) set."""
    attrs = dict(entity.attrs)
    values: dict[str, Any] = {"deviceState": status.state}
    if status.last_seen:
        values["dateLastValueReported"] = status.last_seen
    if status.battery is not None:
        values["batteryLevel"] = status.battery
    if status.rssi is not None:
        values["rssi"] = status.rssi
    for name, value in values.items():
        iri = dctx.expand(name)
        old = entity.instance(iri)
        attrs[iri] = (
            Attribute(AttrKind.PROPERTY, value).stamped(now, old.created_at if old else None),
        )
    return entity.with_attrs(attrs, now)
