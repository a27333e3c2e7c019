"""Measurements from devices, parsed once at the edge, and how they change the target entity.

A reading is the set of measurements a device took at one moment. Each reading becomes one
NGSI-LD attribute update of the device's target entity, every attribute with ``observedAt`` set
to the device's time, so history and subscriptions see each reading as an ordinary update.

>>> body = {"co2": 612, "observedAt": "2024-05-01T10:00:00Z"}
>>> readings = parse_readings(body, "2024-05-01T10:00:05.000Z")
>>> readings[0].observed_at, dict(readings[0].values)
('2024-05-01T10:00:00.000Z', {'co2': 612})
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from burgo.ngsild.errors import BadRequestData
from burgo.ngsild.model import EMPTY, Attribute, AttrKind, Entity
from burgo.ngsild.parse import NGSI_LD_NULL
from burgo.ngsild.times import canonical_datetime
from burgo.ngsild.update import set_default_instances
from burgo.store.base import devices

TIME_KEYS = ("observedAt", "time", "ts")
BATTERY_KEYS = ("battery", "batteryLevel")
LOCATION_IRI = "https://uri.etsi.org/ngsi-ld/location"
MAX_READINGS = 1000


@dataclass(frozen=True, slots=True)
class Reading:
    """The measurements a device took at one moment (canonical NGSI-LD DateTime)."""

    observed_at: str
    values: Mapping[str, Any]

    @property
    def battery(self) -> float | None:
        """The battery level the reading reports, if any."""
        for key in BATTERY_KEYS:
            value = self.values.get(key)
            if value is not None and _is_number(value):
                return float(value)
        return None


_NUMBER = (int, float)
# Values that are not a {latitude, longitude} object, found by type alone (no ABC check).
_SCALARS = frozenset({int, float, str, bool, type(None)})


def _is_number(value: Any) -> bool:
    return isinstance(value, _NUMBER) and not isinstance(value, bool)


def _check_value(name: str, value: Any, where: str) -> None:
    kind = type(value)
    if kind is int:  # most measurements: nothing more to check
        return
    if kind is float:
        if not math.isfinite(value):
            raise BadRequestData(f"{where}: measurement {name!r} is not a finite number")
        return
    if value == NGSI_LD_NULL:
        raise BadRequestData(f"{where}: measurement {name!r} must not be NGSI-LD Null")
    if value is None or isinstance(value, str | bool):
        return
    if _is_number(value):
        if not math.isfinite(value):
            raise BadRequestData(f"{where}: measurement {name!r} is not a finite number")
        return
    if isinstance(value, Mapping) and _is_number(value.get("latitude")):
        return
    raise BadRequestData(
        f"{where}: measurement {name!r} must be a number, string, boolean or a "
        f"{{latitude, longitude}} object, got {type(value).__name__}"
    )


def parse_reading(raw: Any, now: str, where: str = "reading") -> Reading:
    """One reading from a JSON object of measurements, with an optional device time."""
    if not isinstance(raw, Mapping):
        raise BadRequestData(f"{where} must be a JSON object of measurements")
    values: dict[str, Any] = {}
    observed_at = now
    for name, value in raw.items():
        if name in TIME_KEYS:
            observed_at = canonical_datetime(value, f"{where}: {name}")
            continue
        _check_value(name, value, where)
        values[name] = value
    if not values:
        raise BadRequestData(f"{where} holds no measurement")
    return Reading(observed_at, MappingProxyType(values))


def parse_readings(data: Any, now: str) -> list[Reading]:
    """One reading (a JSON object) or a batch (an array of them), in time order."""
    if isinstance(data, list):
        if not data:
            raise BadRequestData("A batch of readings must not be empty")
        if len(data) > MAX_READINGS:
            raise BadRequestData(f"A batch holds at most {MAX_READINGS} readings")
        readings = [parse_reading(item, now, f"reading {n}") for n, item in enumerate(data)]
        return sorted(readings, key=lambda r: r.observed_at)
    return [parse_reading(data, now)]


@dataclass(frozen=True, slots=True)
class _Plan:
    """What a device's mapping asks of each reading, worked out once per mapping: the
    measurements it knows, those it scales, and how each mapped one becomes an attribute."""

    known: frozenset[str]
    scaled: tuple[devices.AttributeMap, ...]
    # (measurement, attribute IRI, unit code, the rule when it scales, whether a plain value
    # is left out because the attribute is the location)
    rules: tuple[tuple[str, str, str | None, devices.AttributeMap | None, bool], ...]


# Plans by the identity of the mapping they were made for (kept with it, so that identity is
# not reused while the plan is kept); devices are cached, so a mapping is planned once.
_PLANS: dict[int, tuple[tuple[devices.AttributeMap, ...], _Plan]] = {}
_PLANS_KEPT = 4096


def _plan(mapping: tuple[devices.AttributeMap, ...]) -> _Plan:
    found = _PLANS.get(id(mapping))
    if found is not None and found[0] is mapping:
        return found[1]
    scaled = tuple(rule for rule in mapping if rule.scale != 1.0 or rule.offset != 0.0)
    plan = _Plan(
        known=frozenset(m.measurement for m in mapping) | frozenset(BATTERY_KEYS),
        scaled=scaled,
        rules=tuple(
            (
                rule.measurement,
                rule.iri,
                rule.unit_code or None,
                rule if rule in scaled else None,
                rule.iri == LOCATION_IRI,
            )
            for rule in mapping
        ),
    )
    if len(_PLANS) >= _PLANS_KEPT:
        _PLANS.clear()
    _PLANS[id(mapping)] = (mapping, plan)
    return plan


def check_mapped(device: devices.Device, readings: list[Reading]) -> None:
    """Refuse readings naming measurements the device's mapping does not know."""
    plan = _plan(device.mapping)
    for reading in readings:
        if not plan.known.issuperset(reading.values):
            unknown = sorted(set(reading.values) - plan.known)
            raise BadRequestData(
                f"Device {device.id} has no mapping for {', '.join(map(repr, unknown))}; "
                f"it maps: {', '.join(sorted(m.measurement for m in device.mapping))}"
            )
        for rule in plan.scaled:
            value = reading.values.get(rule.measurement)
            if value is not None and not _is_number(value):
                raise BadRequestData(
                    f"Measurement {rule.measurement!r} is scaled, so it must be a number, "
                    f"got {value!r}"
                )


def reading_attributes(device: devices.Device, reading: Reading) -> dict[str, Attribute]:
    """The NGSI-LD attributes (by expanded name) a reading sets on the target entity, each
    observed at the device's time; empty if the reading maps to nothing."""
    attrs: dict[str, Attribute] = {}
    values = reading.values
    observed_at = reading.observed_at
    for measurement, iri, unit_code, scaled, is_location in _plan(device.mapping).rules:
        if measurement not in values:
            continue
        value = values[measurement]
        if type(value) not in _SCALARS and isinstance(value, Mapping):
            point = {"type": "Point", "coordinates": [value["longitude"], value["latitude"]]}
            attrs[iri] = Attribute(AttrKind.GEO_PROPERTY, point, observed_at=observed_at)
        elif not is_location:
            # Every field given: the constructor is quickest so (this runs for every value).
            attrs[iri] = Attribute(
                AttrKind.PROPERTY,
                value if scaled is None else scaled.convert(value),
                None,
                observed_at,
                unit_code,
                None,
                EMPTY,
                None,
                None,
            )
    return attrs


def apply_reading(
    attrs: Mapping[str, Attribute], now: str
) -> Callable[[Entity], tuple[Entity, None]]:
    """The store change that writes a reading's attributes into the target entity."""

    def change(current: Entity) -> tuple[Entity, None]:
        return set_default_instances(current, attrs, now), None

    return change


def lorawan_reading(device: devices.Device, values: Mapping[str, Any], observed_at: str) -> Reading:
    """The reading of a decoded uplink: its mapped measurements (and battery); what the
    device's mapping does not name is left out, as decoders often report more."""
    wanted = {m.measurement for m in device.mapping} | set(BATTERY_KEYS)
    kept = {name: value for name, value in values.items() if name in wanted}
    if not kept:
        raise BadRequestData(
            f"The uplink of {device.id} holds none of the measurements its mapping names "
            f"(it has: {', '.join(sorted(values)) or 'nothing'})"
        )
    for name, value in kept.items():
        _check_value(name, value, f"uplink of {device.id}")
    reading = Reading(observed_at, MappingProxyType(kept))
    check_mapped(device, [reading])
    return reading
