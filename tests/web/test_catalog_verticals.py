"""Entities sort into the five verticals and take a state from their latest values."""

from __future__ import annotations

import pytest

from burgo.verticals.catalog import state_of, vertical_of

SDM = "https://smartdatamodels.org/dataModel.Environment/"


@pytest.mark.parametrize(
    ("types", "entity_id", "vertical"),
    [
        ((SDM + "AirQualityObserved",), "urn:ngsi-ld:AirQualityObserved:praca", "city"),
        (("WasteContainer",), "urn:ngsi-ld:WasteContainer:17", "city"),
        (
            (SDM + "IndoorEnvironmentObserved",),
            "urn:ngsi-ld:IndoorEnvironmentObserved:5b",
            "education",
        ),
        (
            ("IndoorEnvironmentObserved",),
            "urn:ngsi-ld:IndoorEnvironmentObserved:care-home-1",
            "care",
        ),
        (
            ("IndoorEnvironmentObserved",),
            "urn:ngsi-ld:IndoorEnvironmentObserved:fablab-main",
            "enterprise",
        ),
        (("WeatherObserved",), "urn:ngsi-ld:WeatherObserved:quinta", "agro"),
        (
            ("IndoorEnvironmentObserved",),
            "urn:ngsi-ld:IndoorEnvironmentObserved:escola-2",
            "education",
        ),
        (("IndoorEnvironmentObserved",), "urn:ngsi-ld:IndoorEnvironmentObserved:lar-3", "care"),
        (("WeatherObserved",), "urn:ngsi-ld:WeatherObserved:city-hall", "city"),
        (("AgriParcelRecord",), "urn:ngsi-ld:AgriParcelRecord:care-farm", "agro"),
        (("SmartMeteringObservation",), "urn:ngsi-ld:SmartMeteringObservation:hub", "enterprise"),
        (("Device",), "urn:ngsi-ld:Device:eco-17", None),
        (("DeviceMeasurement",), "urn:ngsi-ld:DeviceMeasurement:care-h7-motion", "care"),
        (("DeviceMeasurement",), "urn:ngsi-ld:DeviceMeasurement:pump-3", None),
        (("Thing",), "urn:ngsi-ld:Thing:1", None),
    ],
)
def test_vertical_of(types: tuple[str, ...], entity_id: str, vertical: str | None) -> None:
    assert vertical_of(types, entity_id) == vertical


@pytest.mark.parametrize(
    ("types", "values", "state"),
    [
        (("WasteContainer",), {"fillingLevel": 0.95}, "alert"),
        (("WasteContainer",), {"fillingLevel": 80}, "warn"),
        (("WasteContainer",), {"fillingLevel": 0.3}, "ok"),
        (("IndoorEnvironmentObserved",), {"co2": 1600}, "alert"),
        (("IndoorEnvironmentObserved",), {"co2": 700, "temperature": 21}, "ok"),
        (("AgriParcelRecord",), {"soilMoistureVwc": 0.09}, "alert"),
        (("ParkingSpot",), {"status": "occupied"}, "busy"),
        (("ParkingSpot",), {"status": "free"}, "ok"),
        (("Streetlight",), {"status": "defectiveLamp"}, "alert"),
        (("HomeCareKit",), {"hoursWithoutMotion": 11}, "alert"),
        (("Thing",), {}, "unknown"),
    ],
)
def test_state_of(types: tuple[str, ...], values: dict[str, object], state: str) -> None:
    assert state_of(types, values) == state
