"""Notifications published to a real Mosquitto broker: the spec's {metadata, body} message, on the
endpoint's topic, with the QoS asked for."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest

from tests.api.entity_checks import running_broker
from tests.notify.helpers import create, status, subscribe, update
from tests.services import Broker, mosquitto


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


def _listen(port: int, found: queue.Queue[Any]) -> mqtt.Client:
    """A subscriber to burgo/# with a session the broker keeps while it is away (QoS 1)."""
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id="burgo-test-partner",
        clean_session=False,
        protocol=mqtt.MQTTv311,
    )
    client.on_message = lambda c, u, message: found.put(orjson.loads(message.payload))
    subscribed = queue.Queue[int]()
    client.on_subscribe = lambda *args: subscribed.put(1)
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.subscribe("burgo/#", qos=1)
    subscribed.get(timeout=5)
    return client


def _counters(found: queue.Queue[Any], last: int) -> list[int]:
    """The counter values notified, in order of arrival, until ``last`` shows up."""
    seen: list[int] = []
    while last not in seen:
        message = found.get(timeout=15)
        seen += [item["n"]["value"] for item in message["body"]["data"]]
    return seen


def test_a_broker_down_then_back_gets_every_notification_in_order(tmp_path: Path) -> None:
    workdir = tmp_path / "mosquitto"
    workdir.mkdir()
    found: queue.Queue[Any] = queue.Queue()
    entity_id = "urn:ngsi-ld:Counter:mqtt"
    with running_broker(tmp_path, notification_retry_min=0.05, notification_retry_max=0.2) as app:
        client = app.client
        with mosquitto(workdir, persistent=True) as first:
            port = first.port
            partner = _listen(port, found)
            endpoint = {"uri": f"{first.url}/burgo/counters",
                        "notifierInfo": [{"key": "MQTT-QoS", "value": "1"}]}  # fmt: skip
            sub_id = subscribe(client, endpoint["uri"], entities=[{"type": "Counter"}],
                               notification={"endpoint": endpoint})  # fmt: skip
            create(client, entity_id, "Counter", n=0)
            assert _counters(found, 0) == [0]
            partner.loop_stop()
            partner.disconnect()
        for value in range(1, 21):  # the broker is down: these wait in Burgo's outbox
            update(client, entity_id, n=value)
        failing = _status_until(client, sub_id, "failed")
        assert failing["timesFailed"] >= 1
        with mosquitto(workdir, port, persistent=True):
            # Burgo delivers on its own once the broker is back; the broker keeps the messages
            # for the partner's session until the partner reconnects.
            assert _status_until(client, sub_id, "ok")["timesSent"] >= 2
            partner = _listen(port, found)
            seen = _counters(found, 20)
            partner.loop_stop()
            partner.disconnect()
    assert list(dict.fromkeys(seen)) == list(range(1, 21))


def _status_until(client: Any, sub_id: str, wanted: str) -> Any:
    """The subscription's notification status, once it reads ``wanted`` (10 s at most)."""
    until = time.monotonic() + 10
    shown = status(client, sub_id)["notification"]
    while shown.get("status") != wanted and time.monotonic() < until:
        time.sleep(0.02)
        shown = status(client, sub_id)["notification"]
    assert shown.get("status") == wanted, shown
    return shown
