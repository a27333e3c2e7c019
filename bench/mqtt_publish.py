"""A lean MQTT 3.1.1 publisher for the ingestion benchmark: QoS 1, paced, little CPU.

The PUBLISH packets are encoded before the clock starts; the publisher writes them in chunks at
the rate asked, keeps at most ``window`` of them unacknowledged, and reads the broker's PUBACKs
in bulk. Every PUBACK must name a packet in flight (none twice), so the count of acknowledged
messages is exact. It costs a few µs of CPU per message, where a paho publisher in Python costs
a few hundred, on the same cores as the server it measures.

>>> packets = [publish_packet("burgo/default/d-1/attrs", b'{"co2":400}', 1)]  # doctest: +SKIP
>>> publish(("127.0.0.1", 1883), packets, rate=5000, window=1000)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass

PUBACK = 0x40
MAX_PACKET_ID = 65535
TICK = 0.005  # seconds between looks at the clock while paced


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def packet_id(n: int) -> int:
    """The packet identifier of the ``n``-th message (1 to 65535, then again)."""
    return n % MAX_PACKET_ID + 1


def publish_packet(topic: str, payload: bytes, mid: int) -> bytes:
    """A QoS 1 PUBLISH packet."""
    name = topic.encode()
    body = struct.pack("!H", len(name)) + name + struct.pack("!H", mid) + payload
    return b"\x32" + _remaining_length(len(body)) + body


def _connect_packet(client_id: str, keepalive: int) -> bytes:
    ident = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02" + struct.pack("!HH", keepalive, len(ident)) + ident
    return b"\x10" + _remaining_length(len(body)) + body


@dataclass(frozen=True)
class Published:
    """What one publishing run did."""

    sent: int
    acknowledged: int
    write_seconds: float  # first packet written → last packet written
    ack_seconds: float  # first packet written → last PUBACK read
    cpu_seconds: float  # CPU of the publishing thread

    @property
    def offered_per_s(self) -> float:
        """The rate the messages were written at."""
        return self.sent / self.write_seconds if self.write_seconds else 0.0


def publish(
    address: tuple[str, int],
    packets: Sequence[bytes],
    *,
    rate: float,
    window: int = 1000,
    first: int = 0,
    timeout: float = 300.0,
    client_id: str = "burgo-bench-publisher",
) -> Published:
    """Write ``packets`` (whose ids are ``packet_id(first)``, ``packet_id(first + 1)``, ...) at
    ``rate`` a second with at most ``window`` unacknowledged; return once every one is
    acknowledged or ``timeout`` seconds have passed."""
    if not 0 < window < MAX_PACKET_ID:
        raise ValueError("the window must hold fewer packets than there are packet ids")
    sock = socket.create_connection(address, timeout=10)
    try:
        sock.sendall(_connect_packet(client_id, keepalive=600))
        connack = sock.recv(4)
        if len(connack) != 4 or connack[0] != 0x20 or connack[3] != 0:
            raise ConnectionError(f"the broker refused the connection: {connack!r}")
        sock.setblocking(False)
        return _run(sock, packets, rate, window, first, timeout)
    finally:
        with contextlib.suppress(OSError):
            sock.setblocking(True)
            sock.sendall(b"\xe0\x00")  # DISCONNECT
        sock.close()


def _run(
    sock: socket.socket,
    packets: Sequence[bytes],
    rate: float,
    window: int,
    first: int,
    timeout: float,
) -> Published:
    total = len(packets)
    in_flight: set[int] = set()
    sent = acknowledged = 0
    out = b""
    unread = b""
    cpu = time.thread_time()
    started = time.monotonic()
    written_at = started
    deadline = started + timeout
    while acknowledged < total:
        now = time.monotonic()
        if now > deadline:
            break
        if not out and sent < total:
            due = min(total, int((now - started) * rate) + 1, acknowledged + window)
            if due > sent:
                out = b"".join(packets[sent:due])
                in_flight.update(packet_id(first + n) for n in range(sent, due))
                sent = due
        if out:
            with contextlib.suppress(BlockingIOError):
                out = out[sock.send(out) :]
            if not out and sent == total:
                written_at = time.monotonic()
        waiting_for_clock = not out and sent < total
        readable, _, _ = select.select(
            [sock], [sock] if out else [], [], TICK if waiting_for_clock else 1.0
        )
        if readable:
            data = sock.recv(1 << 16)
            if not data:
                raise ConnectionError("the broker closed the connection")
            unread, acks = _pubacks(unread + data, in_flight)
            acknowledged += acks
    return Published(
        sent=sent,
        acknowledged=acknowledged,
        write_seconds=written_at - started,
        ack_seconds=time.monotonic() - started,
        cpu_seconds=time.thread_time() - cpu,
    )


def _pubacks(data: bytes, in_flight: set[int]) -> tuple[bytes, int]:
    """Take the complete PUBACKs at the start of ``data`` off ``in_flight``; the bytes left
    over and the count taken. Anything but a PUBACK for a packet in flight is an error."""
    pos, count, end = 0, 0, len(data) - 3
    while pos < end:
        if data[pos] != PUBACK or data[pos + 1] != 2:
            raise ConnectionError(f"expected a PUBACK from the broker, got {data[pos : pos + 4]!r}")
        mid = (data[pos + 2] << 8) | data[pos + 3]
        try:
            in_flight.remove(mid)
        except KeyError:
            raise ConnectionError(f"the broker acknowledged packet {mid}, not in flight") from None
        pos += 4
        count += 1
    return data[pos:], count
