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
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from burgo.ingest.service import DeviceService, Publication
from burgo.ngsild.errors import InternalError, ServiceUnavailable
from burgo.store.base import DEFAULT_TENANT

if TYPE_CHECKING:
    from paho.mqtt.client import SocketLike

log = logging.getLogger(__name__)

DEFAULT_TOPIC = "burgo/{tenant}/{device}/attrs"
DEFAULT_TENANT_SEGMENT = "default"
_TENANT = re.compile(r"^[A-Za-z0-9_\-.:]{1,128}$")
MAX_BATCH = 1000  # messages stored in one store job at most
READ_SIZE = 1 << 16
STOP_TIMEOUT = 10.0  # seconds a stopping listener waits for the batch in hand


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


class _BufferedSocket:
    """The broker connection as paho reads it: one ``recv`` of up to 64 KiB serves many packets.

    paho reads each packet in three ``recv`` calls (its type, its length, its body), and aiomqtt
    runs paho's reader once each time the socket turns readable: a turn of the event loop and
    three system calls per message. aiomqtt keeps running the reader while the socket reports
    ``pending()`` bytes (as an SSL socket does); this buffer reports what it holds.
    """

    def __init__(self, sock: SocketLike) -> None:
        self._sock = sock
        self._data = b""
        self._pos = 0

    def recv(self, size: int) -> bytes:
        """Up to ``size`` bytes, from the buffer while it holds any."""
        if self._pos >= len(self._data):
            data = self._sock.recv(max(size, READ_SIZE))
            if len(data) <= size:
                return data
            self._data, self._pos = data, 0
        end = self._pos + size
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def pending(self) -> int:
        """Bytes read from the socket and not yet taken."""
        return max(len(self._data) - self._pos, 0)

    def send(self, buffer: bytes | bytearray) -> int:
        return self._sock.send(buffer)

    def close(self) -> None:
        self._sock.close()

    def fileno(self) -> int:
        return self._sock.fileno()

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)


class MqttListener:
    """Takes device readings from an MQTT broker into the device service.

    Messages are taken in batches: what arrived while the previous batch was being stored goes
    to the store as one job, and each message is acknowledged (QoS 1 PUBACK) once that job has
    committed it, or refused it for good (a bad payload, counted in the device's errors).
    """

    def __init__(
        self,
        service: DeviceService,
        url: str,
        *,
        topic: str = DEFAULT_TOPIC,
        shared_group: str | None = "burgo",
        max_in_flight: int = 1000,
        batch_size: int = MAX_BATCH,
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
        self.max_in_flight = max_in_flight
        self.batch_size = batch_size
        self.subscribed = asyncio.Event()
        self.connections = 0
        self.batches = 0
        self._stopping = False
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect and subscribe in the background (retrying until the broker answers)."""
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="burgo-mqtt-listener")

    async def stop(self) -> None:
        """Finish the batch in hand (stored and acknowledged), then disconnect."""
        if self._task is None:
            return
        self._stopping = True
        self._wakeup.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=STOP_TIMEOUT)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    def _client(self) -> aiomqtt.Client:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = 300
        # The broker sends at most this many messages before their acknowledgements.
        properties.ReceiveMaximum = self.max_in_flight
        return aiomqtt.Client(
            self.host,
            self.port,
            username=self.username,
            password=self.password,
            identifier=self.identifier,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=properties,
        )

    async def _run(self) -> None:
        delay = self.reconnect_delay
        outage = False
        while not self._stopping:
            try:
                client = self._client()
                inbox: list[mqtt.MQTTMessage] = []
                self._attach(client, inbox)
                async with client:
                    _buffer_reads(client)
                    await client.subscribe(self.subscription, qos=1)
                    self.connections += 1
                    self.subscribed.set()
                    log.info(
                        "MQTT: subscribed to %s on %s:%d", self.subscription, self.host, self.port
                    )
                    outage, delay = False, self.reconnect_delay
                    await self._take_batches(client, inbox)
                    return
            except aiomqtt.MqttError as exc:
                self.subscribed.clear()
                if not outage:
                    log.warning(
                        "MQTT: connection to %s:%d lost (%s); retrying", self.host, self.port, exc
                    )
                    outage = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    def _attach(self, client: aiomqtt.Client, inbox: list[mqtt.MQTTMessage]) -> None:
        """Have paho hand the device topics' messages straight to ``inbox``, acknowledged
        only when Burgo says so."""
        wakeup = self._wakeup = asyncio.Event()

        def arrived(_client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
            inbox.append(message)
            wakeup.set()

        # aiomqtt exposes neither paho's manual acknowledgement (without it a message would be
        # acknowledged on arrival and lost if Burgo stopped before storing it) nor its
        # per-topic callbacks, which skip aiomqtt's per-message wrapping and queue.
        paho = client._client
        paho.manual_ack_set(True)
        paho.message_callback_add(self.layout.filter, arrived)

    async def _take_batches(self, client: aiomqtt.Client, inbox: list[mqtt.MQTTMessage]) -> None:
        """Store what arrives, batch by batch, until the connection drops (MqttError) or the
        listener stops."""
        paho = client._client
        # Any message outside the device topics lands in aiomqtt's queue: it is acknowledged
        # and dropped. Waiting on that queue also reports a lost connection.
        other = asyncio.ensure_future(anext(client.messages))
        try:
            while not self._stopping:
                if not inbox:
                    woken = asyncio.ensure_future(self._wakeup.wait())
                    await asyncio.wait((other, woken), return_when=asyncio.FIRST_COMPLETED)
                    woken.cancel()
                    self._wakeup.clear()
                if other.done():
                    message = other.result()  # MqttError when the connection was lost
                    paho.ack(message.mid, message.qos)
                    other = asyncio.ensure_future(anext(client.messages))
                if inbox and not self._stopping:
                    batch = inbox[: self.batch_size]
                    del inbox[: self.batch_size]
                    for stored in await self._store(batch):
                        paho.ack(stored.mid, stored.qos)
        finally:
            other.cancel()

    async def _store(self, batch: list[mqtt.MQTTMessage]) -> list[mqtt.MQTTMessage]:
        """Store a batch; the messages to acknowledge (not those whose storage failed)."""
        self.batches += 1
        taken: list[mqtt.MQTTMessage] = []
        publications: list[Publication] = []
        acknowledge: list[mqtt.MQTTMessage] = []
        for message in batch:
            try:
                where = self.layout.parse(message.topic)
            except UnicodeDecodeError:
                where = None
            if where is None:
                acknowledge.append(message)
            else:
                taken.append(message)
                publications.append(Publication(where[0], where[1], message.payload))
        try:
            errors = await self.service.mqtt_messages(publications)
        except Exception:  # nothing is acknowledged: the broker delivers them again
            log.exception("MQTT: could not store a batch of %d messages", len(publications))
            return acknowledge
        for message, publication, error in zip(taken, publications, errors, strict=True):
            if isinstance(error, InternalError | ServiceUnavailable):
                log.error(
                    "MQTT: could not store a message of %s: %s", publication.device_id, error.detail
                )
                continue
            if error is not None:
                # Counted in the device's error statistics; a bad message is not retried.
                log.debug("MQTT: refused a message of %s: %s", publication.device_id, error.detail)
            acknowledge.append(message)
        return acknowledge


def _buffer_reads(client: aiomqtt.Client) -> None:
    """Have paho read the connection through a buffer (see _BufferedSocket)."""
    paho = client._client
    if paho._sock is not None:
        paho._sock = _BufferedSocket(paho._sock)
