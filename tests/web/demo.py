"""The demo town (``burgo demo``'s simulator, small size) fed to a real server the way the demo
feeds it: devices registered, a few days of history imported, one live round sent over HTTP and
the LoRaWAN webhooks. Only the public APIs are used."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from burgo.sim.feed import Feeder, Secrets
from burgo.sim.sensors import Reading
from burgo.sim.town import SimDevice, build_town
from tests.web.town import CHIRPSTACK_SECRET, TTS_SECRET

DAYS = 3
"""Days of history imported: enough for the week and month charts to hold several days."""

# What a user expects of each kind of sensor: the map layer it is on.
VERTICAL_OF_KIND = {
    "air-quality": "city",
    "noise": "city",
    "parking": "city",
    "waste-fill": "city",
    "streetlight": "city",
    "care-motion": "care",
    "care-door": "care",
    "care-temperature": "care",
    "soil-moisture": "agro",
    "weather": "agro",
    "energy-meter": "enterprise",
    "classroom": "education",
}


@dataclass(frozen=True)
class DemoTown:
    """The fed town: the feeder (its sensors say what each device read) and the live moment."""

    feeder: Feeder
    now: float

    def entity(self, device_id: str) -> str:
        """The id of the entity ``device_id`` feeds."""
        return self.feeder.devices[device_id].entity_id

    def device(self, device_id: str) -> SimDevice:
        """The simulated device."""
        return self.feeder.town.device(device_id)

    def reading(self, device_id: str) -> Reading:
        """What the device read at the live moment."""
        return self.feeder.sensors.read(self.device(device_id), self.now)

    @property
    def verticals(self) -> dict[str, str]:
        """Every entity id and the vertical its sensor belongs to."""
        return {self.entity(d.id): VERTICAL_OF_KIND[d.kind] for d in self.feeder.town.devices}

    def planted(self, anomaly: str) -> SimDevice:
        """The device showing a planted anomaly."""
        return next(d for d in self.feeder.town.devices if d.anomaly == anomaly)


def seed_demo(base_url: str) -> DemoTown:
    """Feed the small demo town with ``DAYS`` of history and one live round to ``base_url``."""
    town = build_town(seed=42, size="small")
    now = time.time()
    with httpx.Client(base_url=base_url, timeout=60) as client:
        feeder = Feeder(
            client, town, anchor=now, secrets=Secrets(TTS_SECRET, CHIRPSTACK_SECRET), workers=2
        )
        feeder.register()
        feeder.backfill(feeder.starts(now - DAYS * 86400, None), now)
        assert feeder.tick(now) == len(town.devices)
        assert feeder.counters.failed == 0
        assert set(feeder.counters.sent) == {"http", "tts", "chirpstack"}
    return DemoTown(feeder, now)
