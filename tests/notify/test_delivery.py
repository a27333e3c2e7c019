"""Notifications reach a real local HTTP receiver: every trigger, filter and format; throttling and
periodic subscriptions on a moved clock; a receiver that goes down and comes back."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.entity_checks import BACKENDS, Broker, backend_database, running_broker
from tests.notify.helpers import ENTITIES, SUBS, create, status, subscribe, unique_type, update
from tests.notify.receiver import Receiver, receiver

CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld"


@pytest.fixture(scope="module", params=BACKENDS)
def broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Broker]:
    """One broker for the module, on each backend, retrying deliveries quickly."""
    with running_broker(
        tmp_path_factory.mktemp("notify"),
        db=backend_database(request),
        notification_retry_min=0.05,
        notification_retry_max=0.2,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def client(broker: Broker) -> TestClient:
    return broker.client


@pytest.fixture
def sink() -> Iterator[Receiver]:
    with receiver() as found:
        yield found


def eventually(read: Callable[[], dict[str, Any]], wanted: Any, key: str = "status",
               timeout: float = 10) -> Any:  # fmt: skip
    """Read a subscription's notification status until ``key`` is ``wanted`` (the status is
    written just after the receiver answered, so it may lag what the receiver saw)."""
    until = time.monotonic() + timeout
    while True:
        found = read()
        if found.get(key) == wanted or time.monotonic() > until:
            return found
        time.sleep(0.02)


def data_of(got: list[Any]) -> list[dict[str, Any]]:
    """Every entity notified, in order of arrival."""
    return [item for r in got for item in r.body["data"]]


# -- triggers ---------------------------------------------------------------------------------


def _append(client: TestClient, entity_id: str) -> None:
    body = {"humidity": {"type": "Property", "value": 40}}
    assert client.post(f"{ENTITIES}/{entity_id}/attrs", json=body).status_code == 204


def _delete_attr(client: TestClient, entity_id: str) -> None:
    assert client.delete(f"{ENTITIES}/{entity_id}/attrs/temperature").status_code == 204


def _delete(client: TestClient, entity_id: str) -> None:
    assert client.delete(f"{ENTITIES}/{entity_id}").status_code == 204


TRIGGERS = {
    # trigger: (what each change does, which changes notify)
    "entityCreated": [True, False, False, False, False],
    "entityUpdated": [False, True, True, True, False],
    "entityDeleted": [False, False, False, False, True],
    "attributeCreated": [True, False, True, False, False],
    "attributeUpdated": [False, True, False, False, False],
    "attributeDeleted": [False, False, False, True, False],
}


@pytest.mark.parametrize("trigger", TRIGGERS)
def test_each_trigger_notifies_the_changes_it_names(
    client: TestClient, sink: Receiver, trigger: str
) -> None:
    kind = unique_type()
    subscribe(client, sink.url, entities=[{"type": kind}], notificationTrigger=[trigger])
    entity_id = f"urn:ngsi-ld:{kind}:1"
    steps = [
        lambda: create(client, entity_id, kind, temperature=20),
        lambda: update(client, entity_id, temperature=21),
        lambda: _append(client, entity_id),
        lambda: _delete_attr(client, entity_id),
        lambda: _delete(client, entity_id),
    ]
    expected = 0
    for step, notifies in zip(steps, TRIGGERS[trigger], strict=True):
        step()
        if notifies:
            expected += 1
            sink.wait_items(expected)
    # A marker change on another subscription's type proves nothing else was queued before it.
    marker = unique_type()
    subscribe(client, sink.url, entities=[{"type": marker}], notificationTrigger=["entityCreated"])
    create(client, f"urn:ngsi-ld:{marker}:1", marker)
    got = data_of(sink.wait_items(expected + 1))
    assert [d["type"] for d in got].count(kind) == expected
    if trigger == "entityDeleted":
        assert got[0] == {"id": entity_id, "type": kind, "deletedAt": got[0]["deletedAt"]}
    if trigger == "attributeDeleted":
        deleted = got[0]["temperature"]
        assert deleted["value"] == "urn:ngsi-ld:null"
        assert "deletedAt" in deleted


def test_default_triggers_are_attribute_created_and_updated(
    client: TestClient, sink: Receiver
) -> None:
    kind = unique_type()
    sub_id = subscribe(client, sink.url, entities=[{"type": kind}])
    create(client, f"urn:ngsi-ld:{kind}:1", kind, temperature=1)
    update(client, f"urn:ngsi-ld:{kind}:1", temperature=2)
    got = sink.wait_items(2)
    assert [d["temperature"]["value"] for d in data_of(got)] == [1, 2]
    notification = got[0].body
    assert notification["type"] == "Notification"
    assert notification["subscriptionId"] == sub_id
    assert notification["id"].startswith("urn:ngsi-ld:Notification:")
    assert notification["notifiedAt"].endswith("Z")
    assert got[0].headers["content-type"] == "application/json"
    assert got[0].headers["link"].startswith(f"<{CORE}>")
    shown = eventually(lambda: status(client, sub_id)["notification"], len(got), "timesSent")
    assert shown["timesSent"] == len(got)
    assert shown["status"] == "ok"
    assert shown["lastSuccess"] == shown["lastNotification"]


# -- filters ----------------------------------------------------------------------------------


def test_selectors_and_watched_attributes_filter(client: TestClient, sink: Receiver) -> None:
    kind = unique_type()
    subscribe(client, sink.url, entities=[{"type": kind, "id": f"urn:ngsi-ld:{kind}:a"}])
    subscribe(client, sink.url, entities=[{"type": kind, "idPattern": ".*:b[0-9]"}])
    subscribe(client, sink.url, entities=[{"type": kind}], watchedAttributes=["noise"])
    for suffix in ("a", "b1", "c"):
        create(client, f"urn:ngsi-ld:{kind}:{suffix}", kind, temperature=1)
    create(client, f"urn:ngsi-ld:{kind}:d", kind, noise=50)
    got = sink.wait_items(3)
    assert sorted(d["id"].rsplit(":", 1)[1] for d in data_of(got)) == ["a", "b1", "d"]


def test_q_scope_and_geo_filters(client: TestClient, sink: Receiver) -> None:
    kind = unique_type()
    subscribe(client, sink.url, entities=[{"type": kind}], q="temperature>25")
    subscribe(client, sink.url, entities=[{"type": kind}], scopeQ="/Fundao/#")
    subscribe(
        client,
        sink.url,
        entities=[{"type": kind}],
        geoQ={"geometry": "Point", "coordinates": [-7.5, 40.1], "georel": "near;maxDistance==1000"},
    )
    create(client, f"urn:ngsi-ld:{kind}:hot", kind, temperature=30)
    create(client, f"urn:ngsi-ld:{kind}:cold", kind, temperature=10)
    scoped = {
        "id": f"urn:ngsi-ld:{kind}:scoped",
        "type": kind,
        "scope": "/Fundao/Centro",
        "temperature": {"type": "Property", "value": 1},
    }
    assert client.post(ENTITIES, json=scoped).status_code == 201
    near = {
        "id": f"urn:ngsi-ld:{kind}:near",
        "type": kind,
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [-7.5, 40.1]},
        },
    }
    far = {**near, "id": f"urn:ngsi-ld:{kind}:far"}
    far["location"] = {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [2, 41]}}
    assert client.post(ENTITIES, json=near).status_code == 201
    assert client.post(ENTITIES, json=far).status_code == 201
    sink.wait_items(3)
    marker = unique_type()
    subscribe(client, sink.url, entities=[{"type": marker}])
    create(client, f"urn:ngsi-ld:{marker}:1", marker, x=1)
    got = sink.wait_items(4)
    ids = [d["id"].rsplit(":", 1)[1] for d in data_of(got)]
    assert sorted(ids[:3]) == ["hot", "near", "scoped"]


def test_paused_and_expired_subscriptions_stay_silent(
    broker: Broker, client: TestClient, sink: Receiver
) -> None:
    kind = unique_type()
    paused = subscribe(client, sink.url, entities=[{"type": kind}], isActive=False)
    soon = broker.clock.moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    expiring = subscribe(client, sink.url, entities=[{"type": kind}], expiresAt=soon[:-1] + ".5Z")
    broker.clock.advance(1)
    assert status(client, expiring)["status"] == "expired"
    create(client, f"urn:ngsi-ld:{kind}:1", kind, temperature=1)
    assert client.patch(f"{SUBS}/{paused}", json={"isActive": True}).status_code == 204
    update(client, f"urn:ngsi-ld:{kind}:1", temperature=2)
    got = sink.wait_count(1)
    assert [d["temperature"]["value"] for d in data_of(got)] == [2]
    assert got[0].body["subscriptionId"] == paused


# -- formats ----------------------------------------------------------------------------------


def _one(client: TestClient, sink: Receiver, **fields: Any) -> dict[str, Any]:
    kind = unique_type()
    subscribe(client, sink.url, entities=[{"type": kind}], **fields)
    body = {
        "id": f"urn:ngsi-ld:{kind}:1",
        "type": kind,
        "temperature": {"type": "Property", "value": 21, "unitCode": "CEL"},
        "name": {"type": "LanguageProperty", "languageMap": {"pt": "Sala", "en": "Room"}},
        "owner": {"type": "Relationship", "object": "urn:ngsi-ld:Person:1"},
    }
    assert client.post(ENTITIES, json=body).status_code == 201
    got = sink.wait_count(1)
    data: dict[str, Any] = got[0].body["data"][0]
    return data


def test_normalized_is_the_default(client: TestClient, sink: Receiver) -> None:
    data = _one(client, sink)
    assert data["temperature"] == {"type": "Property", "value": 21, "unitCode": "CEL"}
    assert data["owner"] == {"type": "Relationship", "object": "urn:ngsi-ld:Person:1"}


def test_concise_and_key_values(client: TestClient, sink: Receiver) -> None:
    assert _one(client, sink, notification={"format": "concise"})["temperature"] == {
        "value": 21,
        "unitCode": "CEL",
    }
    sink.clear()
    simple = _one(client, sink, notification={"format": "keyValues"})
    assert simple["temperature"] == 21
    assert simple["owner"] == "urn:ngsi-ld:Person:1"


def test_attributes_sys_attrs_and_lang(client: TestClient, sink: Receiver) -> None:
    data = _one(client, sink, lang="en", notification={"attributes": ["name"], "sysAttrs": True})
    assert set(data) == {"id", "type", "name", "createdAt", "modifiedAt"}
    assert data["name"]["value"] == "Room"
    assert data["name"]["lang"] == "en"
    assert "createdAt" in data["name"]


def test_show_changes_gives_previous_values(client: TestClient, sink: Receiver) -> None:
    kind = unique_type()
    subscribe(client, sink.url, entities=[{"type": kind}], notification={"showChanges": True},
              notificationTrigger=["attributeUpdated", "attributeDeleted"])  # fmt: skip
    entity_id = f"urn:ngsi-ld:{kind}:1"
    create(client, entity_id, kind, temperature=20, humidity=50)
    update(client, entity_id, temperature=22)
    assert client.delete(f"{ENTITIES}/{entity_id}/attrs/humidity").status_code == 204
    got = data_of(sink.wait_items(2))
    assert got[0]["temperature"]["previousValue"] == 20
    deleted = got[1]["humidity"]
    assert deleted["value"] == "urn:ngsi-ld:null"
    assert deleted["previousValue"] == 50


def test_json_ld_receivers_get_the_context_in_the_body_and_headers_pass_through(
    client: TestClient, sink: Receiver
) -> None:
    kind = unique_type()
    tenant = {"NGSILD-Tenant": "notified"}
    assert client.post(ENTITIES, json={"id": "urn:a:b", "type": "X"}, headers=tenant).status_code
    endpoint = {
        "uri": sink.url,
        "accept": "application/ld+json",
        "receiverInfo": [{"key": "X-Api-Key", "value": "s3cret"}],
    }
    subscribe(client, sink.url, headers=tenant, entities=[{"type": kind}],
              notification={"endpoint": endpoint})  # fmt: skip
    body = {"id": f"urn:ngsi-ld:{kind}:1", "type": kind, "v": {"type": "Property", "value": 1}}
    assert client.post(ENTITIES, json=body, headers=tenant).status_code == 201
    got = sink.wait_count(1)[0]
    assert got.headers["content-type"] == "application/ld+json"
    assert got.headers["ngsild-tenant"] == "notified"
    assert got.headers["x-api-key"] == "s3cret"
    assert "link" not in got.headers
    assert got.body["@context"] == CORE


# -- throttling and periodic ------------------------------------------------------------------


def test_throttling_holds_changes_back_and_sends_the_latest_later(
    broker: Broker, client: TestClient, sink: Receiver
) -> None:
    kind = unique_type()
    sub_id = subscribe(client, sink.url, entities=[{"type": kind}], throttling=30)
    entity_id = f"urn:ngsi-ld:{kind}:1"
    create(client, entity_id, kind, temperature=0)
    sink.wait_count(1)
    for value in range(1, 6):
        update(client, entity_id, temperature=value)
    shown = eventually(lambda: status(client, sub_id)["notification"], 1, "timesSent")
    assert shown["timesSent"] == 1
    broker.clock.advance(29)
    assert len(sink.received) == 1
    broker.clock.advance(2)
    got = sink.wait_count(2)
    assert [d["temperature"]["value"] for d in got[1].body["data"]] == [5]
    shown = eventually(lambda: status(client, sub_id)["notification"], 2, "timesSent")
    assert shown["timesSent"] == 2


def test_periodic_subscriptions_send_the_current_state_every_interval(
    broker: Broker, client: TestClient, sink: Receiver
) -> None:
    kind = unique_type()
    create(client, f"urn:ngsi-ld:{kind}:1", kind, temperature=1)
    create(client, f"urn:ngsi-ld:{kind}:2", kind, temperature=2)
    subscribe(client, sink.url, entities=[{"type": kind}], timeInterval=60)
    update(client, f"urn:ngsi-ld:{kind}:1", temperature=10)
    broker.clock.advance(59)
    assert sink.received == []
    broker.clock.advance(1)
    first = sink.wait_count(1)[0]
    assert [d["temperature"]["value"] for d in first.body["data"]] == [10, 2]
    update(client, f"urn:ngsi-ld:{kind}:2", temperature=20)
    broker.clock.advance(60)
    second = sink.wait_count(2)[1]
    assert [d["temperature"]["value"] for d in second.body["data"]] == [10, 20]


def test_json_ld_context_names_the_notified_attributes(client: TestClient, sink: Receiver) -> None:
    kind = unique_type()
    hosted = client.post("/ngsi-ld/v1/jsonldContexts",
                         json={"@context": {"noise": "https://example.org/city/LAeq"}})  # fmt: skip
    assert hosted.status_code == 201, hosted.text
    url = hosted.headers["Location"]
    subscribe(client, sink.url, entities=[{"type": kind}], jsonldContext=url)
    body = {"id": f"urn:ngsi-ld:{kind}:1", "type": kind,
            "https://example.org/city/LAeq": {"type": "Property", "value": 61}}  # fmt: skip
    assert client.post(ENTITIES, json=body).status_code == 201
    got = sink.wait_count(1)[0]
    assert got.body["data"][0]["noise"]["value"] == 61
    assert f"<{url}>" in got.headers["link"]


# -- receiver down ----------------------------------------------------------------------------


def _metric(client: TestClient, name: str) -> float:
    lines = [line for line in client.get("/metrics").text.splitlines() if line.startswith(name)]
    assert lines, f"/metrics has no {name}"
    return float(lines[0].split()[-1])


def test_a_receiver_that_never_answers_holds_up_nobody(client: TestClient) -> None:
    kind, other = unique_type(), unique_type()
    # A receiver that takes connections and never answers (the notification timeout is 10 s).
    with socket.create_server(("127.0.0.1", 0), backlog=64) as silent:
        port = silent.getsockname()[1]
        stuck = subscribe(client, f"http://127.0.0.1:{port}/notify", entities=[{"type": kind}])
        with receiver() as healthy:
            subscribe(client, healthy.url, entities=[{"type": other}])
            create(client, f"urn:ngsi-ld:{kind}:1", kind, level=1)
            for value in range(2, 6):
                update(client, f"urn:ngsi-ld:{kind}:1", level=value)
            create(client, f"urn:ngsi-ld:{other}:1", other, level=1)
            got = healthy.wait_count(1, timeout=8)
            assert got[0].body["data"][0]["level"]["value"] == 1
            assert status(client, stuck)["notification"]["timesSent"] == 0
        client.delete(f"{SUBS}/{stuck}")


def test_a_receiver_down_then_back_gets_everything_in_order(
    client: TestClient, sink: Receiver
) -> None:
    kind = unique_type()
    sub_id = subscribe(client, sink.url, entities=[{"type": kind}])
    other = unique_type()
    with receiver() as healthy:
        subscribe(client, healthy.url, entities=[{"type": other}])
        entity_id = f"urn:ngsi-ld:{kind}:1"
        create(client, entity_id, kind, counter=0)
        sink.wait_count(1)
        sink.stop()
        for value in range(1, 31):
            update(client, entity_id, counter=value)
        create(client, f"urn:ngsi-ld:{other}:1", other, x=1)
        healthy.wait_count(1)  # another subscription is not held up by the dead receiver
    failing = eventually(lambda: status(client, sub_id)["notification"], "failed")
    assert failing["status"] == "failed"
    assert failing["timesFailed"] >= 1
    assert "lastFailure" in failing
    assert _metric(client, "burgo_notifications_failed_total") >= failing["timesFailed"]
    assert _metric(client, "burgo_notifications_pending") >= 1
    sink.start()
    got = sink.wait_for(lambda r: bool(r) and data_of(r)[-1]["counter"]["value"] == 30)
    values = [d["counter"]["value"] for d in data_of(got)]
    assert values == list(range(31))
    assert eventually(lambda: status(client, sub_id)["notification"], "ok")["status"] == "ok"
