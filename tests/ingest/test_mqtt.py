"""MQTT ingestion against a real Mosquitto: readings on the device topics reach the entities,
none lost; bad payloads are counted, not stored; messages the database could not take are not
acknowledged and come again; the listener comes back after a broker restart."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as paho
import pytest
from fastapi.testclient import TestClient

from burgo.app import create_app
from burgo.config import load_settings
from burgo.ingest.mqtt import MqttListener, TopicLayout
from burgo.ingest.service import DeviceService, Publication
from burgo.ngsild.errors import BadRequestData, ResourceNotFound
from burgo.store.sqlite import SqliteStore
from tests.api.device_checks import device_app, entity, register, status
from tests.api.entity_checks import START, ManualClock
from tests.services import Broker, mosquitto


def wait_for(condition: Callable[[], Any], what: str, deadline: float = 10.0) -> Any:
    """Poll ``condition`` until it is truthy (the broker delivers asynchronously)."""
    until = time.monotonic() + deadline
    while time.monotonic() < until:
        result = condition()
        if result:
            return result
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def listener(client: TestClient) -> MqttListener:
    """The app's MQTT worker."""
    return next(w for w in client.app.state.workers if isinstance(w, MqttListener))  # type: ignore[attr-defined]


def publish(broker: Broker, messages: list[tuple[str, Any]]) -> None:
    """Publish with QoS 1 and wait until the broker has every message."""
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        infos = [
            client.publish(topic, body if isinstance(body, bytes) else orjson.dumps(body), qos=1)
            for topic, body in messages
        ]
        for info in infos:
            info.wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()


@pytest.fixture(scope="module")
def app(
    mqtt_broker: Broker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, ManualClock]]:
    for client, clock in device_app(tmp_path_factory.mktemp("mqtt"), mqtt_url=mqtt_broker.url):
        worker = listener(client)
        wait_for(worker.subscribed.is_set, "the subscription")
        register(client, {"id": "m-1", "profile": "classroom", "protocol": "mqtt"})
        register(
            client,
            {"id": "m-2", "profile": "noise", "protocol": "mqtt"},
            **{"NGSILD-Tenant": "fundao"},
        )
        yield client, clock


def test_the_topic_layout() -> None:
    layout = TopicLayout("sensors/{tenant}/{device}/up")
    assert layout.filter == "sensors/+/+/up"
    assert layout.parse("sensors/default/aq-1/up") == ("", "aq-1")
    assert layout.parse("sensors/fundao/aq-1/up") == ("fundao", "aq-1")
    assert layout.parse("sensors/fundao/aq-1/down") is None
    assert layout.parse("sensors/fun dao/aq-1/up") is None
    assert TopicLayout("devices/{device}").parse("devices/x") == ("", "x")
    with pytest.raises(ValueError, match=r"one \{device\} segment"):
        TopicLayout("burgo/{tenant}/attrs")


def test_the_listener_uses_a_shared_subscription(app: tuple[TestClient, ManualClock]) -> None:
    assert listener(app[0]).subscription == "$share/burgo/burgo/+/+/attrs"


def test_every_published_reading_reaches_the_entity(
    app: tuple[TestClient, ManualClock], mqtt_broker: Broker
) -> None:
    client, _ = app
    before = status(client, "m-1")["messages"]
    readings = [
        (
            "burgo/default/m-1/attrs",
            {"co2": 400 + n, "observedAt": f"2024-05-01T10:{n // 60:02d}:{n % 60:02d}Z"},
        )
        for n in range(300)
    ]
    publish(mqtt_broker, readings)
    wait_for(lambda: status(client, "m-1")["messages"] == before + 300, "300 messages stored")
    room = entity(client, "urn:ngsi-ld:IndoorEnvironmentObserved:m-1")
    assert room["co2"]["value"] == 699
    assert room["co2"]["observedAt"] == "2024-05-01T10:04:59.000Z"


def test_the_tenant_comes_from_the_topic(
    app: tuple[TestClient, ManualClock], mqtt_broker: Broker
) -> None:
    client, _ = app
    publish(mqtt_broker, [("burgo/fundao/m-2/attrs", {"laeq": 58.5})])
    headers = {"NGSILD-Tenant": "fundao"}

    def stored() -> Any:
        response = client.get(
            "/ngsi-ld/v1/entities/urn:ngsi-ld:NoiseLevelObserved:m-2", headers=headers
        )
        return response.json().get("https://smartdatamodels.org/dataModel.Environment/LAeq")

    assert wait_for(stored, "the noise reading")["value"] == 58.5


def test_bad_payloads_are_counted_and_not_stored(
    app: tuple[TestClient, ManualClock], mqtt_broker: Broker
) -> None:
    client, _ = app
    before = status(client, "m-1")
    room = entity(client, "urn:ngsi-ld:IndoorEnvironmentObserved:m-1")
    publish(
        mqtt_broker,
        [
            ("burgo/default/m-1/attrs", b"not json"),
            ("burgo/default/m-1/attrs", {"c02": 1}),
            ("burgo/default/ghost/attrs", {"co2": 1}),
            ("burgo/default/m-1/attrs", {"co2": 1234}),
        ],
    )
    wait_for(lambda: status(client, "m-1")["messages"] == before["messages"] + 1, "the good one")
    after = status(client, "m-1")
    assert after["errors"] == before["errors"] + 2
    assert "no mapping for 'c02'" in after["lastError"]
    assert entity(client, "urn:ngsi-ld:IndoorEnvironmentObserved:m-1")["co2"]["value"] == 1234
    assert room["co2"]["value"] != 1234


def test_a_bad_message_among_good_ones_spoils_nothing(
    app: tuple[TestClient, ManualClock],
) -> None:
    client, _ = app
    service: DeviceService = client.app.state.devices  # type: ignore[attr-defined]
    before = status(client, "m-1")
    errors = client.portal.call(  # type: ignore[union-attr]
        service.mqtt_messages,
        [
            Publication("", "m-1", b'{"co2": 801}'),
            Publication("", "m-1", b"{not json"),
            Publication("", "m-1", b'{"c02": 1}'),
            Publication("", "ghost", b'{"co2": 1}'),
            Publication("", "m-1", b'{"co2": 802}'),
        ],
    )
    assert errors[0] is None and errors[4] is None
    assert isinstance(errors[1], BadRequestData) and isinstance(errors[2], BadRequestData)
    assert isinstance(errors[3], ResourceNotFound)
    after = status(client, "m-1")
    assert (after["messages"], after["errors"]) == (before["messages"] + 2, before["errors"] + 2)
    assert entity(client, "urn:ngsi-ld:IndoorEnvironmentObserved:m-1")["co2"]["value"] == 802


def test_messages_the_database_could_not_take_come_again(
    tmp_path: Path, mqtt_broker: Broker
) -> None:
    db = tmp_path / "burgo.db"
    settings = load_settings(
        flags={"db": str(db), "mqtt_url": mqtt_broker.url, "mqtt_shared_group": ""},
        environ={},
        config_path=None,
    )
    clock = ManualClock(START)
    # A writer that gives up after 0.2 s on a locked database, instead of waiting 30 s.
    store = SqliteStore(str(db), clock=clock, busy_timeout=0.2)
    with TestClient(create_app(settings, store=store, clock=clock)) as client:
        worker = listener(client)
        wait_for(worker.subscribed.is_set, "the subscription")
        register(client, {"id": "busy-1", "profile": "classroom", "protocol": "mqtt"})
        connections = worker.connections
        lock = sqlite3.connect(db, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")  # another process holds the database
        try:
            publish(
                mqtt_broker,
                [
                    ("burgo/default/busy-1/attrs",
                     {"co2": 500 + n, "observedAt": f"2024-05-01T10:00:0{n}Z"})
                    for n in range(3)
                ],
            )  # fmt: skip
            # Not stored, so not acknowledged: the listener starts a new connection for the
            # broker to deliver them again.
            wait_for(lambda: worker.connections > connections, "a new connection", deadline=20)
            assert status(client, "busy-1")["messages"] == 0
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        wait_for(lambda: status(client, "busy-1")["messages"] == 3, "the 3 readings", deadline=40)
        assert status(client, "busy-1")["errors"] == 0
        room = entity(client, "urn:ngsi-ld:IndoorEnvironmentObserved:busy-1")
        assert room["co2"]["value"] == 502


def test_a_stopped_worker_leaves_no_session_to_take_a_share(
    tmp_path: Path, mqtt_broker: Broker
) -> None:
    flags = {"mqtt_url": mqtt_broker.url, "mqtt_shared_group": "restarts"}
    first = device_app(tmp_path / "first", **flags)
    client, _ = next(first)
    wait_for(listener(client).subscribed.is_set, "the first worker's subscription")
    next(first, None)  # stopped, as by Ctrl+C or SIGTERM
    apps = device_app(tmp_path / "second", **flags)
    client, _ = next(apps)
    try:
        wait_for(listener(client).subscribed.is_set, "the second worker's subscription")
        register(client, {"id": "s-1", "profile": "classroom", "protocol": "mqtt"})
        readings = [
            ("burgo/default/s-1/attrs", {"co2": n, "observedAt": f"2024-05-01T11:00:{n:02d}Z"})
            for n in range(20)
        ]
        publish(mqtt_broker, readings)
        # Every one reaches the running worker: none went to the stopped one's session.
        wait_for(lambda: status(client, "s-1")["messages"] == 20, "the 20 readings")
    finally:
        next(apps, None)


def test_the_listener_reconnects_and_resubscribes_after_a_broker_restart(tmp_path: Path) -> None:
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    with mosquitto(tmp_path / "first") as broker:
        port = broker.port
        apps = device_app(tmp_path, mqtt_url=broker.url, mqtt_shared_group="")
        client, _ = next(apps)
        wait_for(lambda: listener(client).subscribed.is_set(), "the first subscription")
        register(client, {"id": "r-1", "profile": "classroom", "protocol": "mqtt"})
        publish(broker, [("burgo/default/r-1/attrs", {"co2": 500})])
        wait_for(lambda: status(client, "r-1")["messages"] == 1, "the first reading")
    wait_for(lambda: not listener(client).subscribed.is_set(), "the lost connection")
    try:
        with mosquitto(tmp_path / "second", port=port) as broker:
            wait_for(lambda: listener(client).connections == 2, "the reconnection", deadline=15)
            publish(broker, [("burgo/default/r-1/attrs", {"co2": 510})])
            wait_for(lambda: status(client, "r-1")["messages"] == 2, "a reading after the restart")
    finally:
        next(apps, None)
