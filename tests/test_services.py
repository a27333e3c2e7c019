"""The test peers themselves work: a message published to the private broker comes back."""

from __future__ import annotations

import asyncio

import aiomqtt

from tests.services import Broker


def test_private_mosquitto_delivers_a_message(mqtt_broker: Broker) -> None:
    async def round_trip() -> bytes:
        async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port) as client:
            await client.subscribe("burgo/test", qos=1)
            await client.publish("burgo/test", b"hello", qos=1)
            async for message in client.messages:
                return bytes(message.payload)  # type: ignore[arg-type]
        raise AssertionError("no message")

    assert asyncio.run(asyncio.wait_for(round_trip(), 10)) == b"hello"
