"""MQTT ingestion: a worker subscribed to the device topics of a broker (Mosquitto).

Topics follow a configurable layout, by default ``burgo/{tenant}/{device}/attrs`` (the tenant
segment ``default`` is the default tenant). Payloads are the JSON readings of the HTTP API.
Messages arrive with QoS 1 and are acknowledged only once stored, so the broker redelivers what
a crash interrupted. With a shared-subscription group (MQTT 5 ``$share/{group}/...``) several
Burgo workers split the load. A lost connection is retried with back-off and resubscribed.

>>> TopicLayout("burgo/{tenant}/{device}/attrs").parse("burgo/fundao/aq-1/attrs")
('fundao', 'aq-1')
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from burgo.ingest.service import DeviceService
from burgo.ngsild.errors import InternalError, NgsiLdError, ServiceUnavailable
from burgo.store.base import DEFAULT_TENANT

log = logging.getLogger(__name__)

DEFAULT_TOPIC = "burgo/{tenant}/{device}/attrs"
DEFAULT_TENANT_SEGMENT = "default"
_TENANT = re.compile(r"^[A-Za-z0-9_\-.:]{1,128}$")


@dataclass(frozen=True, slots=True)
class TopicLayout:
    """Where tenant and device sit in a topic: ``{tenant}`` and ``{device}`` segments."""

    layout: str

    def __post_init__(self) -> None:
        segments = self.layout.split("/")
        if segments.count("{device}") != 1 or segments.count("{tenant}") > 1:
            raise ValueError(
                "an MQTT topic layout needs one {device} segment and at most one {tenant}"
            )
        if any(c in self.layout for c in "+#") or "$" in self.layout:
            raise ValueError("an MQTT topic layout cannot hold wildcards or '$'")

    @property
    def filter(self) -> str:
        """The subscription filter: each placeholder becomes a ``+`` wildcard."""
        return "/".join("+" if s in ("{tenant}", "{device}") else s for s in self.layout.split("/"))

    def parse(self, topic: str) -> tuple[str, str] | None:
        """(tenant, device) of a topic that fits the layout, else None."""
        expected = self.layout.split("/")
        parts = topic.split("/")
        if len(parts) != len(expected):
            return None
        tenant, device = DEFAULT_TENANT, ""
        for want, got in zip(expected, parts, strict=True):
            if want == "{device}":
                device = got
            elif want == "{tenant}":
                tenant = DEFAULT_TENANT if got == DEFAULT_TENANT_SEGMENT else got
                if tenant and not _TENANT.match(tenant):
                    return None
            elif want != got:
                return None
        return (tenant, device) if device else None


class MqttListener:
    """Takes device readings from an MQTT broker into the device service."""

    def __init__(
        self,
        service: DeviceService,
        url: str,
        *,
        topic: str = DEFAULT_TOPIC,
        shared_group: str | None = "burgo",
        max_in_flight: int = 256,
        reconnect_delay: float = 1.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
            raise ValueError(f"MQTT broker URL must look like mqtt://host:1883, got {url!r}")
        self.service = service
        self.host = parts.hostname
        self.port = parts.port or 1883
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.layout = TopicLayout(topic)
        self.subscription = (
            f"$share/{shared_group}/{self.layout.filter}" if shared_group else self.layout.filter
        )
        self.identifier = f"burgo-{os.uname().nodename}-{os.getpid()}"
        self.reconnect_delay = reconnect_delay
        self.subscribed = asyncio.Event()
        self.connections = 0
        self._slots = asyncio.Semaphore(max_in_flight)
        self._task: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Connect and subscribe in the background (retrying until the broker answers)."""
        self._task = asyncio.create_task(self._run(), name="burgo-mqtt-listener")

    async def stop(self) -> None:
        """Finish the messages in hand, then disconnect."""
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _client(self) -> aiomqtt.Client:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = 300
        client = aiomqtt.Client(
            self.host,
            self.port,
            username=self.username,
            password=self.password,
            identifier=self.identifier,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=properties,
        )
        # aiomqtt does not expose paho's manual acknowledgement; without it a message would be
        # acknowledged on arrival and lost if Burgo stopped before storing it.
        client._client.manual_ack_set(True)
        return client

    async def _run(self) -> None:
        delay = self.reconnect_delay
        outage = False
        while True:
            try:
                client = self._client()
                async with client:
                    await client.subscribe(self.subscription, qos=1)
                    self.connections += 1
                    self.subscribed.set()
                    log.info(
                        "MQTT: subscribed to %s on %s:%d", self.subscription, self.host, self.port
                    )
                    outage, delay = False, self.reconnect_delay
                    async for message in client.messages:
                        await self._slots.acquire()
                        task = asyncio.create_task(self._handle(client, message))
                        self._handlers.add(task)
                        task.add_done_callback(self._handlers.discard)
            except aiomqtt.MqttError as exc:
                self.subscribed.clear()
                if not outage:
                    log.warning(
                        "MQTT: connection to %s:%d lost (%s); retrying", self.host, self.port, exc
                    )
                    outage = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _handle(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        try:
            acknowledge = await self._take(message)
            if acknowledge:
                client._client.ack(message.mid, message.qos)
        finally:
            self._slots.release()

    async def _take(self, message: aiomqtt.Message) -> bool:
        """Store one message; whether to acknowledge it (not when storage failed)."""
        where = self.layout.parse(message.topic.value)
        if where is None:
            return True
        payload = (
            message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
        )
        try:
            await self.service.mqtt_message(where[0], where[1], payload)
        except (InternalError, ServiceUnavailable) as exc:
            log.error("MQTT: could not store a message of %s: %s", where[1], exc.detail)
            return False
        except NgsiLdError as exc:
            # Counted in the device's error statistics; a bad message is not retried.
            log.debug("MQTT: refused a message of %s: %s", where[1], exc.detail)
        return True
