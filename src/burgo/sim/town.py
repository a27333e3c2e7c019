"""The layout of a demo town: which sensors it has, where, how they connect, which misbehave.

A town is built from a seed and a size; the same seed and size give the same town.

>>> town = build_town(seed=42, size="small")
>>> sorted({d.kind for d in town.devices}) == sorted(KINDS)
True
>>> [d.id for d in town.devices if d.anomaly][:2]
['bin-02', 'light-02']
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from burgo.sim.noise import signed, unit

FUNDAO = (40.1385, -7.5005)
"""Latitude and longitude of Fundão's centre, the default town."""

Size = Literal["small", "full"]

KINDS = (
    "air-quality",
    "noise",
    "parking",
    "waste-fill",
    "streetlight",
    "care-motion",
    "care-door",
    "care-temperature",
    "soil-moisture",
    "weather",
    "energy-meter",
    "classroom",
)

# How many of each thing a town has: (full, small).
COUNTS: dict[str, tuple[int, int]] = {
    "air-quality": (5, 1),
    "noise": (4, 1),
    "parking": (40, 2),
    "waste-fill": (24, 2),
    "streetlight": (16, 2),
    "homes": (10, 2),
    "soil-moisture": (8, 2),
    "weather": (3, 1),
    "schools": (4, 1),
    "classrooms": (4, 2),
}

# Where each kind reports through: a LoRaWAN network server, or straight to Burgo.
NETWORK: dict[str, str] = {
    "air-quality": "tts",
    "noise": "chirpstack",
    "parking": "tts",
    "waste-fill": "tts-lpp",
    "soil-moisture": "chirpstack",
}

SCHOOLS = (
    "Escola Secundária",
    "Escola Básica do Centro",
    "Escola Básica de Santa Luzia",
    "Escola Profissional",
)
STREETS = (
    "Rua da Cale",
    "Avenida da Liberdade",
    "Praça do Município",
    "Rua de Santa Maria",
    "Avenida Eugénio de Andrade",
    "Rua dos Três Lagares",
    "Largo do Pelourinho",
    "Rua Jornal do Fundão",
)
FARMS = ("Cerejal", "Pomar", "Olival", "Vinha", "Horta", "Souto")


@dataclass(frozen=True, slots=True)
class SimDevice:
    """One simulated sensor."""

    id: str
    kind: str
    name: str
    latitude: float
    longitude: float
    network: str
    """``http`` (MQTT when a broker is set), ``tts``, ``tts-lpp`` (raw LPP) or ``chirpstack``."""
    dev_eui: str | None = None
    anomaly: str | None = None
    """The planted problem this device shows, if any."""
    params: dict[str, float] = field(default_factory=dict)
    """Per-device character: rates, offsets, zone factors."""
    static: dict[str, Any] = field(default_factory=dict)
    """Fixed attributes of the entity it feeds (name, address, category)."""


@dataclass(frozen=True, slots=True)
class Town:
    """A simulated town: its centre, its seed and its sensors."""

    name: str
    seed: int
    latitude: float
    longitude: float
    devices: tuple[SimDevice, ...]

    def device(self, device_id: str) -> SimDevice:
        """The device with this id."""
        return next(d for d in self.devices if d.id == device_id)


def pseudonym(seed: int, index: int) -> str:
    """A stable pseudonymous id for a person's home: no name or address in it."""
    return hashlib.blake2b(f"{seed}:home:{index}".encode(), digest_size=3).hexdigest()


class _Builder:
    def __init__(self, seed: int, latitude: float, longitude: float) -> None:
        self.seed = seed
        self.lat = latitude
        self.lon = longitude
        self.devices: list[SimDevice] = []
        self.eui = 0

    def place(self, key: str, radius_km: float, min_km: float = 0.0) -> tuple[float, float]:
        angle = 2 * math.pi * unit(self.seed, key, 1)
        dist = min_km + (radius_km - min_km) * math.sqrt(unit(self.seed, key, 2))
        dlat = dist * math.cos(angle) / 111.0
        dlon = dist * math.sin(angle) / (111.0 * math.cos(math.radians(self.lat)))
        return round(self.lat + dlat, 5), round(self.lon + dlon, 5)

    def add(self, dev_id: str, kind: str, name: str, where: tuple[float, float], **kw: Any) -> None:
        network = NETWORK.get(kind, "http")
        dev_eui = None
        if network != "http":
            self.eui += 1
            dev_eui = f"70B3D57ED005{self.seed % 0x10:01X}{self.eui:03X}"
        self.devices.append(
            SimDevice(dev_id, kind, name, where[0], where[1], network, dev_eui, **kw)
        )

    def vary(self, key: str, low: float, high: float) -> float:
        return round(low + (high - low) * unit(self.seed, key, 9), 3)


def build_town(
    seed: int = 42,
    size: Size = "full",
    latitude: float = FUNDAO[0],
    longitude: float = FUNDAO[1],
    name: str = "Fundão",
) -> Town:
    """The sensors of a town around (latitude, longitude): ``full`` (about 150 devices) or
    ``small`` (two or so of each kind, anomalies included, for tests and quick looks)."""
    pick = 0 if size == "full" else 1
    count = {k: v[pick] for k, v in COUNTS.items()}
    b = _Builder(seed, latitude, longitude)
    for i in range(1, count["air-quality"] + 1):
        street = STREETS[(i - 1) % len(STREETS)]
        b.add(
            f"aq-{i:02d}",
            "air-quality",
            f"Qualidade do ar {i} ({street})",
            b.place(f"aq{i}", 1.6),
            params={"traffic": b.vary(f"aq{i}", 0.6, 1.4) if i > 1 else 1.5},
            static={"address": {"streetAddress": street, "addressLocality": name}},
        )
    for i in range(1, count["noise"] + 1):
        b.add(
            f"noise-{i:02d}",
            "noise",
            f"Sonómetro {i}",
            b.place(f"noise{i}", 1.4),
            params={"offset": b.vary(f"noise{i}", -4.0, 5.0)},
        )
    for i in range(1, count["parking"] + 1):
        zone = 1.0 - min(0.5, i / 100)
        b.add(
            f"park-{i:03d}",
            "parking",
            f"Lugar {i:03d}",
            b.place(f"park{i}", 0.6),
            params={"demand": b.vary(f"park{i}", 0.75, 1.1) * zone},
            static={"category": ["onStreet"], "name": f"P{i:03d}"},
        )
    for i in range(1, count["waste-fill"] + 1):
        b.add(
            f"bin-{i:02d}",
            "waste-fill",
            f"Ecoponto {i}",
            b.place(f"bin{i}", 1.8),
            anomaly="full" if i == 2 else None,
            params={"rate": 35.0 if i == 2 else b.vary(f"bin{i}", 12.0, 20.0)},
            static={
                "address": {"streetAddress": STREETS[i % len(STREETS)], "addressLocality": name}
            },
        )
    for i in range(1, count["streetlight"] + 1):
        b.add(
            f"light-{i:02d}",
            "streetlight",
            f"Candeeiro {i}",
            b.place(f"light{i}", 1.2),
            anomaly="lamp-fault" if i == 2 else None,
            params={"watts": b.vary(f"light{i}", 55.0, 90.0)},
        )
    for i in range(1, count["homes"] + 1):
        home = pseudonym(seed, i)
        where = b.place(f"home{i}", 2.0)
        where = (round(where[0], 3), round(where[1], 3))  # about 100 m: no door to be found
        quiet = "no-motion" if i == 2 else None
        common = {
            "params": {
                "wake": b.vary(f"home{i}", 6.5, 8.5),
                "warmth": b.vary(f"home{i}t", 18.5, 21.5),
            }
        }
        b.add(
            f"care-{home}-motion",
            "care-motion",
            f"Casa {home}: movimento",
            where,
            anomaly=quiet,
            **common,
        )
        b.add(
            f"care-{home}-door", "care-door", f"Casa {home}: porta", where, anomaly=quiet, **common
        )
        b.add(f"care-{home}-temp", "care-temperature", f"Casa {home}: temperatura", where, **common)
    for i in range(1, count["soil-moisture"] + 1):
        farm = FARMS[(i - 1) % len(FARMS)]
        b.add(
            f"soil-{i:02d}",
            "soil-moisture",
            f"{farm} {i}: sonda de solo",
            b.place(f"soil{i}", 7.0, 2.5),
            anomaly="dry" if i == 2 else None,
            params={"capacity": b.vary(f"soil{i}", 30.0, 38.0), "irrigated": 1.0 if i % 3 else 0.0},
        )
    for i in range(1, count["weather"] + 1):
        b.add(
            f"meteo-{i:02d}",
            "weather",
            f"Estação meteorológica {i}",
            b.place(f"meteo{i}", 6.0, 1.5 if i > 1 else 0.0),
            params={"offset": round(0.4 * signed(seed, f"meteo{i}", 3), 2)},
        )
    hub = b.place("hub", 0.8)
    lab = b.place("fablab", 0.8)
    meters = [("hub", "Hub de negócios", hub, 4), ("fablab", "FabLab", lab, 3)]
    for key, label, where, n in meters:
        for j in range(1, (n if size == "full" else 1) + 1):
            b.add(
                f"energy-{key}-{j}",
                "energy-meter",
                f"{label}: quadro {j}",
                where,
                params={
                    "daily_kwh": b.vary(f"{key}{j}", 40.0, 160.0)
                    if key == "hub"
                    else b.vary(f"{key}{j}", 25.0, 90.0),
                    "lab": 1.0 if key == "fablab" else 0.0,
                },
            )
    for s in range(1, count["schools"] + 1):
        school = SCHOOLS[(s - 1) % len(SCHOOLS)]
        where = b.place(f"school{s}", 1.5)
        for r in range(1, count["classrooms"] + 1):
            room = f"{r}{'ABCD'[s - 1]}"
            b.add(
                f"class-{s}-{room.lower()}",
                "classroom",
                f"{school}, sala {room}",
                where,
                anomaly="stuffy" if s == 1 and r == 2 else None,
                params={
                    "pupils": b.vary(f"class{s}{r}", 18.0, 27.0),
                    "air": b.vary(f"class{s}{r}a", 7.0, 10.0),
                },
                static={"name": f"{school}, sala {room}"},
            )
    return Town(name, seed, latitude, longitude, tuple(b.devices))
