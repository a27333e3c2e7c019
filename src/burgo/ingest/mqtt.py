"""MQTT ingestion: a worker subscribed to the device topics of a broker (Mosquitto).

Topics follow a configurable layout, by default ``burgo/{tenant}/{device}/attrs`` (the tenant
segment ``default`` is the default tenant). Payloads are the JSON readings of the HTTP API.
Messages arrive with QoS 1, in batches, and are acknowledged only once stored: what was not
acknowledged comes again when the session is resumed (after a lost connection, or a storage
failure, which makes the listener reconnect). With a shared-subscription group (MQTT 5
``$share/{group}/...``) several Burgo workers split the load. A lost connection is retried with
back-off and resubscribed; a stopping worker unsubscribes, finishes and ends its session. The
client id is the same after a restart (mqtt_identity), so a process started again after a crash
resumes the session the dead one left and gets the messages the broker kept for it.

>>> TopicLayout("burgo/{tenant}/{device}/attrs").parse("burgo/fundao/aq-1/attrs")
('fundao', 'aq-1')
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

from burgo.ingest.mqtt_client import MqttConnection, MqttError
from burgo.ingest.mqtt_identity import ClientSlot
from burgo.ingest.mqtt_wire import Publish
from burgo.ingest.service import DeviceService, Publication
from burgo.ngsild.errors import InternalError, ServiceUnavailable
from burgo.store.base import DEFAULT_TENANT

log = logging.getLogger(__name__)

DEFAULT_TOPIC = "burgo/{tenant}/{device}/attrs"
DEFAULT_TENANT_SEGMENT = "default"
_TENANT = re.compile(r"^[A-Za-z0-9_\-.:]{1,128}$")
MAX_BATCH = 1000  # messages stored in one store job at most
BATCHES_IN_FLIGHT = 2  # one being written, the next being parsed
STOP_TIMEOUT = 10.0  # seconds a stopping listener waits for the batches in hand
DRAIN_QUIET = 0.2  # seconds without a message after which a stopping listener is done
TOPICS_KEPT = 10_000  # parsed topics remembered
_UNPARSED: Any = object()


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


class _Stored(NamedTuple):
    """What became of a batch: the QoS 1 packets to acknowledge, and how many failed."""

    packet_ids: list[int]
    failed: int


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
        client_id: str,
        topic: str = DEFAULT_TOPIC,
        shared_group: str | None = "burgo",
        slots: Path | None = None,
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
        # Topics already parsed: a device publishes on the same topic again and again.
        self._topics: dict[str, tuple[str, str] | None] = {}
        self.subscription = (
            f"$share/{shared_group}/{self.layout.filter}" if shared_group else self.layout.filter
        )
        # The session's name: ``client_id`` and the slot this listener holds while it runs
        # (mqtt_identity), the same after a restart, so the broker resumes the session (and
        # across reconnections); never that of another running listener.
        self.client_id = client_id
        self.slots = slots
        self.identifier = ""
        self._slot: ClientSlot | None = None
        self.reconnect_delay = reconnect_delay
        self.max_in_flight = max_in_flight
        self.batch_size = batch_size
        self.subscribed = asyncio.Event()
        self.connections = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect and subscribe in the background (retrying until the broker answers)."""
        self._slot = ClientSlot.claim(self.client_id, self.slots)
        self.identifier = self._slot.client_id
        log.info("MQTT: client id %s", self.identifier)
        self._stop.clear()
        self._task = asyncio.create_task(self._run(), name="burgo-mqtt-listener")

    async def stop(self) -> None:
        """Unsubscribe, store and acknowledge what still arrives, then end the session."""
        if self._task is None:
            return
        self._stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=STOP_TIMEOUT)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None
        if self._slot is not None:
            self._slot.release()  # after the session ended: the next process may take it
            self._slot = None

    async def _run(self) -> None:
        delay = self.reconnect_delay
        outage = False
        while not self._stop.is_set():
            try:
                conn = await MqttConnection.open(
                    self.host,
                    self.port,
                    client_id=self.identifier,
                    username=self.username,
                    password=self.password,
                    receive_maximum=self.max_in_flight,
                )
                try:
                    await conn.subscribe(self.subscription, qos=1)
                    self.connections += 1
                    self.subscribed.set()
                    log.info(
                        "MQTT: subscribed to %s on %s:%d", self.subscription, self.host, self.port
                    )
                    outage, delay = False, self.reconnect_delay
                    await self._take_batches(conn)
                except BaseException:
                    # Kept by the broker: what was not acknowledged comes again on reconnection.
                    self.subscribed.clear()
                    await conn.close()
                    raise
                # Stopped with every message received stored and acknowledged: the session
                # ends, so the broker hands this process's share to the others at once.
                self.subscribed.clear()
                await conn.close(end_session=True)
                return
            except MqttError as exc:
                if not outage:
                    log.warning(
                        "MQTT: connection to %s:%d lost (%s); retrying", self.host, self.port, exc
                    )
                    outage = True
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
                delay = min(delay * 2, 30.0)

    async def _take_batches(self, conn: MqttConnection) -> None:
        """Store what arrives, batch by batch, until the connection is lost (MqttError) or the
        listener stops. While one batch is written the next is parsed; what arrives meanwhile
        waits for the batch after. When messages could not be stored, the batches in hand are
        finished and MqttError asks for a new connection: the resumed session gets the
        unacknowledged messages again. Stopping unsubscribes, then stores and acknowledges what
        still arrives, and returns once nothing has come for a moment."""
        stopping = asyncio.ensure_future(self._stop.wait())
        receiving: asyncio.Future[list[Publish]] | None = None
        storing: set[asyncio.Task[_Stored]] = set()
        failed, draining = 0, False
        try:
            while True:
                if failed:
                    for stored in await asyncio.gather(*storing):
                        conn.acknowledge(stored.packet_ids)
                        failed += stored.failed
                    storing.clear()
                    raise MqttError(
                        f"{failed} messages could not be stored; reconnecting so that the "
                        "broker delivers them again"
                    )
                if self._stop.is_set() and not draining:
                    draining = True
                    with contextlib.suppress(MqttError):
                        await conn.unsubscribe(self.subscription)
                if receiving is None and len(storing) < BATCHES_IN_FLIGHT:
                    receiving = asyncio.ensure_future(conn.receive(self.batch_size))
                waiting: set[asyncio.Future[Any]] = set(storing)
                if receiving is not None:
                    waiting.add(receiving)
                if not draining:
                    waiting.add(stopping)
                done, _ = await asyncio.wait(
                    waiting,
                    timeout=DRAIN_QUIET if draining else None,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if draining and not done and not storing:
                    return
                for task in [t for t in storing if t.done()]:
                    storing.discard(task)
                    conn.acknowledge(task.result().packet_ids)
                    failed += task.result().failed
                if receiving is not None and receiving.done():
                    batch = receiving.result()  # MqttError once the connection is lost
                    receiving = None
                    storing.add(asyncio.create_task(self._store(batch)))
        finally:
            stopping.cancel()
            if receiving is not None:
                receiving.cancel()
            # Batches handed to the store finish; on a lost connection their messages, not
            # acknowledged, come again to the resumed session.
            await asyncio.gather(*storing, return_exceptions=True)

    async def _store(self, batch: list[Publish]) -> _Stored:
        """Store a batch; the packet ids to acknowledge (not those whose storage failed)."""
        taken: list[Publish] = []
        publications: list[Publication] = []
        acknowledge: list[int] = []
        topics = self._topics
        for message in batch:
            where = topics.get(message.topic, _UNPARSED)
            if where is _UNPARSED:
                where = self.layout.parse(message.topic)
                if len(topics) >= TOPICS_KEPT:
                    topics.clear()
                topics[message.topic] = where
            if where is None:
                acknowledge.append(message.packet_id)
            else:
                taken.append(message)
                publications.append(Publication(where[0], where[1], message.payload))
        try:
            errors = await self.service.mqtt_messages(publications)
        except Exception:  # nothing stored is acknowledged: the broker delivers them again
            log.exception("MQTT: could not store a batch of %d messages", len(publications))
            return _Stored([packet_id for packet_id in acknowledge if packet_id], len(taken))
        failed = 0
        for message, publication, error in zip(taken, publications, errors, strict=True):
            if error is None:
                acknowledge.append(message.packet_id)
                continue
            if isinstance(error, InternalError | ServiceUnavailable):
                if not failed:
                    log.error("MQTT: could not store messages: %s", error.detail)
                failed += 1
                continue
            # Counted in the device's error statistics; a bad message is not retried.
            log.debug("MQTT: refused a message of %s: %s", publication.device_id, error.detail)
            acknowledge.append(message.packet_id)
        return _Stored([packet_id for packet_id in acknowledge if packet_id], failed)
