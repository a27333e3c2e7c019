"""Notifications published to a real Mosquitto broker: the spec's {metadata, body} message, on the
endpoint's topic, with the QoS asked for."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest

from tests.api.entity_checks import running_broker
from tests.notify.helpers import create, subscribe, update
from tests.services import Broker


@pytest.fixture
def messages(mqtt_broker: Broker) -> Iterator[queue.Queue[Any]]:
    """Messages published under burgo/# on the test broker, as they arrive."""
    found: queue.Queue[Any] = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_message = lambda c, u, message: found.put(message)
    subscribed = queue.Queue[int]()
    client.on_subscribe = lambda *args: subscribed.put(1)
    client.connect(mqtt_broker.host, mqtt_broker.port)
    client.loop_start()
    client.subscribe("burgo/#", qos=2)
    subscribed.get(timeout=5)
    yield found
    client.loop_stop()
    client.disconnect()


@pytest.mark.parametrize(("version", "qos"), [("mqtt5.0", "1"), ("mqtt3.1.1", "2"), (None, None)])
def test_notifications_are_published_on_the_endpoint_topic(
    tmp_path: Path, mqtt_broker: Broker, messages: queue.Queue[Any], version: str | None,
    qos: str | None,
) -> None:  # fmt: skip
    notifier = []
    if version:
        notifier.append({"key": "MQTT-Version", "value": version})
    if qos:
        notifier.append({"key": "MQTT-QoS", "value": qos})
    endpoint = {
        "uri": f"{mqtt_broker.url}/burgo/rooms",
        "notifierInfo": notifier,
        "receiverInfo": [{"key": "X-Partner", "value": "coop"}],
    }
    with running_broker(tmp_path) as broker:
        client = broker.client
        sub_id = subscribe(client, endpoint["uri"], entities=[{"type": "Room"}],
                           notification={"endpoint": endpoint})  # fmt: skip
        create(client, "urn:ngsi-ld:Room:1", "Room", temperature=20)
        first = messages.get(timeout=10)
        update(client, "urn:ngsi-ld:Room:1", temperature=21)
        second = messages.get(timeout=10)
    assert first.topic == "burgo/rooms"
    assert first.qos == int(qos or 0)
    message = orjson.loads(first.payload)
    assert set(message) == {"metadata", "body"}
    assert message["metadata"]["Content-Type"] == "application/json"
    assert message["metadata"]["Link"].startswith("<https://uri.etsi.org/ngsi-ld/")
    assert message["metadata"]["X-Partner"] == "coop"
    body = message["body"]
    assert body["type"] == "Notification"
    assert body["subscriptionId"] == sub_id
    assert body["data"][0]["temperature"]["value"] == 20
    assert orjson.loads(second.payload)["body"]["data"][0]["temperature"]["value"] == 21
