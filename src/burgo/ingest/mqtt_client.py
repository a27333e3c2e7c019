"""One session with an MQTT 5 broker, as the ingestion listener uses it: subscribe with QoS 1,
take the messages that arrived in one batch, acknowledge a batch in one write.

Ingestion does not go through aiomqtt (which Burgo's MQTT notifications use): under paho, each
message received cost about 100 µs of the event loop (MQTT 5 properties decoded into objects, two
message objects with a lock each, a turn of the event loop and three reads per packet), as much as
storing it; at thousands of messages a second that time is what the event loop does not have.
Here a message costs a slice of a buffer and a tuple.

>>> conn = await MqttConnection.open("127.0.0.1", 1883, client_id="burgo-1")  # doctest: +SKIP
>>> await conn.subscribe("$share/burgo/burgo/+/+/attrs")  # doctest: +SKIP
>>> batch = await conn.receive(1000)  # doctest: +SKIP
>>> conn.acknowledge([m.packet_id for m in batch if m.qos])  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import cast

from burgo.ingest.mqtt_wire import (
    CONNACK,
    DISCONNECT,
    DISCONNECT_PACKET,
    END_SESSION_PACKET,
    PINGREQ_PACKET,
    PINGRESP,
    SUBACK,
    UNSUBACK,
    PacketDecoder,
    ProtocolError,
    Publish,
    Reply,
    connack_reason,
    connect_packet,
    pubacks,
    suback_reasons,
    subscribe_packet,
    unsubscribe_packet,
)


class MqttError(Exception):
    """The broker cannot be reached, refused the session, or the connection was lost."""


class MqttConnection(asyncio.Protocol):
    """A connected session; messages wait in an inbox until :meth:`receive` takes them."""

    def __init__(self, keepalive: int) -> None:
        self.keepalive = keepalive
        self._transport: asyncio.Transport | None = None
        self._decoder = PacketDecoder()
        self._inbox: list[Publish] = []
        self._arrived = asyncio.Event()
        self._replies: dict[int, asyncio.Future[Reply]] = {}
        self._lost: MqttError | None = None
        self._heard = 0.0
        self._pinger: asyncio.Task[None] | None = None
        self._next_id = 0

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        client_id: str,
        username: str | None = None,
        password: str | None = None,
        keepalive: int = 60,
        session_expiry: int = 300,
        receive_maximum: int = 1000,
        answer_within: float = 10.0,
    ) -> MqttConnection:
        """Connect and resume (or start) the client's session; MqttError if that fails."""
        loop = asyncio.get_running_loop()
        conn = cls(keepalive)
        try:
            await asyncio.wait_for(loop.create_connection(lambda: conn, host, port), answer_within)
        except (OSError, TimeoutError) as exc:
            raise MqttError(f"cannot reach {host}:{port}: {exc or type(exc).__name__}") from exc
        try:
            conn._send(
                connect_packet(
                    client_id,
                    keepalive=keepalive,
                    session_expiry=session_expiry,
                    receive_maximum=receive_maximum,
                    username=username,
                    password=password,
                )
            )
            reason = connack_reason((await conn._reply(CONNACK, answer_within)).body)
            if reason:
                raise MqttError(f"the broker refused the connection (reason code {reason:#04x})")
        except BaseException:
            conn.abort()
            raise
        conn._pinger = asyncio.create_task(conn._ping(), name="burgo-mqtt-ping")
        return conn

    async def subscribe(self, topic_filter: str, qos: int = 1, answer_within: float = 10.0) -> None:
        """Subscribe to one filter; MqttError if the broker refuses it."""
        self._next_id = self._next_id % 65535 + 1
        self._send(subscribe_packet(self._next_id, topic_filter, qos))
        _, reasons = suback_reasons((await self._reply(SUBACK, answer_within)).body)
        if not reasons or reasons[0] >= 0x80:
            code = f"{reasons[0]:#04x}" if reasons else "none"
            raise MqttError(f"the broker refused the subscription to {topic_filter} ({code})")

    async def unsubscribe(self, topic_filter: str, answer_within: float = 10.0) -> None:
        """Unsubscribe from a filter: once the broker answers, it sends nothing new for it."""
        self._next_id = self._next_id % 65535 + 1
        self._send(unsubscribe_packet(self._next_id, topic_filter))
        await self._reply(UNSUBACK, answer_within)

    async def receive(self, limit: int) -> list[Publish]:
        """The messages that arrived (``limit`` at most), once there is at least one;
        MqttError once the connection is lost."""
        while not self._inbox:
            if self._lost is not None:
                raise self._lost
            self._arrived.clear()
            await self._arrived.wait()
        if self._lost is not None:
            raise self._lost
        batch = self._inbox[:limit]
        del self._inbox[:limit]
        return batch

    def acknowledge(self, packet_ids: list[int]) -> None:
        """PUBACK these QoS 1 messages, in one write (nothing once the connection is lost:
        the broker delivers them again to the resumed session)."""
        if packet_ids and self._lost is None:
            self._send(pubacks(packet_ids))

    async def close(self, *, end_session: bool = False) -> None:
        """Disconnect normally: the broker keeps the session (and what it has not had
        acknowledged) for the session expiry, or forgets it at once with ``end_session``."""
        if self._lost is None and self._transport is not None:
            self._send(END_SESSION_PACKET if end_session else DISCONNECT_PACKET)
        self.abort()

    def abort(self) -> None:
        """Drop the connection at once."""
        if self._pinger is not None:
            self._pinger.cancel()
        if self._transport is not None:
            self._transport.close()
        self._fail(MqttError("the connection was closed"))

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio.Transport, though they are one.
        self._transport = cast(asyncio.Transport, transport)
        self._heard = asyncio.get_running_loop().time()

    def data_received(self, data: bytes) -> None:
        self._heard = asyncio.get_running_loop().time()
        try:
            packets = self._decoder.feed(data)
        except ProtocolError as exc:
            self._fail(MqttError(f"the broker broke the protocol: {exc}"))
            if self._transport is not None:
                self._transport.close()
            return
        for packet in packets:
            if isinstance(packet, Publish):
                self._inbox.append(packet)
            elif packet.kind == DISCONNECT:
                reason = packet.body[0] if packet.body else 0
                self._fail(MqttError(f"the broker disconnected (reason code {reason:#04x})"))
            elif packet.kind != PINGRESP:
                waiter = self._replies.pop(packet.kind, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(packet)
        if self._inbox:
            self._arrived.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(MqttError(f"the connection was lost: {exc}" if exc else "connection closed"))

    # -- internals -----------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            raise MqttError("the connection is closed")
        self._transport.write(data)

    async def _reply(self, kind: int, answer_within: float) -> Reply:
        if self._lost is not None:
            raise self._lost
        waiter: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._replies[kind] = waiter
        try:
            return await asyncio.wait_for(waiter, answer_within)
        except TimeoutError as exc:
            raise MqttError(f"the broker did not answer within {answer_within:g} s") from exc

    def _fail(self, error: MqttError) -> None:
        if self._lost is None:
            self._lost = error
        for waiter in self._replies.values():
            if not waiter.done():
                waiter.set_exception(self._lost)
        self._replies.clear()
        self._arrived.set()

    async def _ping(self) -> None:
        """Keep the session alive; a broker silent for 1.5 keepalives is taken as gone."""
        loop = asyncio.get_running_loop()
        while self._lost is None:
            await asyncio.sleep(self.keepalive / 2)
            if loop.time() - self._heard > 1.5 * self.keepalive:
                self._fail(MqttError("the broker stopped answering"))
                if self._transport is not None:
                    self._transport.close()
                return
            with contextlib.suppress(MqttError):
                self._send(PINGREQ_PACKET)
