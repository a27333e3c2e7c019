"""MQTT 5 packets as the ingestion listener needs them: the ones it sends, encoded, and the ones
a broker sends it, decoded from a stream of bytes. Pure: no I/O.

>>> decoder = PacketDecoder()
>>> [p.topic for p in decoder.feed(publish_packet("a/b", b"{}", 7))]
['a/b']
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple

CONNECT, CONNACK, PUBLISH, PUBACK = 0x10, 0x20, 0x30, 0x40
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK = 0x82, 0x90, 0xA2, 0xB0
PINGREQ, PINGRESP, DISCONNECT = 0xC0, 0xD0, 0xE0
PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"
# DISCONNECT (normal) that also ends the session: Session Expiry Interval 0.
END_SESSION_PACKET = b"\xe0\x07\x00\x05\x11\x00\x00\x00\x00"
_SESSION_EXPIRY, _RECEIVE_MAXIMUM = 0x11, 0x21
_MAX_REMAINING = 268_435_455


class ProtocolError(Exception):
    """The broker sent something this client does not accept."""


class Publish(NamedTuple):
    """A PUBLISH from the broker (a message of a subscription)."""

    topic: str
    payload: bytes
    qos: int
    packet_id: int  # 0 for QoS 0


@dataclass(frozen=True, slots=True)
class Reply:
    """Any other packet from the broker: its type, and the bytes after its fixed header."""

    kind: int
    body: bytes


def remaining_length(n: int) -> bytes:
    """The variable byte integer of MQTT."""
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("!H", len(data)) + data


def connect_packet(
    client_id: str,
    *,
    keepalive: int,
    session_expiry: int,
    receive_maximum: int,
    username: str | None = None,
    password: str | None = None,
) -> bytes:
    """CONNECT (MQTT 5) resuming the client's session, which the broker keeps for
    ``session_expiry`` seconds after a disconnection."""
    flags = (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    properties = struct.pack("!BIBH", _SESSION_EXPIRY, session_expiry, _RECEIVE_MAXIMUM,
                             receive_maximum)  # fmt: skip
    body = b"\x00\x04MQTT\x05" + struct.pack("!BH", flags, keepalive)
    body += remaining_length(len(properties)) + properties + _string(client_id)
    if username is not None:
        body += _string(username)
    if password is not None:
        body += _string(password)
    return bytes([CONNECT]) + remaining_length(len(body)) + body


def subscribe_packet(packet_id: int, topic_filter: str, qos: int = 1) -> bytes:
    """SUBSCRIBE to one filter (shared subscriptions are filters too)."""
    body = struct.pack("!HB", packet_id, 0) + _string(topic_filter) + bytes([qos])
    return bytes([SUBSCRIBE]) + remaining_length(len(body)) + body


def unsubscribe_packet(packet_id: int, topic_filter: str) -> bytes:
    """UNSUBSCRIBE from one filter."""
    body = struct.pack("!HB", packet_id, 0) + _string(topic_filter)
    return bytes([UNSUBSCRIBE]) + remaining_length(len(body)) + body


def publish_packet(topic: str, payload: bytes, packet_id: int = 0) -> bytes:
    """PUBLISH with QoS 1 (QoS 0 when ``packet_id`` is 0), no properties."""
    header = 0x32 if packet_id else 0x30
    body = _string(topic) + (struct.pack("!H", packet_id) if packet_id else b"") + b"\x00"
    body += payload
    return bytes([header]) + remaining_length(len(body)) + body


def pubacks(packet_ids: list[int]) -> bytes:
    """PUBACK (success) for each packet, in one buffer."""
    return b"".join(struct.pack("!BBH", PUBACK, 2, pid) for pid in packet_ids)


def _variable_int(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data) or shift > 21:
            raise ProtocolError("a malformed variable byte integer")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7


def _decode_publish(flags: int, body: bytes) -> Publish:
    qos = (flags >> 1) & 3
    if qos > 1:
        raise ProtocolError(f"a PUBLISH with QoS {qos} on a QoS 1 subscription")
    if len(body) < 2:
        raise ProtocolError("a truncated PUBLISH")
    (size,) = struct.unpack_from("!H", body)
    pos = 2 + size
    topic = body[2:pos].decode("utf-8", "replace")
    packet_id = 0
    if qos:
        if pos + 2 > len(body):
            raise ProtocolError("a truncated PUBLISH")
        (packet_id,) = struct.unpack_from("!H", body, pos)
        pos += 2
    properties, pos = _variable_int(body, pos)
    pos += properties
    if pos > len(body):
        raise ProtocolError("a truncated PUBLISH")
    return Publish(topic, body[pos:], qos, packet_id)


class PacketDecoder:
    """Cuts a byte stream into packets: PUBLISH decoded, the others as Reply."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[Publish | Reply]:
        """The complete packets ``data`` ends (with what was left from before)."""
        buffer = self._buffer + data if self._buffer else data
        packets: list[Publish | Reply] = []
        pos, end = 0, len(buffer)
        while end - pos >= 2:
            first = buffer[pos]
            if buffer[pos + 1] < 0x80:  # the usual one-byte length
                length, start = buffer[pos + 1], pos + 2
            else:
                try:
                    length, start = _variable_int(buffer, pos + 1)
                except ProtocolError:
                    if end - pos >= 5:
                        raise
                    break  # the length itself is not complete yet
            if start + length > end:
                break
            body = buffer[start : start + length]
            if first & 0xF0 == PUBLISH:
                packets.append(_decode_publish(first & 0x0F, body))
            else:
                packets.append(Reply(first & 0xF0, body))
            pos = start + length
        self._buffer = buffer[pos:]
        return packets


def connack_reason(body: bytes) -> int:
    """The reason code of a CONNACK (0: accepted)."""
    if len(body) < 2:
        raise ProtocolError("a truncated CONNACK")
    return body[1]


def suback_reasons(body: bytes) -> tuple[int, list[int]]:
    """The packet id of a SUBACK and its reason codes (each below 0x80: granted)."""
    if len(body) < 3:
        raise ProtocolError("a truncated SUBACK")
    (packet_id,) = struct.unpack_from("!H", body)
    properties, pos = _variable_int(body, 2)
    return packet_id, list(body[pos + properties :])
