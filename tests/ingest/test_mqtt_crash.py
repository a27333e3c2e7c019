"""`burgo serve` killed with SIGKILL while a publisher streams QoS 1 readings, then restarted on
the same database: every reading the broker acknowledged to the publisher is stored. The broker
keeps what it had sent to the killed process, and what it queued for it since, in that
process's session; only a restarted process that resumes the same session gets them."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import orjson
import paho.mqtt.client as paho

from burgo.ingest.mqtt import MAX_BATCH
from tests.api.device_checks import ENVIRONMENT
from tests.ingest.test_crash import call
from tests.services import burgo_serve, free_port, mosquitto

READINGS = 6000
TARGET = "urn:ngsi-ld:IndoorEnvironmentObserved:k-1"
BASE = 1_714_521_600  # 2024-05-01T00:00:00Z


def stored_messages(port: int, device_id: str = "k-1") -> int:
    """The device's count of readings stored."""
    status, device = call(port, "GET", f"/api/v1/devices/{device_id}")
    assert status == 200, device
    return int(device["status"]["messages"])


def reading(n: int) -> bytes:
    """The ``n``-th reading: co2 = n, at its own second."""
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(BASE + n))
    return orjson.dumps({"co2": n, "observedAt": at})


def test_sigkill_loses_no_reading_the_broker_acknowledged(tmp_path: Path) -> None:
    db, port = tmp_path / "burgo.db", free_port()
    with mosquitto(tmp_path) as broker:
        publisher = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        publisher.max_inflight_messages_set(1000)
        publisher.connect(broker.host, broker.port)
        publisher.loop_start()
        try:
            with burgo_serve(db, port, mqtt_url=broker.url) as process:
                for device_id in ("k-0", "k-1"):
                    device = {"id": device_id, "profile": "classroom", "protocol": "mqtt"}
                    assert call(port, "POST", "/api/v1/devices", device)[0] == 201
                # Subscribed once a probe on another device gets through.
                until = time.monotonic() + 20
                while stored_messages(port, "k-0") == 0 and time.monotonic() < until:
                    publisher.publish("burgo/default/k-0/attrs", reading(0), qos=1)
                    time.sleep(0.2)
                sent = [
                    publisher.publish("burgo/default/k-1/attrs", reading(n), qos=1)
                    for n in range(READINGS)
                ]
                until = time.monotonic() + 60
                while stored_messages(port) < 500 and time.monotonic() < until:
                    time.sleep(0.01)
                before_kill = stored_messages(port)
                process.send_signal(signal.SIGKILL)  # in the middle of the stream
                process.wait(10)
            assert 500 <= before_kill < READINGS, "the stream ended before the kill"
            for info in sent:
                info.wait_for_publish(30)  # the broker acknowledged every reading
            with burgo_serve(db, port, mqtt_url=broker.url):
                until = time.monotonic() + 60
                while stored_messages(port) < READINGS and time.monotonic() < until:
                    time.sleep(0.1)
                time.sleep(0.5)  # any reading stored twice would show now
                messages = stored_messages(port)
                link = f'<{ENVIRONMENT}>; rel="http://www.w3.org/ns/json-ld#context"'
                status, history = call(
                    port,
                    "GET",
                    f"/ngsi-ld/v1/temporal/entities/{TARGET}?attrs=co2&lastN=10000",
                    headers={"Link": link},
                )
                assert status in (200, 206), history
        finally:
            publisher.loop_stop()
            publisher.disconnect()
    values = Counter(instance["value"] for instance in history.get("co2", []))
    missing = set(range(READINGS)) - set(values)
    assert not missing, f"{len(missing)} acknowledged readings lost, e.g. {sorted(missing)[:10]}"
    # At least once: a reading stored just before the kill, whose acknowledgement had not left
    # yet, comes again and is stored again. That can only be the batches being written then.
    twice = sum(count - 1 for count in values.values())
    assert twice <= 2 * MAX_BATCH, f"{twice} readings stored twice"
    assert messages == READINGS + twice
