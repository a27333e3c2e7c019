"""PostgreSQL stops and comes back: while it is away Burgo answers 503 with an NGSI-LD problem,
and once it is back Burgo serves again and delivers notifications, without a restart."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from burgo.app import create_app
from burgo.config import load_settings
from tests.conftest import JSON
from tests.notify.receiver import receiver
from tests.services import PostgresServer, postgresql

ENTITIES = "/ngsi-ld/v1/entities"
ROOM = "urn:ngsi-ld:Room:outage"


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A private cluster of this test's own, which it stops and starts."""
    with postgresql() as server:
        yield server


def temperature(value: float) -> dict[str, object]:
    return {"temperature": {"type": "Property", "value": value}}


def test_requests_fail_cleanly_while_postgresql_is_away_and_succeed_once_back(
    own_server: PostgresServer,
) -> None:
    settings = load_settings(
        flags={"db": own_server.url(), "db_pool_size": 4, "notification_retry_min": 0.2},
        environ={},
        config_path=None,
    )
    with receiver() as got, TestClient(create_app(settings)) as client:
        body = {"id": ROOM, "type": "Room", **temperature(20.0)}
        assert client.post(ENTITIES, json=body, headers=JSON).status_code == 201
        subscription = {
            "type": "Subscription",
            "entities": [{"type": "Room"}],
            "watchedAttributes": ["temperature"],
            "notification": {"endpoint": {"uri": got.url}},
        }
        assert client.post("/ngsi-ld/v1/subscriptions", json=subscription).status_code == 201

        own_server.stop()
        for _ in range(6):  # every pooled connection broken, then none to be had
            started = time.monotonic()
            answer = client.get(f"{ENTITIES}/{ROOM}")
            assert answer.status_code == 503, answer.text
            assert answer.headers["content-type"] == "application/json"  # ETSI 6.3.3
            assert answer.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/ServiceUnavailable"
            assert time.monotonic() - started < 5.0
        refused = client.patch(f"{ENTITIES}/{ROOM}/attrs", json=temperature(99.0), headers=JSON)
        assert refused.status_code == 503

        own_server.start()
        deadline = time.monotonic() + 20
        while client.get(f"{ENTITIES}/{ROOM}").status_code != 200:
            assert time.monotonic() < deadline, "Burgo did not recover"
            time.sleep(0.1)
        patched = client.patch(f"{ENTITIES}/{ROOM}/attrs", json=temperature(23.0), headers=JSON)
        assert patched.status_code == 204, patched.text
        received = got.wait_items(1, timeout=20)
        stored = client.get(f"{ENTITIES}/{ROOM}", params={"options": "keyValues"}).json()
    assert stored["temperature"] == 23.0  # the refused write left nothing behind
    assert [item["temperature"]["value"] for r in received for item in r.body["data"]] == [23.0]
