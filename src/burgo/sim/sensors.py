"""What each simulated sensor reads at a moment: pure functions of the town, its seed, an anchor
time (when the planted anomalies come to a head, usually the start of the simulation) and ``t``.

Readings are the device's own measurements (before Burgo's mapping): percent for humidity and
fill level, µg/m³, dB(A), ppm, kWh.

>>> from burgo.sim.town import build_town
>>> town = build_town(seed=42, size="small")
>>> sensors = Sensors(town, anchor=1_767_268_800.0)
>>> sensors.read(town.device("class-1-1a"), 1_767_268_800.0 - 3600) == sensors.read(
...     town.device("class-1-1a"), 1_767_268_800.0 - 3600)
True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from burgo.sim.climate import DAY, HOUR, Climate, local, local_midnight
from burgo.sim.noise import signed, smooth, unit
from burgo.sim.town import SimDevice, Town

OUTDOOR_CO2 = 420.0
MAX_IDLE_WINDOWS = 432
"""How far back (5-minute windows, 36 hours) a motion sensor remembers its last detection."""
BATTERY_KINDS = frozenset(
    {"parking", "soil-moisture", "care-motion", "care-door", "care-temperature", "classroom"}
)
"""Sensors on batteries, which report their level with each reading."""
STUFFY_LEAK = 2.0
"""L/s of outside air the stuffy classroom gets when empty: windows shut, ventilation off."""
WILTING_POINT = 12.0
"""Volumetric water content (%) below which the orchard's roots cannot draw water."""

Reading = dict[str, Any]


def _bump(hour: float, centre: float, width: float) -> float:
    return math.exp(-(((hour - centre) / width) ** 2))


def traffic(t: float) -> float:
    """Road traffic, 0 (night) to about 1 (weekday rush hour)."""
    lt = local(t)
    h = lt.hour
    if lt.weekend:
        return 0.08 + 0.45 * _bump(h, 12.5, 3.5) + 0.3 * _bump(h, 18.0, 2.5)
    return (
        0.06
        + 0.9 * _bump(h, 8.5, 1.1)
        + 0.45 * _bump(h, 13.0, 1.5)
        + 0.95 * _bump(h, 18.3, 1.4)
        + 0.25 * _bump(h, 11.0, 3.0)
    )


def in_lesson(t: float) -> bool:
    """Whether classes are on: weekdays 08:30-13:00 and 14:00-17:30, with a break at 10:15."""
    lt = local(t)
    h = lt.hour
    if lt.weekend:
        return False
    return (8.5 <= h < 10.25) or (10.5 <= h < 13.0) or (14.0 <= h < 17.5)


class Sensors:
    """The readings of a town's sensors at any moment.

    ``anchor`` is the moment the planted anomalies lead up to: the container has not been
    emptied for days by then, the classroom is stuffy during that week's lessons, one home has
    seen no movement since that morning, one parcel has been drying since its irrigation failed.
    """

    def __init__(self, town: Town, anchor: float) -> None:
        self.town = town
        self.seed = town.seed
        self.anchor = anchor
        self.climate = Climate(town.seed, town.latitude, town.longitude)
        self._co2_days: dict[tuple[str, int], list[float]] = {}
        self._energy_days: dict[tuple[str, int], float] = {}
        self._energy_totals: dict[str, dict[int, float]] = {}
        self._kinds: dict[str, Callable[[SimDevice, float], Reading]] = {
            "air-quality": self._air,
            "noise": self._noise,
            "parking": self._parking,
            "waste-fill": self._waste,
            "streetlight": self._streetlight,
            "care-motion": self._motion,
            "care-door": self._door,
            "care-temperature": self._home_temperature,
            "soil-moisture": self._soil,
            "weather": self._weather,
            "energy-meter": self._energy,
            "classroom": self._classroom,
        }

    def read(self, device: SimDevice, t: float) -> Reading:
        """The measurements ``device`` takes at ``t`` (epoch seconds, UTC)."""
        reading = self._kinds[device.kind](device, t)
        if device.kind in BATTERY_KINDS:
            reading["battery"] = self._battery(device, t)
        return reading

    def _battery(self, d: SimDevice, t: float) -> int:
        """Percent left in a battery-powered sensor: each its own age, draining slowly."""
        level = 98.0 - 60.0 * unit(self.seed, d.id, 77) - 0.02 * (t - self.anchor) / DAY
        return max(1, min(100, round(level)))

    def quiet_since(self) -> float:
        """When the home with no motion last saw anyone: the morning of the anchor day (07:00),
        or the day before when the anchor falls before 18:00 (so eleven hours at least: past
        the ten hours that make inactivity an alert, whatever the time the demo starts)."""
        lt = local(self.anchor)
        day = lt.day if lt.hour >= 18 else lt.day - 1
        return local_midnight(day, self.anchor) + 7 * HOUR

    # -- city ----------------------------------------------------------------------------------

    def _air(self, d: SimDevice, t: float) -> Reading:
        w = self.climate.weather(t)
        road = traffic(t) * d.params.get("traffic", 1.0)
        dispersion = 1.0 / (1.0 + 0.45 * w.wind_speed)
        washout = 0.55 if w.rain > 0 else 1.0
        lt = local(t)
        heating = max(0.0, 15.0 - w.temperature) / 10.0
        stoves = heating * (_bump(lt.hour, 20.5, 2.2) + 0.4 * _bump(lt.hour, 7.5, 1.2))
        jitter = 1.0 + 0.12 * signed(self.seed, d.id, int(t // 900))
        pm25 = (4.0 + 9.0 * stoves * dispersion * 2 + 5.0 * road * dispersion) * washout * jitter
        pm10 = pm25 * 1.55 + 3.0 * road * washout
        no2 = (5.0 + 42.0 * road * dispersion) * jitter
        sun = max(0.0, self.climate.sun_elevation(t)) / 60.0
        o3 = max(2.0, 38.0 + 45.0 * sun - 0.55 * no2 + 6.0 * smooth(self.seed, "o3", t / DAY))
        return {
            "pm25": round(pm25, 1),
            "pm10": round(pm10, 1),
            "no2": round(no2, 1),
            "o3": round(o3, 1),
            "temperature": round(w.temperature + 0.6, 1),
            "humidity": round(w.humidity, 1),
        }

    def _noise(self, d: SimDevice, t: float) -> Reading:
        road = traffic(t)
        laeq = 39.0 + 25.0 * road + d.params.get("offset", 0.0)
        laeq += 1.5 * signed(self.seed, d.id, int(t // 300))
        if self.climate.rain(t) > 0:
            laeq += 2.0
        lamax = laeq + 9.0 + 7.0 * unit(self.seed, d.id + "max", int(t // 300))
        las = laeq + 1.2 * signed(self.seed, d.id + "s", int(t // 300))
        return {"laeq": round(laeq, 1), "lamax": round(lamax, 1), "las": round(las, 1)}

    def _parking(self, d: SimDevice, t: float) -> Reading:
        lt = local(t)
        h = lt.hour
        if lt.weekend:
            busy = 0.2 + 0.5 * _bump(h, 12.0, 3.0) + 0.35 * _bump(h, 21.0, 2.0)
        else:
            busy = 0.25 + 0.65 * _bump(h, 11.0, 3.5) + 0.4 * _bump(h, 16.5, 2.0)
        busy = min(0.97, busy * d.params.get("demand", 1.0))
        slot = int(t // 2400)  # a car stays a while: the state holds for 40 minutes at least
        taken = unit(self.seed, d.id, slot) < busy
        return {"status": "occupied" if taken else "free"}

    def _last_collection(self, d: SimDevice, t: float) -> float:
        # Collections on Mondays and Thursdays at 06:00 local; the full bin's last one (always
        # within the 4 days before the anchor) was missed.
        lt = local(t)
        day = lt.day
        missed_from = self.anchor - 4 * DAY
        while True:
            midnight = local_midnight(day, t)
            weekday = (day + 3) % 7
            moment = midnight + 6 * HOUR
            missed = d.anomaly == "full" and moment >= missed_from
            if weekday in (0, 3) and moment <= t and not missed:
                return moment
            day -= 1

    def _waste(self, d: SimDevice, t: float) -> Reading:
        since = (t - self._last_collection(d, t)) / DAY
        rate = d.params.get("rate", 25.0)
        fill = 3.0 + rate * since * (1.0 + 0.08 * signed(self.seed, d.id, int(t // DAY)))
        fill = min(100.0, max(0.0, fill + 1.5 * signed(self.seed, d.id, int(t // 3600))))
        temperature = (
            self.climate.temperature(t) + 1.5 * max(0.0, self.climate.sun_elevation(t)) / 30
        )
        return {"fill": round(fill), "temperature": round(temperature, 1)}

    def _streetlight(self, d: SimDevice, t: float) -> Reading:
        dark = self.climate.is_dark(t)
        watts = d.params.get("watts", 70.0)
        # The controller keeps reporting a failed lamp, by day too, until it is repaired.
        broken = d.anomaly == "lamp-fault" and t >= self.anchor - 3 * DAY
        if not dark:
            return {
                "power_state": "off",
                "power": 0.4,
                "status": "defectiveLamp" if broken else "ok",
            }
        hour = local(t).hour
        dimmed = 0.5 if 1.0 <= hour < 6.0 else 1.0  # the town dims its lamps after 1 a.m.
        if broken:
            return {"power_state": "on", "power": 0.0, "status": "defectiveLamp"}
        power = watts * dimmed * (1.0 + 0.02 * signed(self.seed, d.id, int(t // 900)))
        return {"power_state": "on", "power": round(power, 1), "status": "ok"}

    # -- care ----------------------------------------------------------------------------------

    def _activity(self, d: SimDevice, t: float) -> float:
        """How likely the person moves in a given minute."""
        lt = local(t)
        h = lt.hour
        wake = d.params.get("wake", 7.5)
        if h < wake or h >= 23.0:
            return 0.015  # a trip to the bathroom now and then
        return (
            0.12
            + 0.25 * _bump(h, wake + 1.0, 1.0)
            + 0.2 * _bump(h, 13.0, 1.0)
            + 0.15 * _bump(h, 19.5, 1.5)
        )

    def _quiet(self, d: SimDevice, t: float) -> bool:
        return d.anomaly == "no-motion" and t >= self.quiet_since()

    def _detections(self, d: SimDevice, window: int) -> int:
        """PIR detections in the 15 minutes before the end of 5-minute ``window``."""
        t = window * 300.0
        if self._quiet(d, t):
            return 0
        p = self._activity(d, t)
        mean = 15.0 * p
        spread = math.sqrt(15.0 * p * (1.0 - p))
        count = mean + 1.7 * spread * signed(self.seed, d.id, window)
        return max(0, min(15, round(count)))

    def _idle_hours(self, d: SimDevice, t: float) -> float:
        """Hours since the sensor last saw movement (it counts them as it goes, like the kits
        that report time since the last event); a day and a half at most."""
        window = int(t // 300)
        for back in range(MAX_IDLE_WINDOWS):
            if self._detections(d, window - back) > 0:
                return round(max(0.0, t - (window - back) * 300.0) / HOUR, 2)
        return round(MAX_IDLE_WINDOWS * 300.0 / HOUR, 2)

    def _motion(self, d: SimDevice, t: float) -> Reading:
        """PIR detections in the 15 minutes before ``t``, and the hours since the last one."""
        return {
            "motion": self._detections(d, int(t // 300)),  # the count changes every 5 minutes
            "idle": self._idle_hours(d, t),
        }

    def _door(self, d: SimDevice, t: float) -> Reading:
        """Front-door openings in the 15 minutes before ``t``."""
        if self._quiet(d, t):
            return {"door": 0}
        lt = local(t)
        chance = 0.03
        if not lt.weekend and 10.0 <= lt.hour < 10.5:
            chance = 0.9  # the carer's morning visit
        elif 9.0 <= lt.hour < 12.0 or 15.0 <= lt.hour < 18.0:
            chance = 0.12
        draw = unit(self.seed, d.id, int(t // 900))
        return {"door": 2 if draw < chance * chance else (1 if draw < chance else 0)}

    def _home_temperature(self, d: SimDevice, t: float) -> Reading:
        outside = self.climate.temperature(t)
        h = local(t).hour
        heating = 1.0 if 7.0 <= h < 23.0 else 0.0
        warmth = d.params.get("warmth", 20.0)
        value = warmth - 2.0 * (1 - heating) + 0.12 * (outside - 12.0)
        value += 0.3 * smooth(self.seed, d.id, t / (2 * HOUR))
        return {"temperature": round(value, 1)}

    # -- agro ----------------------------------------------------------------------------------

    def _soil(self, d: SimDevice, t: float) -> Reading:
        capacity = d.params.get("capacity", 34.0)
        today = int(t // DAY)
        recent = sum(self.climate.daily_rain(today - k) * math.exp(-k / 3.0) for k in range(10))
        recent += self.climate.rain(t) * 2.0
        dry_from = self.anchor - 12 * DAY
        irrigated = d.params.get("irrigated", 0.0) > 0 or d.anomaly == "dry"
        if d.anomaly == "dry" and t >= dry_from:
            # The pump failed: no irrigation, and the parcel dries towards the wilting point.
            days = (t - dry_from) / DAY
            base = capacity * 0.62 * math.exp(-days / 5.0) + (WILTING_POINT - 4.0) * (
                1 - math.exp(-days / 5.0)
            )
            # Sandy, on a slope: rain runs off, so even a wet week keeps it under the wilting point.
            moisture = base + min(1.5, 0.05 * recent)
        else:
            base = capacity * (0.7 if irrigated else 0.55)
            if irrigated:
                since = (t % (2 * DAY)) / DAY  # drip lines every other morning
                base += 4.0 * math.exp(-since * 2.0)
            moisture = base + 0.45 * recent
        moisture = min(capacity + 8.0, moisture) + 0.3 * signed(self.seed, d.id, int(t // 1800))
        air = self.climate.temperature(t)
        soil_t = 0.6 * self.climate.temperature(today * DAY + 14 * HOUR) + 0.25 * air + 2.0
        return {
            "moisture": round(moisture, 1),
            "soil_temperature": round(soil_t, 1),
            "conductivity": round(0.25 + 0.022 * moisture, 2),
        }

    def _weather(self, d: SimDevice, t: float) -> Reading:
        w = self.climate.weather(t)
        return {
            "temperature": round(w.temperature + d.params.get("offset", 0.0), 1),
            "humidity": w.humidity,
            "pressure": w.pressure,
            "wind_speed": w.wind_speed,
            "rain": w.rain,
        }

    # -- enterprise ----------------------------------------------------------------------------

    def _day_energy(self, d: SimDevice, day: int) -> float:
        """kWh a meter records on local day ``day``: working days, heating when it is cold."""
        key = (d.id, day)
        found = self._energy_days.get(key)
        if found is None:
            weekday = (day + 3) % 7
            mean_t = self.climate.temperature(day * DAY + 14 * HOUR) - 4.0
            heating = 1.0 + 0.04 * max(0.0, 15.0 - mean_t)
            work = 1.0 if weekday < 5 else (0.45 if d.params.get("lab") and weekday == 5 else 0.25)
            found = d.params.get("daily_kwh", 80.0) * work * heating
            found *= 1.0 + 0.07 * signed(self.seed, d.id, day)
            self._energy_days[key] = found
        return found

    def _energy_before(self, d: SimDevice, day: int) -> float:
        """The meter's reading at the start of local day ``day`` (running totals, cached)."""
        totals = self._energy_totals.setdefault(d.id, {})
        found = totals.get(day)
        if found is not None:
            return found
        origin = int(self.anchor // DAY) - 400  # the meter was installed well before
        start = max((k for k in totals if k < day), default=origin)
        total = totals.get(start, 1000.0 + 5000.0 * unit(self.seed, d.id, 0))
        for k in range(start, day):
            total += self._day_energy(d, k)
            totals[k + 1] = total
        totals[day] = total
        return total

    def _day_share(self, hour: float, working: bool) -> float:
        """Share of a day's energy used by local ``hour`` (0 to 1)."""
        if not working:
            return hour / 24.0
        # Base load all day, the rest spread over 08:00-19:00.
        base = 0.3 * hour / 24.0
        open_part = min(max(hour - 8.0, 0.0), 11.0) / 11.0
        return base + 0.7 * open_part

    def _energy(self, d: SimDevice, t: float) -> Reading:
        lt = local(t)
        total = self._energy_before(d, lt.day)
        working = lt.weekday < 5
        total += self._day_energy(d, lt.day) * self._day_share(lt.hour, working)
        pf = 0.9 + 0.05 * signed(self.seed, d.id, int(t // 3600))
        return {"energy": round(total, 2), "power_factor": round(pf, 3)}

    # -- education -----------------------------------------------------------------------------

    def _co2_day(self, d: SimDevice, day: int, t_hint: float) -> list[float]:
        """The room's CO2 in ppm every 5 minutes of local day ``day`` (a mass balance)."""
        key = (d.id, day)
        found = self._co2_days.get(key)
        if found is not None:
            return found
        midnight = local_midnight(day, t_hint)
        pupils = d.params.get("pupils", 22.0)
        litres = d.params.get("air", 8.0)  # fresh air per pupil per second while occupied
        leak = 25.0  # L/s of outside air through the empty room
        c = OUTDOOR_CO2 + 30.0
        if d.anomaly == "stuffy" and t_hint >= self.anchor - 8 * DAY:
            # Windows kept shut, ventilation off: the room airs out slowly, overnight and over
            # Saturday, so what the lessons leave lingers into the next morning.
            litres, leak = 2.6, STUFFY_LEAK
            c = self._co2_day(d, day - 1, t_hint - DAY)[-1]
        volume = 180.0  # m³
        generation = 0.0045  # L/s of CO2 per pupil
        values = []
        for step in range(288):
            moment = midnight + step * 300.0
            occupied = in_lesson(moment)
            n = pupils if occupied else 0.0
            q = (n * litres if occupied else leak) / 1000.0  # m³/s
            source = n * generation / 1000.0  # m³/s of CO2
            target = OUTDOOR_CO2 + (source / q) * 1e6
            rate = q / volume * 300.0
            c = target + (c - target) * math.exp(-rate)
            values.append(c)
        self._co2_days[key] = values
        return values

    def _classroom(self, d: SimDevice, t: float) -> Reading:
        lt = local(t)
        curve = self._co2_day(d, lt.day, t)
        position = lt.hour * 12.0
        i = min(int(position), 287)
        j = min(i + 1, 287)
        f = position - int(position)
        co2 = curve[i] + (curve[j] - curve[i]) * f
        co2 *= 1.0 + 0.02 * signed(self.seed, d.id, int(t // 300))
        occupied = in_lesson(t)
        heating = 1.0 if (not lt.weekend and 7.0 <= lt.hour < 18.0) else 0.0
        outside = self.climate.temperature(t)
        temperature = 16.5 + 4.0 * heating + (1.2 if occupied else 0.0) + 0.1 * (outside - 10.0)
        humidity = (
            38.0 + 0.012 * (co2 - OUTDOOR_CO2) + 0.2 * (self.climate.weather(t).humidity - 65)
        )
        return {
            "co2": round(co2),
            "temperature": round(temperature + 0.3 * smooth(self.seed, d.id, t / HOUR), 1),
            "humidity": round(min(80.0, max(20.0, humidity)), 1),
        }
