"""Device profiles: templates for common sensor kinds, so adding a device means picking one.

Each profile names the Smart Data Models type its devices feed, the @context that defines that
type's attribute names, and how each measurement becomes an attribute (UN/CEFACT unit codes).

>>> PROFILES["classroom"].entity_type
'IndoorEnvironmentObserved'
"""

from __future__ import annotations

from dataclasses import dataclass


def sdm_context(domain: str) -> str:
    """The Smart Data Models @context URL of a domain (Burgo ships a copy; never fetched)."""
    return f"https://raw.githubusercontent.com/smart-data-models/dataModel.{domain}/master/context.jsonld"


@dataclass(frozen=True, slots=True)
class MeasurementSpec:
    """One line of a profile's mapping: measurement -> attribute, unit, scale and offset."""

    measurement: str
    attribute: str
    unit_code: str | None = None
    scale: float = 1.0
    offset: float = 0.0


@dataclass(frozen=True, slots=True)
class Profile:
    """A template for one kind of sensor."""

    name: str
    description: str
    entity_type: str
    context: str
    mapping: tuple[MeasurementSpec, ...]
    interval: int = 900
    decoder: str | None = None


M = MeasurementSpec
ENVIRONMENT = sdm_context("Environment")

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "air-quality",
            "Outdoor air-quality station: particulates, NO2, O3, temperature, humidity",
            "AirQualityObserved",
            ENVIRONMENT,
            (
                M("pm25", "pm25", "GQ"),
                M("pm10", "pm10", "GQ"),
                M("no2", "NO2", "GQ"),
                M("o3", "O3", "GQ"),
                M("temperature", "temperature", "CEL"),
                M("humidity", "relativeHumidity", "C62", scale=0.01),
            ),
        ),
        Profile(
            "noise",
            "Sound level meter: equivalent and maximum A-weighted levels",
            "NoiseLevelObserved",
            ENVIRONMENT,
            (M("laeq", "LAeq", "2N"), M("lamax", "LAmax", "2N"), M("las", "LAS", "2N")),
        ),
        Profile(
            "parking",
            "On-street parking spot sensor: free or occupied",
            "ParkingSpot",
            sdm_context("Parking"),
            (M("status", "status"),),
            interval=3600,
        ),
        Profile(
            "waste-fill",
            "Waste container fill-level sensor (fill in percent becomes a 0..1 fillingLevel)",
            "WasteContainer",
            sdm_context("WasteManagement"),
            (M("fill", "fillingLevel", "C62", scale=0.01), M("temperature", "temperature", "CEL")),
            interval=3600,
        ),
        Profile(
            "soil-moisture",
            "Soil probe: volumetric water content, soil temperature, conductivity",
            "AgriParcelRecord",
            sdm_context("Agrifood"),
            (
                M("moisture", "soilMoistureVwc", "C62", scale=0.01),
                M("soil_temperature", "soilTemperature", "CEL"),
                M("conductivity", "soilMoistureEc", "H61"),
            ),
            interval=1800,
        ),
        Profile(
            "weather",
            "Weather station: temperature, humidity, pressure, wind, rain",
            "WeatherObserved",
            sdm_context("Weather"),
            (
                M("temperature", "temperature", "CEL"),
                M("humidity", "relativeHumidity", "C62", scale=0.01),
                M("pressure", "atmosphericPressure", "A97"),
                M("wind_speed", "windSpeed", "MTS"),
                M("rain", "precipitation", "MMT"),
            ),
            interval=600,
        ),
        Profile(
            "energy-meter",
            "Electricity meter: cumulative energy and power factor",
            "SmartMeteringObservation",
            sdm_context("Device"),
            (M("energy", "totalConsumption", "KWH"), M("power_factor", "powerFactor")),
        ),
        Profile(
            "classroom",
            "Classroom comfort sensor: CO2, temperature, humidity",
            "IndoorEnvironmentObserved",
            ENVIRONMENT,
            (
                M("co2", "co2", "59"),
                M("temperature", "temperature", "CEL"),
                M("humidity", "relativeHumidity", "C62", scale=0.01),
            ),
            interval=300,
        ),
    )
}
