"""The town's clock and sky: local time in Portugal, the sun, and the weather at any moment.

Times are seconds since the Unix epoch (UTC). The weather is a pure function of the seed and
the time: a seasonal mean, a daily cycle, slow synoptic swings and rainy spells, so every sensor
that depends on it (air quality, soil, buildings) tells the same story.

>>> sky = Climate(seed=1, latitude=40.14, longitude=-7.50)
>>> noon, night = 1_767_225_600 + 12.5 * 3600, 1_767_225_600 + 2 * 3600  # 2026-01-01
>>> sky.sun_elevation(noon) > 20 > -20 > sky.sun_elevation(night)
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from burgo.sim.noise import signed, smooth, unit

DAY = 86400.0
HOUR = 3600.0


def _last_sunday(year: int, month: int) -> datetime:
    day = datetime(year, month + 1, 1, 1, tzinfo=UTC) - timedelta(days=1)
    return day - timedelta(days=(day.weekday() + 1) % 7)


@lru_cache(maxsize=64)
def _summer_time(year: int) -> tuple[float, float]:
    # EU rule: from the last Sunday of March to the last Sunday of October, 01:00 UTC.
    return _last_sunday(year, 3).timestamp(), _last_sunday(year, 10).timestamp()


@lru_cache(maxsize=8192)
def _summer_time_of_day(day: int) -> tuple[float, float]:
    return _summer_time(datetime.fromtimestamp(day * DAY, UTC).year)


def utc_offset(t: float) -> float:
    """Portugal's offset from UTC in seconds at ``t`` (WET, WEST in summer)."""
    start, end = _summer_time_of_day(int(t // DAY))
    return HOUR if start <= t < end else 0.0


@dataclass(frozen=True, slots=True)
class LocalTime:
    """A moment as the town's people see it."""

    hour: float
    """Hours since local midnight, fractional."""
    weekday: int
    """Monday 0 to Sunday 6."""
    day: int
    """Local days since the epoch (a stable day number)."""

    @property
    def weekend(self) -> bool:
        """Saturday or Sunday."""
        return self.weekday >= 5


def local(t: float) -> LocalTime:
    """The local time of ``t``."""
    lt = t + utc_offset(t)
    day = math.floor(lt / DAY)
    return LocalTime(hour=(lt - day * DAY) / HOUR, weekday=(day + 3) % 7, day=day)


def local_midnight(day: int, t_hint: float) -> float:
    """The UTC epoch seconds of local midnight starting local day ``day``."""
    return day * DAY - utc_offset(t_hint)


@dataclass(frozen=True, slots=True)
class Weather:
    """The weather at one moment."""

    temperature: float
    """Air temperature, °C."""
    humidity: float
    """Relative humidity, percent."""
    pressure: float
    """Atmospheric pressure, hPa."""
    wind_speed: float
    """Wind speed, m/s."""
    rain: float
    """Precipitation rate, mm/h."""


class Climate:
    """The sky over one town: sun and weather as pure functions of time."""

    def __init__(self, seed: int, latitude: float, longitude: float) -> None:
        self.seed = seed
        self.latitude = latitude
        self.longitude = longitude
        self._daily_rain: dict[int, float] = {}

    def sun_elevation(self, t: float) -> float:
        """The sun's elevation above the horizon in degrees."""
        doy = (t / DAY) % 365.2422
        decl = math.radians(23.44) * math.sin(2 * math.pi * (doy - 80.0) / 365.2422)
        solar_hours = (t % DAY) / HOUR + self.longitude / 15.0
        hour_angle = math.radians(15.0 * (solar_hours - 12.0))
        lat = math.radians(self.latitude)
        sin_h = math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(
            hour_angle
        )
        return math.degrees(math.asin(max(-1.0, min(1.0, sin_h))))

    def is_dark(self, t: float) -> bool:
        """Whether street lights should be on (the sun below the horizon, dusk included)."""
        return self.sun_elevation(t) < -1.0

    def wetness(self, t: float) -> float:
        """How rainy the weather pattern is, about -1 (dry, high pressure) to 1 (a front)."""
        season = math.cos(2 * math.pi * ((t / DAY) % 365.2422 - 15.0) / 365.2422)  # 1 in Jan
        return 0.75 * smooth(self.seed, "front", t / (1.7 * DAY)) + 0.25 * season

    def rain(self, t: float) -> float:
        """Precipitation rate in mm/h: showers while a front passes."""
        excess = self.wetness(t) - 0.35
        if excess <= 0:
            return 0.0
        burst = 0.5 + 0.5 * smooth(self.seed, "shower", t / (2.5 * HOUR))
        return round(max(0.0, excess * 9.0 * burst), 1)

    def daily_rain(self, day: int) -> float:
        """Millimetres of rain on UTC day ``day`` (hourly sums, cached)."""
        found = self._daily_rain.get(day)
        if found is None:
            found = sum(self.rain(day * DAY + h * HOUR) for h in range(24))
            self._daily_rain[day] = found
        return found

    def temperature(self, t: float) -> float:
        """Air temperature in °C: season, day and night, weather swings, cooler under rain."""
        doy = (t / DAY) % 365.2422
        mean = 15.0 + 8.5 * math.cos(2 * math.pi * (doy - 205.0) / 365.2422)
        amplitude = 6.5 + 2.0 * math.cos(2 * math.pi * (doy - 205.0) / 365.2422)
        solar_hours = (t % DAY) / HOUR + self.longitude / 15.0
        daily = math.cos(2 * math.pi * (solar_hours - 15.0) / 24.0)
        wet = self.wetness(t)
        cloud = max(0.0, wet) * 0.6
        swing = 3.0 * smooth(self.seed, "synoptic", t / (3.0 * DAY))
        return mean + swing + amplitude * (1.0 - cloud) * daily - 1.5 * max(0.0, wet)

    def weather(self, t: float) -> Weather:
        """Everything a weather station measures at ``t``."""
        temperature = self.temperature(t)
        wet = self.wetness(t)
        rain = self.rain(t)
        solar_hours = (t % DAY) / HOUR + self.longitude / 15.0
        daily = math.cos(2 * math.pi * (solar_hours - 15.0) / 24.0)
        humidity = 68.0 + 18.0 * wet - 14.0 * daily + (12.0 if rain > 0 else 0.0)
        wind = 2.2 + 1.6 * max(0.0, wet) + 1.2 * smooth(self.seed, "wind", t / (5 * HOUR))
        wind += 0.4 * daily + 0.3 * signed(self.seed, "gust", int(t // 600))
        return Weather(
            temperature=round(temperature, 1),
            humidity=round(min(100.0, max(20.0, humidity)), 1),
            pressure=round(1016.0 - 11.0 * wet + 0.8 * signed(self.seed, "p", int(t // 3600)), 1),
            wind_speed=round(max(0.0, wind), 1),
            rain=rain,
        )

    def chance(self, key: str, step: int) -> float:
        """A uniform draw in [0, 1) tied to this town's seed."""
        return unit(self.seed, key, step)
