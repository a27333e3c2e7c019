"""Which vertical an entity belongs to, and the state its latest values put it in.

One small table from Smart Data Models types to verticals, shared by the dashboard (map layers,
marker colours) and the simulator (what it creates). Types used by several verticals
(``IndoorEnvironmentObserved`` is a classroom or a home, ``WeatherObserved`` a farm or a square)
are told apart by the words of the entity id.

>>> vertical_of(("https://smartdatamodels.org/dataModel.Environment/AirQualityObserved",), "x")
'city'
>>> vertical_of(("IndoorEnvironmentObserved",), "urn:ngsi-ld:IndoorEnvironmentObserved:care-home-7")
'care'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

CITY, CARE, AGRO, ENTERPRISE, EDUCATION = "city", "care", "agro", "enterprise", "education"
VERTICALS = (CITY, CARE, AGRO, ENTERPRISE, EDUCATION)

# Smart Data Models types (short names) and the vertical each belongs to.
TYPE_VERTICALS: Mapping[str, str] = {
    "AirQualityObserved": CITY,
    "NoiseLevelObserved": CITY,
    "ParkingSpot": CITY,
    "OffStreetParking": CITY,
    "OnStreetParking": CITY,
    "WasteContainer": CITY,
    "Streetlight": CITY,
    "StreetlightGroup": CITY,
    "TrafficFlowObserved": CITY,
    "WaterQualityObserved": CITY,
    "HomeCareKit": CARE,
    "PersonalSensor": CARE,
    "AgriParcel": AGRO,
    "AgriFarm": AGRO,
    "AgriCrop": AGRO,
    "AgriSoil": AGRO,
    "AgriSoilState": AGRO,
    "AgriParcelRecord": AGRO,
    "SoilMeasurement": AGRO,
    "WeatherObserved": AGRO,
    "EnergyMeter": ENTERPRISE,
    "ElectricityMeter": ENTERPRISE,
    "ThreePhaseAcMeasurement": ENTERPRISE,
    "ACMeasurement": ENTERPRISE,
    "SmartMeteringObservation": ENTERPRISE,
    "Building": ENTERPRISE,
    "IndoorEnvironmentObserved": EDUCATION,
    "Classroom": EDUCATION,
}
# Types whose vertical the entity id may override (its words say where the sensor is).
SHARED_TYPES = frozenset({"IndoorEnvironmentObserved", "WeatherObserved", "Building"})
# Words of an entity id that name a vertical.
ID_WORDS: Mapping[str, str] = {
    **{name: name for name in VERTICALS},
    "home": CARE,
    "homecare": CARE,
    "school": EDUCATION,
    "classroom": EDUCATION,
    "farm": AGRO,
    "parcel": AGRO,
    "hub": ENTERPRISE,
    "fablab": ENTERPRISE,
    "business": ENTERPRISE,
    "office": ENTERPRISE,
    # The same in Portuguese, for towns that name their entities so.
    "casa": CARE,
    "lar": CARE,
    "cuidados": CARE,
    "escola": EDUCATION,
    "sala": EDUCATION,
    "quinta": AGRO,
    "parcela": AGRO,
    "pomar": AGRO,
    "empresa": ENTERPRISE,
    "incubadora": ENTERPRISE,
}
# Types never shown as things on the map: they describe the devices, listed apart.
DEVICE_TYPES = frozenset({"Device", "DeviceModel"})
# Generic types whose vertical only the entity id can tell (a home-care kit's motion sensor, say).
ID_ONLY_TYPES = frozenset({"DeviceMeasurement"})

_WORD = re.compile(r"[a-z0-9]+")

OK, WARN, ALERT, STALE, BUSY, UNKNOWN = "ok", "warn", "alert", "stale", "busy", "unknown"
STATES = (ALERT, WARN, BUSY, OK, STALE, UNKNOWN)


def short_name(iri: str) -> str:
    """The last segment of an expanded name (``.../ParkingSpot`` -> ``ParkingSpot``)."""
    return re.split(r"[/#:]", iri)[-1] or iri


def _id_words(entity_id: str) -> str:
    """The part of an entity id that names the thing (after ``urn:ngsi-ld:Type:``)."""
    return entity_id.split(":", 3)[-1] if entity_id.count(":") >= 3 else entity_id


def _id_vertical(entity_id: str) -> str | None:
    for word in _WORD.findall(entity_id.lower()):
        if word in ID_WORDS:
            return ID_WORDS[word]
    return None


def vertical_of(types: Iterable[str], entity_id: str) -> str | None:
    """The vertical of an entity with ``types`` (expanded or short), or None if none fits."""
    names = [short_name(t) for t in types]
    if any(n in DEVICE_TYPES for n in names):
        return None
    if any(n in ID_ONLY_TYPES for n in names):
        return _id_vertical(_id_words(entity_id))
    known = [n for n in names if n in TYPE_VERTICALS]
    if known and not all(n in SHARED_TYPES for n in known):
        return TYPE_VERTICALS[next(n for n in known if n not in SHARED_TYPES)]
    by_id = _id_vertical(_id_words(entity_id))
    if by_id is not None:
        return by_id
    return TYPE_VERTICALS[known[0]] if known else None


def _number(values: Mapping[str, Any], *names: str) -> float | None:
    for name in names:
        value = values.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def _fraction(value: float) -> float:
    """A level given as 0..1 or as a percentage, as 0..1."""
    return value / 100 if value > 1 else value


def _above(value: float | None, warn: float, alert: float) -> str | None:
    if value is None:
        return None
    return ALERT if value >= alert else WARN if value >= warn else OK


def state_of(types: Iterable[str], values: Mapping[str, Any]) -> str:
    """The state of an entity from its latest values (short attribute names): ok, warn, alert,
    busy (an occupied parking spot) or unknown."""
    names = {short_name(t) for t in types}
    for flag in ("alert", "alarm", "anomaly"):
        if values.get(flag) is True:
            return ALERT
    status = values.get("status")
    if "ParkingSpot" in names and status == "occupied":
        return BUSY
    if "Streetlight" in names and isinstance(status, str) and status != "ok":
        return ALERT
    checks = [
        _above(_number(values, "co2", "CO2"), 1000, 1500),
        _above(_number(values, "no2", "NO2"), 100, 200),
        _above(_number(values, "pm10"), 40, 50),
        _above(_number(values, "pm25"), 20, 25),
        _above(_number(values, "LAeq", "LAS", "LAmax"), 65, 70),
    ]
    fill = _number(values, "fillingLevel")
    if fill is not None:
        checks.append(_above(_fraction(fill), 0.75, 0.9))
    moisture = _number(values, "soilMoistureVwc", "soilMoisture", "moisture")
    if moisture is not None:
        level = _fraction(moisture)
        checks.append(ALERT if level < 0.12 else WARN if level < 0.18 else OK)
    inactive = _number(values, "inactivityHours", "hoursWithoutMotion")
    if inactive is not None:
        checks.append(_above(inactive, 6, 10))
    known = [c for c in checks if c is not None]
    if ALERT in known:
        return ALERT
    if WARN in known:
        return WARN
    return OK if known or values else UNKNOWN
