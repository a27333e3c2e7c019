"""The demo town's generator: deterministic, with daily and weekly rhythms, weather behind the
readings that depend on it, and the planted anomalies where a user will look for them."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime

import pytest

from burgo.ingest.decoders import decode
from burgo.sim.climate import DAY, HOUR, local
from burgo.sim.sensors import WILTING_POINT, Sensors
from burgo.sim.town import KINDS, build_town, pseudonym
from burgo.sim.wire import PROFILE_OF, cayenne_lpp, device_values, registration
from burgo.verticals.catalog import VERTICALS, vertical_of

# A Wednesday, 17:00 in Fundão (WET = UTC in November): lessons over, the evening rush on.
ANCHOR = datetime(2026, 11, 18, 17, 0, tzinfo=UTC).timestamp()
TOWN = build_town(seed=42, size="full")


@pytest.fixture(scope="module")
def sensors() -> Sensors:
    return Sensors(TOWN, anchor=ANCHOR)


def at(day_offset: float, hour: float) -> float:
    """A local time ``day_offset`` days from the anchor's midnight (negative: before)."""
    midnight = ANCHOR - 17 * HOUR
    return midnight + day_offset * DAY + hour * HOUR


def test_the_same_seed_gives_the_same_town_and_readings() -> None:
    again = build_town(seed=42, size="full")
    assert again == TOWN
    one, two = Sensors(TOWN, ANCHOR), Sensors(again, ANCHOR)
    for device in TOWN.devices[::7]:
        for k in range(0, 96, 11):
            t = ANCHOR - k * 900
            assert one.read(device, t) == two.read(device, t)
    other = Sensors(build_town(seed=7, size="full"), ANCHOR)
    aq = [one.read(TOWN.device("aq-02"), ANCHOR - k * 900)["no2"] for k in range(96)]
    assert aq != [
        other.read(other.town.device("aq-02"), ANCHOR - k * 900)["no2"] for k in range(96)
    ]


def test_a_town_has_every_kind_of_sensor_in_every_vertical() -> None:
    assert {d.kind for d in TOWN.devices} == set(KINDS)
    assert 140 <= len(TOWN.devices) <= 170
    small = build_town(seed=42, size="small")
    assert {d.kind for d in small.devices} == set(KINDS)
    assert {d.anomaly for d in small.devices} >= {"full", "stuffy", "no-motion", "dry"}
    types = {(registration(d).get("entityType") or d.kind, d.id) for d in TOWN.devices}
    profiles = {
        "air-quality": "AirQualityObserved",
        "noise": "NoiseLevelObserved",
        "parking": "ParkingSpot",
        "waste-fill": "WasteContainer",
        "soil-moisture": "AgriParcelRecord",
        "weather": "WeatherObserved",
        "energy-meter": "SmartMeteringObservation",
        "classroom": "IndoorEnvironmentObserved",
    }
    entities = {(profiles.get(t, t), f"urn:ngsi-ld:{profiles.get(t, t)}:{d}") for t, d in types}
    assert {vertical_of((t,), e) for t, e in entities} == set(VERTICALS)
    assert set(PROFILE_OF) <= set(profiles)


def test_care_homes_go_by_pseudonyms_only() -> None:
    homes = [d for d in TOWN.devices if d.kind.startswith("care-")]
    assert len({d.id.split("-")[1] for d in homes}) == 10
    for d in homes:
        assert d.id.split("-")[1] in {pseudonym(42, i) for i in range(1, 11)}
        assert d.static == {}
        assert d.name.startswith(f"Casa {d.id.split('-')[1]}")
        # Located to about 100 m: three decimals.
        assert round(d.latitude, 3) == d.latitude and round(d.longitude, 3) == d.longitude


def test_classrooms_fill_with_co2_during_weekday_lessons(sensors: Sensors) -> None:
    room = TOWN.device("class-2-1b")
    lesson = [sensors.read(room, at(-d, 12.5))["co2"] for d in (1, 2, 5, 6)]  # Tue Mon Fri Thu
    night = [sensors.read(room, at(-d, 3.0))["co2"] for d in (1, 2, 5, 6)]
    weekend = [sensors.read(room, at(-d, 12.5))["co2"] for d in (3, 4)]  # Sun Sat
    assert [local(at(-d, 12)).weekday for d in (3, 4)] == [6, 5]
    assert min(lesson) > 700 and max(lesson) < 1400
    assert max(night) < 520 and max(weekend) < 520


def test_traffic_pollution_peaks_at_the_rush_hours(sensors: Sensors) -> None:
    days = [-1, -2, -5, -6, -7, -8]
    rush = statistics.mean(
        sensors.read(TOWN.device(f"aq-0{i}"), at(d, 8.5))["no2"] for d in days for i in range(1, 6)
    )
    night = statistics.mean(
        sensors.read(TOWN.device(f"aq-0{i}"), at(d, 3.5))["no2"] for d in days for i in range(1, 6)
    )
    assert rush > 2 * night
    loud = statistics.mean(sensors.read(TOWN.device("noise-01"), at(d, 18.3))["laeq"] for d in days)
    quiet = statistics.mean(sensors.read(TOWN.device("noise-01"), at(d, 3.0))["laeq"] for d in days)
    assert loud - quiet > 10


def test_parking_is_busier_on_weekday_mornings_than_at_night(sensors: Sensors) -> None:
    spots = [d for d in TOWN.devices if d.kind == "parking"]

    def occupancy(hour: float) -> float:
        taken = [
            sensors.read(s, at(d, hour))["status"] == "occupied"
            for s in spots
            for d in (-1, -2, -5, -6)
        ]
        return sum(taken) / len(taken)

    assert occupancy(11.0) > occupancy(4.0) + 0.3


def test_street_lights_follow_the_sun(sensors: Sensors) -> None:
    lamp = TOWN.device("light-01")
    assert sensors.read(lamp, at(-1, 13.0))["power_state"] == "off"
    night = sensors.read(lamp, at(-1, 22.0))
    assert night["power_state"] == "on" and night["power"] > 40
    assert sensors.read(lamp, at(-1, 3.0))["power"] < night["power"]  # dimmed after 1 a.m.


def test_energy_meters_count_up_more_on_working_days(sensors: Sensors) -> None:
    meter = TOWN.device("energy-hub-1")
    readings = [sensors.read(meter, ANCHOR - k * 3600)["energy"] for k in range(24 * 14)]
    assert readings == sorted(readings, reverse=True)  # going back in time, never more

    def used(day: int) -> float:
        return (
            sensors.read(meter, at(day + 1, 0))["energy"]
            - sensors.read(meter, at(day, 0))["energy"]
        )

    assert used(-2) > 2 * used(-3)  # Monday against Sunday


def test_waste_fills_up_and_is_emptied_on_collection_days(sensors: Sensors) -> None:
    bin_ = TOWN.device("bin-05")
    monday = -2
    before = sensors.read(bin_, at(monday, 5.5))["fill"]
    after = sensors.read(bin_, at(monday, 6.5))["fill"]
    assert before > 40 and after < 15


def test_soil_moisture_rises_with_rain(sensors: Sensors) -> None:
    climate = sensors.climate
    days = [int(ANCHOR // DAY) - k for k in range(2, 40)]
    wettest = max(days, key=climate.daily_rain)
    assert climate.daily_rain(wettest) > 5  # a November month has rain
    parcel = next(
        d
        for d in TOWN.devices
        if d.kind == "soil-moisture" and not d.anomaly and not d.params["irrigated"]
    )
    before = sensors.read(parcel, (wettest - 1) * DAY)["moisture"]
    after = sensors.read(parcel, (wettest + 1) * DAY)["moisture"]
    assert after > before + 2


def test_the_planted_anomalies_show_at_the_anchor(sensors: Sensors) -> None:
    bins = {d.id: sensors.read(d, ANCHOR)["fill"] for d in TOWN.devices if d.kind == "waste-fill"}
    assert bins["bin-02"] >= 95
    assert max(v for k, v in bins.items() if k != "bin-02") < 95

    rooms = [d for d in TOWN.devices if d.kind == "classroom"]
    peak = {d.id: max(sensors.read(d, at(0, h / 4))["co2"] for h in range(32, 70)) for d in rooms}
    stuffy = next(d.id for d in rooms if d.anomaly == "stuffy")
    assert peak[stuffy] > 1500
    assert max(v for k, v in peak.items() if k != stuffy) < 1300

    motion = [d for d in TOWN.devices if d.kind == "care-motion"]
    quiet = next(d for d in motion if d.anomaly == "no-motion")
    since = sensors.quiet_since()
    assert since == at(-1, 7.0)  # the anchor (17:00) comes before 18:00: the morning before
    window = [since + k * 900 for k in range(1, 40)]
    assert all(sensors.read(quiet, t)["motion"] == 0 for t in window)
    door = TOWN.device(quiet.id.replace("motion", "door"))
    assert all(sensors.read(door, t)["door"] == 0 for t in window)
    for other in motion:
        if other is not quiet:
            assert sum(sensors.read(other, t)["motion"] for t in window) > 20
    assert sum(sensors.read(quiet, at(-2, 12.0) + k * 900)["motion"] for k in range(8)) > 0

    parcels = {
        d.id: sensors.read(d, ANCHOR)["moisture"] for d in TOWN.devices if d.kind == "soil-moisture"
    }
    assert parcels["soil-02"] < WILTING_POINT
    assert min(v for k, v in parcels.items() if k != "soil-02") > 18


def test_raw_lorawan_payloads_decode_to_the_readings() -> None:
    bin_ = TOWN.device("bin-03")
    reading = {"fill": 83, "temperature": -4.2}
    values = device_values(bin_, reading)
    assert decode("cayenne-lpp", cayenne_lpp(values), 2) == {
        "percentage_1": 83,
        "temperature_2": -4.2,
    }
