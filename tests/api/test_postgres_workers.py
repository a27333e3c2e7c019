"""`burgo serve --workers 2` on PostgreSQL, as real processes: the two workers share the port and
the database, and still deliver each notification once, queue each period of a periodic
subscription once and log a device going offline once."""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest

from burgo.ngsild.times import format_datetime
from tests.ingest.test_mqtt import publish
from tests.notify.receiver import Received, receiver
from tests.services import Broker, PostgresServer, free_port

BURGO = Path(sys.executable).parent / "burgo"
ENTITIES = "/ngsi-ld/v1/entities"
SUBS = "/ngsi-ld/v1/subscriptions"
DEVICES = "/api/v1/devices"
TOPIC = "workers/{tenant}/{device}/attrs"
PROCESS = re.compile(r'^burgo_process\{pid="(\d+)"\} 1\.0$', re.MULTILINE)
MQTT_MESSAGES = re.compile(r'^burgo_device_messages_total\{source="mqtt"\} (\S+)$', re.MULTILINE)


@dataclass
class Served:
    """A running `burgo serve --workers 2`: its address, database and log."""

    base: str
    database: str
    log: Path

    def log_lines(self, text: str) -> list[str]:
        """The lines of the server's log holding ``text``."""
        return [line for line in self.log.read_text().splitlines() if text in line]


def wait_for(predicate: object, what: str, timeout: float = 15.0) -> None:
    """Poll ``predicate`` (a callable) until it holds."""
    assert callable(predicate)
    until = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < until, f"after {timeout} s: {what}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def served(
    postgres_server: PostgresServer,
    mqtt_broker: Broker,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    """`burgo serve --workers 2` on a new database, checking device health every 0.2 s (the
    tests share it: each uses entity types of its own)."""
    tmp_path = tmp_path_factory.mktemp("workers")
    name = "burgo_workers"
    with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    database = postgres_server.url(name)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BURGO_")}
    env |= {"BURGO_DEVICE_HEALTH_PERIOD": "0.2", "BURGO_DB_POOL_SIZE": "4"}
    # Topics and a shared group of their own on the session's broker.
    env |= {"BURGO_MQTT_URL": mqtt_broker.url, "BURGO_MQTT_TOPIC": TOPIC}
    env |= {"BURGO_MQTT_SHARED_GROUP": "workers"}
    log = tmp_path / "server.log"
    command = [str(BURGO), "serve", "--port", str(port), "--db", database, "--workers", "2"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=out)
    served = Served(f"http://127.0.0.1:{port}", database, log)
    try:
        # Each worker says so once its app (store, notification delivery, health checks) runs.
        wait_for(
            lambda: process.poll() is None and len(served.log_lines("serving postgresql://")) == 2,
            f"two workers serving; log: {log.read_text()}",
        )
        yield served
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def values(received: list[Received]) -> list[int]:
    """Every speed value the notifications carried."""
    return [item["speed"]["value"] for r in received for item in r.body["data"]]


def test_two_workers_deliver_every_notification_exactly_once(served: Served) -> None:
    cars = [f"urn:ngsi-ld:Car:{n}" for n in range(8)]
    with receiver() as got, httpx.Client(base_url=served.base) as client:
        for car in cars:
            body = {"id": car, "type": "Car", "speed": {"type": "Property", "value": -1}}
            assert client.post(ENTITIES, json=body).status_code == 201
        subscription = {
            "type": "Subscription",
            "entities": [{"type": "Car"}],
            "watchedAttributes": ["speed"],
            "notification": {"endpoint": {"uri": got.url}, "attributes": ["speed"]},
        }
        created = client.post(SUBS, json=subscription)
        assert created.status_code == 201
        sub_id = created.headers["Location"].rsplit("/", 1)[1]

        # Eight connections: the kernel spreads them over both workers.
        connections = [httpx.Client(base_url=served.base) for _ in range(8)]

        def patch(value: int) -> int:
            body = {"speed": {"type": "Property", "value": value}}
            url = f"{ENTITIES}/{cars[value % len(cars)]}/attrs"
            return connections[value % 8].patch(url, json=body).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(patch, range(240))) == {204}
        for connection in connections:
            connection.close()
        got.wait_for(lambda r: len(set(values(r))) >= 240, timeout=30)

        def outbox_empty() -> bool:
            with psycopg.connect(served.database) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM notification_outbox WHERE subscription_id = %s",
                    (sub_id,),
                ).fetchone()
                return row == (0,)

        wait_for(outbox_empty, "the outbox emptied")
        sent = client.get(f"{SUBS}/{sub_id}").json()["notification"]["timesSent"]
        received = list(got.received)
    counts = Counter(values(received))
    assert sorted(counts) == list(range(240))  # the creations' -1 do not match: speed unchanged
    assert [v for v, n in counts.items() if n > 1] == []
    assert sent == len(received)


def test_two_workers_queue_each_period_once(served: Served) -> None:
    with receiver() as got, httpx.Client(base_url=served.base) as client:
        body = {"id": "urn:ngsi-ld:Bus:1", "type": "Bus", "speed": {"type": "Property", "value": 3}}
        assert client.post(ENTITIES, json=body).status_code == 201
        subscription = {
            "type": "Subscription",
            "entities": [{"type": "Bus"}],
            "timeInterval": 1,
            "notification": {"endpoint": {"uri": got.url}},
        }
        created = client.post(SUBS, json=subscription)
        assert created.status_code == 201
        received = got.wait_count(3, timeout=10)
        assert client.delete(created.headers["Location"]).status_code == 204
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(received)]
    assert min(gaps) > 0.5, gaps


def test_a_device_going_offline_is_logged_once(served: Served) -> None:
    with httpx.Client(base_url=served.base) as client:
        created = client.post(DEVICES, json={"id": "c-1", "profile": "classroom"})
        assert created.status_code == 201, created.text
        key = created.json()["apiKey"]
        sent = client.post(
            f"{DEVICES}/c-1/measurements", json={"co2": 700}, headers={"X-Api-Key": key}
        )
        assert sent.status_code == 202, sent.text
        assert client.get(f"{DEVICES}/c-1").json()["status"]["state"] == "online"
        # Its last report an hour back: both workers' health checks now find it silent.
        with psycopg.connect(served.database) as conn:
            an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
            conn.execute("UPDATE device_status SET last_seen = %s", (format_datetime(an_hour_ago),))
        wait_for(
            lambda: client.get(f"{DEVICES}/c-1").json()["status"]["state"] == "offline",
            "the device marked offline",
        )
        # Several more rounds of both workers' checks.
        marked = time.monotonic()
        wait_for(lambda: time.monotonic() - marked > 1.0, "a second")
    assert len(served.log_lines("went offline")) == 1


def mqtt_messages_by_worker(base: str) -> dict[str, float]:
    """Each worker's count of MQTT messages taken in, from its own /metrics (asked on new
    connections until both workers answered)."""
    seen: dict[str, float] = {}
    for _ in range(200):
        text = httpx.get(f"{base}/metrics").text
        pid, count = PROCESS.search(text), MQTT_MESSAGES.search(text)
        assert pid is not None and count is not None
        seen[pid[1]] = float(count[1])
        if len(seen) == 2:
            break
    assert len(seen) == 2, "both workers answer /metrics"
    return seen


def test_two_workers_share_the_mqtt_readings(served: Served, mqtt_broker: Broker) -> None:
    with httpx.Client(base_url=served.base) as client:
        device = {"id": "m-1", "profile": "classroom", "protocol": "mqtt"}
        assert client.post(DEVICES, json=device).status_code == 201
        readings = [("workers/default/m-1/attrs", {"co2": 400 + n}) for n in range(200)]
        publish(mqtt_broker, readings)
        wait_for(
            lambda: client.get(f"{DEVICES}/m-1").json()["status"]["messages"] >= 200,
            "200 messages stored",
        )
        by_worker = mqtt_messages_by_worker(served.base)
        assert client.get(f"{DEVICES}/m-1").json()["status"]["messages"] == 200
    assert sum(by_worker.values()) == 200  # each reading taken in by one worker
    assert all(count > 0 for count in by_worker.values()), by_worker  # by either worker


def test_a_worker_started_again_resumes_the_mqtt_session_of_the_one_that_died(
    served: Served,
) -> None:
    """Runs last: it kills a worker of the shared server."""

    def client_ids() -> list[str]:
        return [line.rsplit(" ", 1)[1] for line in served.log_lines("MQTT: client id ")]

    first = client_ids()
    assert len(first) == 2
    base = first[0].rsplit("-", 1)[0]
    assert sorted(first) == [f"{base}-0", f"{base}-1"]  # one slot each
    text = httpx.get(f"{served.base}/metrics").text
    pid = PROCESS.search(text)
    assert pid is not None
    os.kill(int(pid[1]), signal.SIGKILL)
    wait_for(lambda: len(client_ids()) == 3, "a worker started in the dead one's place", 30)
    # The other worker still holds its slot: the new one took the dead one's, and its session.
    assert client_ids()[2] in first
