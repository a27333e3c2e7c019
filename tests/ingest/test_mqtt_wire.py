"""The MQTT 5 packets of the ingestion listener: what a broker sends is read the same however
the stream is cut, properties are skipped, and anything malformed is a ProtocolError."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from burgo.ingest.mqtt_wire import (
    END_SESSION_PACKET,
    PINGRESP,
    SUBACK,
    PacketDecoder,
    ProtocolError,
    Publish,
    Reply,
    connack_reason,
    connect_packet,
    pubacks,
    publish_packet,
    remaining_length,
    suback_reasons,
    subscribe_packet,
    unsubscribe_packet,
)

topics = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)
messages = st.lists(
    st.tuples(topics, st.binary(max_size=300), st.integers(0, 65535)), min_size=1, max_size=20
)


@given(messages, st.data())
def test_a_stream_of_publishes_reads_the_same_however_it_is_cut(
    sent: list[tuple[str, bytes, int]], data: st.DataObject
) -> None:
    stream = b"".join(publish_packet(t, p, i) for t, p, i in sent)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    decoder = PacketDecoder()
    got: list[Publish | Reply] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        got += decoder.feed(stream[start:end])
    assert got == [Publish(t, p, 1 if i else 0, i) for t, p, i in sent]


def test_publish_properties_are_skipped() -> None:
    properties = b"\x01\x01" + b"\x23\x00\x05"  # payload format indicator, topic alias
    body = struct.pack("!H", 3) + b"a/b" + struct.pack("!H", 9)
    body += remaining_length(len(properties)) + properties + b'{"co2":1}'
    packet = b"\x32" + remaining_length(len(body)) + body
    assert PacketDecoder().feed(packet) == [Publish("a/b", b'{"co2":1}', 1, 9)]


def test_other_packets_are_handed_back_and_read() -> None:
    connack = b"\x20\x03\x00\x87\x00"  # not authorized
    suback = b"\x90\x05\x00\x07\x00\x01\x80"  # granted QoS 1, refused
    decoded = PacketDecoder().feed(connack + suback + b"\xd0\x00")
    assert [p.kind for p in decoded if isinstance(p, Reply)] == [0x20, SUBACK, PINGRESP]
    assert connack_reason(decoded[0].body) == 0x87  # type: ignore[union-attr]
    assert suback_reasons(decoded[1].body) == (7, [1, 0x80])  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "stream",
    [
        b"\x34\x05\x00\x01a\x00\x01",  # QoS 2 on a QoS 1 subscription
        b"\x32\x01\x00",  # a PUBLISH too short for its topic length
        b"\x32\x04\x00\x09ab",  # a topic longer than the packet
        b"\x30\xff\xff\xff\xff\x01",  # a remaining length of five bytes
    ],
)
def test_malformed_packets_are_protocol_errors(stream: bytes) -> None:
    with pytest.raises(ProtocolError):
        PacketDecoder().feed(stream)


def test_what_the_listener_sends() -> None:
    connect = connect_packet(
        "burgo-1", keepalive=60, session_expiry=300, receive_maximum=1000, username="u",
        password="p",
    )  # fmt: skip
    assert connect[0] == 0x10 and connect[2:9] == b"\x00\x04MQTT\x05"
    assert connect[9] == 0xC0  # username and password, clean start off: the session resumes
    assert b"\x11\x00\x00\x01\x2c" in connect and b"\x21\x03\xe8" in connect
    assert subscribe_packet(7, "$share/g/a/+") == b"\x82\x12\x00\x07\x00\x00\x0c$share/g/a/+\x01"
    assert pubacks([1, 258]) == b"\x40\x02\x00\x01\x40\x02\x01\x02"
    assert unsubscribe_packet(8, "a/+") == b"\xa2\x08\x00\x08\x00\x00\x03a/+"
    # A normal DISCONNECT whose Session Expiry Interval (0x11) of 0 ends the session.
    assert END_SESSION_PACKET == b"\xe0\x07\x00\x05\x11\x00\x00\x00\x00"
