"""The five verticals (city, care, agro, enterprise, education) and which entity types belong to
each: one table, shared by the dashboard (map layers) and the simulator.

>>> vertical_of("WasteContainer"), vertical_of("https://smartdatamodels.org/dataModel.Agrifood/AgriParcelRecord")
('city', 'agro')
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Vertical:
    """One of the mission's five areas, with its names in English and Portuguese."""

    key: str
    name_en: str
    name_pt: str
    types: tuple[str, ...]


VERTICALS: tuple[Vertical, ...] = (
    Vertical(
        "city",
        "City",
        "Cidade",
        (
            "AirQualityObserved",
            "NoiseLevelObserved",
            "ParkingSpot",
            "WasteContainer",
            "Streetlight",
        ),
    ),
    Vertical("care", "Care", "Cuidados", ("DeviceMeasurement",)),
    Vertical("agro", "Agriculture", "Agricultura", ("AgriParcelRecord", "WeatherObserved")),
    Vertical("enterprise", "Enterprise", "Empresas", ("SmartMeteringObservation",)),
    Vertical("education", "Education", "Educação", ("IndoorEnvironmentObserved",)),
)
"""The verticals in the order dashboards list them."""

TYPE_VERTICAL: dict[str, str] = {t: v.key for v in VERTICALS for t in v.types}
"""Entity type (short name) -> vertical key."""


def short_type(entity_type: str) -> str:
    """The short name of a type given as a term or an expanded IRI."""
    return entity_type.rstrip("/#").rsplit("/", 1)[-1].rsplit("#", 1)[-1]


def vertical_of(entity_type: str) -> str | None:
    """The vertical an entity type belongs to (term or IRI), or None for other types."""
    return TYPE_VERTICAL.get(short_type(entity_type))
