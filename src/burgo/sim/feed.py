"""Feeding a Burgo server with a simulated town, over HTTP like real devices and network servers.

Devices are registered through ``/api/v1/devices``; past data is imported through
``POST /ngsi-ld/v1/temporal/entities``; live readings go the way each device would send them:
the device HTTP API with its key, The Things Stack or ChirpStack webhooks, or MQTT. Nothing is
written to the store directly, so the server takes the town exactly as it takes a real one.

>>> feeder = Feeder(httpx.Client(base_url="http://127.0.0.1:8000"), town)  # doctest: +SKIP
>>> feeder.register(); feeder.backfill(start, now); feeder.tick(now)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import orjson

from burgo.sim.sensors import Sensors
from burgo.sim.town import SimDevice, Town
from burgo.sim.wire import (
    chirpstack_up,
    device_values,
    history_body,
    iso,
    registration,
    tts_uplink,
)

log = logging.getLogger(__name__)

HISTORY_STEP = 900.0
"""Seconds between past readings imported for most sensors (15 minutes)."""
SAMPLES_PER_REQUEST = 1500
SECRET_HEADER = "X-Burgo-Secret"  # noqa: S105 - a header name, not a secret


class FeedError(Exception):
    """The server refused or could not be reached; the message says which and why."""


@dataclass(slots=True)
class Registered:
    """What the server said about a device it registered."""

    key: str
    entity_id: str
    entity_type: str
    context: str | None
    mapping: list[dict[str, Any]]
    interval: float
    protocol: str


@dataclass(slots=True)
class Secrets:
    """The shared secrets of the server's LoRaWAN webhooks; without one, those devices post
    over HTTP with their key instead."""

    tts: str | None = None
    chirpstack: str | None = None


@dataclass(slots=True)
class Counters:
    """What the feeder has sent, by path."""

    registered: int = 0
    history_instances: int = 0
    sent: dict[str, int] = field(default_factory=dict)
    failed: int = 0

    def add(self, path: str, n: int = 1) -> None:
        """Count ``n`` readings sent along ``path``."""
        self.sent[path] = self.sent.get(path, 0) + n


def _problem(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code} {response.text[:200]}"
    detail = body.get("detail") if isinstance(body, dict) else None
    return f"{response.status_code} {detail or body}"


def history_step(device: SimDevice) -> float:
    """Seconds between the past readings imported for a device: slow sensors keep their pace."""
    return {
        "parking": 3600.0,
        "waste-fill": 3600.0,
        "streetlight": 3600.0,
        "soil-moisture": 1800.0,
    }.get(device.kind, HISTORY_STEP)


class Feeder:
    """Drives one Burgo server (``client.base_url``) with a simulated town."""

    def __init__(
        self,
        client: httpx.Client,
        town: Town,
        *,
        anchor: float,
        secrets: Secrets | None = None,
        mqtt_url: str | None = None,
        mqtt_topic: str = "burgo/{tenant}/{device}/attrs",
        tenant: str | None = None,
        keys: Mapping[str, str] | None = None,
        workers: int = 2,
    ) -> None:
        self.client = client
        self.town = town
        self.sensors = Sensors(town, anchor)
        self.secrets = secrets or Secrets()
        self.mqtt_url = mqtt_url
        self.mqtt_topic = mqtt_topic
        self.tenant = tenant
        self.headers = {"NGSILD-Tenant": tenant} if tenant else {}
        self.known_keys = dict(keys or {})
        self.workers = workers
        self.devices: dict[str, Registered] = {}
        self.fresh: set[str] = set()
        """Devices registered anew by this feeder (their history is still to import)."""
        self.counters = Counters()
        self._frames: dict[str, int] = {}
        self._lock = threading.Lock()

    # -- registration --------------------------------------------------------------------------

    def register(self, progress: Callable[[int], None] | None = None) -> dict[str, str]:
        """Register every device of the town (again, with a new key, when the server knows it
        but this feeder lost its key); the API keys by device id."""
        with ThreadPoolExecutor(self.workers) as pool:
            for device, registered in zip(
                self.town.devices, pool.map(self._register, self.town.devices), strict=True
            ):
                self.devices[device.id] = registered
                if progress:
                    progress(1)
        self.counters.registered = len(self.devices)
        return {dev_id: r.key for dev_id, r in self.devices.items()}

    def _register(self, device: SimDevice) -> Registered:
        body = registration(device, mqtt=self.mqtt_url is not None)
        known = self.known_keys.get(device.id)
        response = self.client.post("/api/v1/devices", json=body, headers=self.headers)
        if response.status_code == 409:
            shown = self.client.get(f"/api/v1/devices/{quote(device.id)}", headers=self.headers)
            if (
                known
                and shown.status_code == 200
                and shown.json().get("protocol") == body["protocol"]
            ):
                return self._registered(shown.json(), known)
            # The server has the device but this feeder lost its key: register it again.
            self.client.delete(f"/api/v1/devices/{quote(device.id)}", headers=self.headers)
            response = self.client.post("/api/v1/devices", json=body, headers=self.headers)
        if response.status_code != 201:
            raise FeedError(f"Registering {device.id}: {_problem(response)}")
        with self._lock:
            self.fresh.add(device.id)
        shown = response.json()
        return self._registered(shown, shown["apiKey"])

    @staticmethod
    def _registered(shown: Mapping[str, Any], key: str) -> Registered:
        return Registered(
            key=key,
            entity_id=shown["entityId"],
            entity_type=shown["entityType"],
            context=shown.get("context"),
            mapping=list(shown["mapping"]),
            interval=float(shown.get("interval") or 900),
            protocol=shown["protocol"],
        )

    # -- history -------------------------------------------------------------------------------

    def starts(self, start: float, resume: float | None) -> dict[str, float]:
        """Where each device's history import begins: at ``start`` for devices registered
        anew, else where an earlier run stopped feeding (``resume``), if later."""
        later = max(start, resume) if resume is not None else start
        return {d.id: start if d.id in self.fresh else later for d in self.town.devices}

    def history_size(self, starts: Mapping[str, float], end: float) -> int:
        """How many attribute instances :meth:`backfill` will import."""
        total = 0
        for device in self.town.devices:
            step = history_step(device)
            samples = len(range(*self._steps(starts[device.id], end, step)))
            total += samples * len(self.devices[device.id].mapping)
        return total

    @staticmethod
    def _steps(start: float, end: float, step: float) -> tuple[int, int]:
        first = int(-(-start // step))
        last = int(-(-end // step))
        return first, last

    def _chunks(self, device: SimDevice, start: float, end: float) -> Iterator[list[float]]:
        step = history_step(device)
        first, last = self._steps(start, end, step)
        for chunk_start in range(first, last, SAMPLES_PER_REQUEST):
            chunk_end = min(last, chunk_start + SAMPLES_PER_REQUEST)
            yield [k * step for k in range(chunk_start, chunk_end)]

    def backfill(
        self,
        starts: Mapping[str, float],
        end: float,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Import each device's readings from its start up to ``end`` as history, at its
        history step; the number of attribute instances stored."""
        jobs = [
            (device, times)
            for device in self.town.devices
            for times in self._chunks(device, starts[device.id], end)
        ]

        def one(job: tuple[SimDevice, list[float]]) -> int:
            device, times = job
            registered = self.devices[device.id]
            samples = [(t, device_values(device, self.sensors.read(device, t))) for t in times]
            body = history_body(
                registered.entity_id, registered.entity_type, registered.mapping, samples
            )
            n = sum(len(v) for k, v in body.items() if isinstance(v, list))
            headers = {"Content-Type": "application/json", **self.headers}
            if registered.context:
                headers["Link"] = (
                    f'<{registered.context}>; rel="http://www.w3.org/ns/json-ld#context"; '
                    'type="application/ld+json"'
                )
            response = self.client.post(
                "/ngsi-ld/v1/temporal/entities", content=orjson.dumps(body), headers=headers
            )
            if response.status_code not in (201, 204):
                raise FeedError(f"Importing the history of {device.id}: {_problem(response)}")
            if progress:
                progress(n)
            return n

        with ThreadPoolExecutor(self.workers) as pool:
            stored = sum(pool.map(one, jobs))
        self.counters.history_instances += stored
        return stored

    # -- live ----------------------------------------------------------------------------------

    def tick(self, t: float) -> int:
        """Send every device's reading at ``t`` the way that device reports; the number sent.
        A refused reading is logged and counted, and the others still go."""
        mqtt_messages: list[tuple[str, bytes]] = []
        http_jobs: list[tuple[SimDevice, dict[str, Any]]] = []
        for device in self.town.devices:
            reading = self.sensors.read(device, t)
            registered = self.devices[device.id]
            if registered.protocol == "mqtt":
                payload = orjson.dumps({**reading, "observedAt": iso(t)})
                topic = self.mqtt_topic.replace("{tenant}", self.tenant or "default")
                mqtt_messages.append((topic.replace("{device}", device.id), payload))
            else:
                http_jobs.append((device, reading))
        with ThreadPoolExecutor(self.workers) as pool:
            sent = sum(pool.map(lambda job: self._send(job[0], job[1], t), http_jobs))
        if mqtt_messages:
            sent += self._publish(mqtt_messages)
        return sent

    def _send(self, device: SimDevice, reading: Mapping[str, Any], t: float) -> int:
        registered = self.devices[device.id]
        with self._lock:
            frame = self._frames.get(device.id, int(t) % 50000) + 1
            self._frames[device.id] = frame
        path, request = self._request(device, registered, reading, t, frame)
        try:
            response = self.client.post(request["url"], **request["args"])
        except httpx.HTTPError as exc:
            with self._lock:
                self.counters.failed += 1
            log.warning("Sending %s failed: %s", device.id, exc)
            return 0
        if response.status_code != 202:
            with self._lock:
                self.counters.failed += 1
            log.warning("Burgo refused a reading of %s: %s", device.id, _problem(response))
            return 0
        with self._lock:
            self.counters.add(path)
        return 1

    def _request(
        self,
        device: SimDevice,
        registered: Registered,
        reading: Mapping[str, Any],
        t: float,
        frame: int,
    ) -> tuple[str, dict[str, Any]]:
        if device.network.startswith("tts") and self.secrets.tts:
            body = tts_uplink(device, reading, t, frame)
            headers = {SECRET_HEADER: self.secrets.tts, **self.headers}
            return "tts", {"url": "/api/v1/lorawan/tts", "args": {"json": body, "headers": headers}}
        if device.network == "chirpstack" and self.secrets.chirpstack:
            body = chirpstack_up(device, reading, t, frame)
            headers = {SECRET_HEADER: self.secrets.chirpstack, **self.headers}
            url = "/api/v1/lorawan/chirpstack?event=up"
            return "chirpstack", {"url": url, "args": {"json": body, "headers": headers}}
        values = device_values(device, reading)
        body = {**values, "observedAt": iso(t)}
        headers = {"X-Api-Key": registered.key, **self.headers}
        url = f"/api/v1/devices/{quote(device.id)}/measurements"
        return "http", {"url": url, "args": {"json": body, "headers": headers}}

    def _publish(self, messages: list[tuple[str, bytes]]) -> int:
        assert self.mqtt_url is not None
        import aiomqtt

        parts = urlsplit(self.mqtt_url)

        async def publish() -> None:
            async with aiomqtt.Client(
                parts.hostname or "127.0.0.1",
                parts.port or 1883,
                username=parts.username,
                password=parts.password,
                protocol=aiomqtt.ProtocolVersion.V5,
            ) as client:
                for topic, payload in messages:
                    await client.publish(topic, payload, qos=1)

        try:
            asyncio.run(publish())
        except (aiomqtt.MqttError, OSError) as exc:
            self.counters.failed += len(messages)
            log.warning("Publishing %d readings over MQTT failed: %s", len(messages), exc)
            return 0
        self.counters.add("mqtt", len(messages))
        return len(messages)
