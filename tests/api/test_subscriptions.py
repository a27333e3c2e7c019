"""The subscription API: create, read, list with pagination, update, delete; validation; tenants;
the guard on notification targets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.entity_checks import BACKENDS, assert_problem, backend_database, running_broker
from tests.conftest import LD, link
from tests.notify.helpers import SUBS, subscribe

CTX = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld"
TARGET = "http://192.0.2.10:8080/notify"


@pytest.fixture(scope="module", params=BACKENDS)
def client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """One broker for the module, on each backend."""
    with running_broker(tmp_path_factory.mktemp("subs"), db=backend_database(request)) as broker:
        yield broker.client


@pytest.fixture(autouse=True)
def no_subscriptions(client: TestClient) -> Iterator[None]:
    yield
    for tenant in (None, "city2"):
        headers = {"NGSILD-Tenant": tenant} if tenant else None
        listed = client.get(SUBS, params={"limit": 1000}, headers=headers)
        for sub in listed.json() if listed.status_code == 200 else []:
            client.delete(f"{SUBS}/{sub['id']}", headers=headers)


FULL: dict[str, Any] = {
    "id": "urn:ngsi-ld:Subscription:full",
    "type": "Subscription",
    "subscriptionName": "Hot rooms",
    "description": "Rooms above 25 degrees",
    "entities": [
        {"type": "Room", "idPattern": "urn:ngsi-ld:Room:.*"},
        {"type": "Office", "id": "urn:ngsi-ld:Office:1"},
    ],
    "watchedAttributes": ["temperature"],
    "notificationTrigger": ["attributeUpdated", "entityDeleted"],
    "q": "temperature>25",
    "geoQ": {"geometry": "Point", "coordinates": [-7.5, 40.1], "georel": "near;maxDistance==2000"},
    "scopeQ": "/Fundao",
    "isActive": True,
    "expiresAt": "2030-01-01T00:00:00Z",
    "throttling": 5,
    "lang": "pt",
    "notification": {
        "attributes": ["temperature", "name"],
        "format": "concise",
        "showChanges": True,
        "sysAttrs": True,
        "endpoint": {
            "uri": TARGET,
            "accept": "application/ld+json",
            "receiverInfo": [{"key": "Authorization", "value": "Bearer x"}],
            "notifierInfo": [{"key": "MQTT-QoS", "value": "1"}],
        },
    },
}


def test_a_subscription_reads_back_with_every_field_and_its_status(client: TestClient) -> None:
    response = client.post(SUBS, json=FULL)
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == f"{SUBS}/urn:ngsi-ld:Subscription:full"

    got = client.get(f"{SUBS}/urn:ngsi-ld:Subscription:full")
    assert got.status_code == 200
    assert got.headers["Link"].startswith(f"<{CTX}>")
    body = got.json()
    expected = {k: v for k, v in FULL.items() if k != "notification"}
    expected["expiresAt"] = "2030-01-01T00:00:00.000Z"
    expected["throttling"] = 5.0
    for key, value in expected.items():
        assert body[key] == value, key
    assert body["status"] == "active"
    notification = body["notification"]
    assert notification["endpoint"] == FULL["notification"]["endpoint"]
    assert notification["attributes"] == ["temperature", "name"]
    assert notification["format"] == "concise"
    assert notification["showChanges"] is True
    assert notification["timesSent"] == 0
    assert notification["timesFailed"] == 0
    assert "lastSuccess" not in notification


def test_json_ld_bodies_and_answers_carry_the_context(client: TestClient) -> None:
    body = {
        "@context": {"temp": "https://example.org/temperature", "Room": "https://ex.org/Room"},
        "type": "Subscription",
        "entities": [{"type": "Room"}],
        "watchedAttributes": ["temp"],
        "notification": {"endpoint": {"uri": TARGET}},
    }
    sub_id = client.post(SUBS, json=body, headers=LD).headers["Location"].rsplit("/", 1)[1]
    plain = client.get(f"{SUBS}/{sub_id}").json()
    assert plain["watchedAttributes"] == ["https://example.org/temperature"]
    assert plain["entities"] == [{"type": "https://ex.org/Room"}]
    as_ld = client.get(f"{SUBS}/{sub_id}", headers={"Accept": "application/ld+json"})
    assert as_ld.headers["content-type"].startswith("application/ld+json")
    assert as_ld.json()["@context"] == CTX


def test_the_list_pages_with_limit_offset_and_count(client: TestClient) -> None:
    ids = [
        subscribe(client, TARGET, id=f"urn:ngsi-ld:Subscription:p{i}", entities=[{"type": "R"}])
        for i in range(5)
    ]
    first = client.get(SUBS, params={"limit": 2, "count": "true"})
    assert first.status_code == 200
    assert [s["id"] for s in first.json()] == ids[:2]
    assert first.headers["NGSILD-Results-Count"] == "5"
    assert 'rel="next"' in ",".join(first.headers.get_list("Link"))
    rest = client.get(SUBS, params={"limit": 10, "offset": 2})
    assert [s["id"] for s in rest.json()] == ids[2:]
    only_count = client.get(SUBS, params={"limit": 0, "count": "true"})
    assert only_count.json() == []
    assert only_count.headers["NGSILD-Results-Count"] == "5"
    assert_problem(client.get(SUBS, params={"limit": "x"}), 400, "BadRequestData")
    assert_problem(client.get(SUBS, params={"limit": 5000}), 400, "BadRequestData")


def test_patch_replaces_the_members_given(client: TestClient) -> None:
    sub_id = subscribe(client, TARGET, entities=[{"type": "Room"}])
    response = client.patch(
        f"{SUBS}/{sub_id}",
        json={"isActive": False, "notification": {"format": "keyValues"}, "throttling": 2},
    )
    assert response.status_code == 204, response.text
    body = client.get(f"{SUBS}/{sub_id}").json()
    assert body["isActive"] is False
    assert body["status"] == "paused"
    assert body["throttling"] == 2
    assert body["notification"]["format"] == "keyValues"
    assert body["notification"]["endpoint"]["uri"] == TARGET


def test_delete_removes_it(client: TestClient) -> None:
    sub_id = subscribe(client, TARGET, entities=[{"type": "Room"}])
    assert client.delete(f"{SUBS}/{sub_id}").status_code == 204
    assert_problem(client.get(f"{SUBS}/{sub_id}"), 404, "ResourceNotFound")
    assert_problem(client.delete(f"{SUBS}/{sub_id}"), 404, "ResourceNotFound")
    assert_problem(client.patch(f"{SUBS}/{sub_id}", json={"isActive": False}), 404,
                   "ResourceNotFound")  # fmt: skip


def test_the_same_id_twice_is_a_conflict(client: TestClient) -> None:
    subscribe(client, TARGET, id="urn:ngsi-ld:Subscription:twice", entities=[{"type": "R"}])
    again = client.post(SUBS, json={**FULL, "id": "urn:ngsi-ld:Subscription:twice"})
    assert_problem(again, 409, "AlreadyExists")


BAD: list[tuple[str, dict[str, Any]]] = [
    ("no notification", {"entities": [{"type": "R"}]}),
    ("no endpoint", {"entities": [{"type": "R"}], "notification": {}}),
    ("neither entities nor watched", {"notification": {"endpoint": {"uri": TARGET}}}),
    ("selector without type", {"entities": [{"id": "urn:a:b"}]}),
    ("id and idPattern", {"entities": [{"type": "R", "id": "urn:a:b", "idPattern": ".*"}]}),
    ("bad idPattern", {"entities": [{"type": "R", "idPattern": "("}]}),
    ("unknown trigger", {"entities": [{"type": "R"}], "notificationTrigger": ["x"]}),
    ("empty watched", {"watchedAttributes": []}),
    ("negative throttling", {"entities": [{"type": "R"}], "throttling": -1}),
    ("interval with throttling", {"entities": [{"type": "R"}], "throttling": 1, "timeInterval": 5}),
    ("interval with watched", {"entities": [{"type": "R"}], "watchedAttributes": ["a"],
                               "timeInterval": 5}),
    ("expired", {"entities": [{"type": "R"}], "expiresAt": "2001-01-01T00:00:00Z"}),
    ("bad q", {"entities": [{"type": "R"}], "q": "temperature>>"}),
    ("bad geoQ", {"entities": [{"type": "R"}], "geoQ": {"geometry": "Point"}}),
    ("bad scopeQ", {"entities": [{"type": "R"}], "scopeQ": "no-slash"}),
    ("unknown member", {"entities": [{"type": "R"}], "colour": "red"}),
    ("isActive not boolean", {"entities": [{"type": "R"}], "isActive": "yes"}),
    ("wrong type", {"type": "Entity", "entities": [{"type": "R"}]}),
    ("ftp endpoint", {"entities": [{"type": "R"}],
                      "notification": {"endpoint": {"uri": "ftp://x/y"}}}),
    ("mqtt without topic", {"entities": [{"type": "R"}],
                            "notification": {"endpoint": {"uri": "mqtt://broker"}}}),
    ("bad QoS", {"entities": [{"type": "R"}], "notification": {"endpoint": {
        "uri": "mqtt://broker/t", "notifierInfo": [{"key": "MQTT-QoS", "value": "3"}]}}}),
    ("bad format", {"entities": [{"type": "R"}], "notification": {"format": "pretty"}}),
    ("bad accept", {"entities": [{"type": "R"}], "notification": {"endpoint": {
        "uri": TARGET, "accept": "text/plain"}}}),
]  # fmt: skip


@pytest.mark.parametrize(("why", "fields"), BAD, ids=[b[0] for b in BAD])
def test_bad_subscriptions_are_refused_and_nothing_is_stored(
    client: TestClient, why: str, fields: dict[str, Any]
) -> None:
    body: dict[str, Any] = {"type": "Subscription", **fields}
    if "notification" not in fields and why != "no notification":
        body["notification"] = {"endpoint": {"uri": TARGET}}
    elif (
        "notification" in fields
        and "endpoint" not in fields["notification"]
        and fields["notification"]
    ):
        body["notification"] = {**fields["notification"], "endpoint": {"uri": TARGET}}
    assert_problem(client.post(SUBS, json=body), 400, "BadRequestData")
    assert client.get(SUBS).json() == []


def test_a_bad_patch_changes_nothing(client: TestClient) -> None:
    sub_id = subscribe(client, TARGET, entities=[{"type": "Room"}])
    before = client.get(f"{SUBS}/{sub_id}").json()
    for fragment in ({"throttling": 0}, {"timeInterval": 5, "watchedAttributes": ["a"]}, {}, []):
        assert_problem(client.patch(f"{SUBS}/{sub_id}", json=fragment), 400, "BadRequestData")
    assert client.get(f"{SUBS}/{sub_id}").json() == before


def test_broken_bodies_are_invalid_requests(client: TestClient) -> None:
    response = client.post(SUBS, content=b"{", headers={"Content-Type": "application/json"})
    assert_problem(response, 400, "InvalidRequest")
    response = client.post(SUBS, content=b"{}", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415


def test_subscriptions_belong_to_their_tenant(client: TestClient) -> None:
    tenant = {"NGSILD-Tenant": "city2"}
    sub_id = subscribe(client, TARGET, headers=tenant, entities=[{"type": "Room"}])
    assert client.get(f"{SUBS}/{sub_id}", headers=tenant).status_code == 200
    assert_problem(client.get(f"{SUBS}/{sub_id}"), 404, "ResourceNotFound")
    assert client.get(SUBS).json() == []
    unknown = client.get(SUBS, headers={"NGSILD-Tenant": "nowhere"})
    assert_problem(unknown, 404, "NonexistentTenant")


def test_a_link_header_compacts_the_names_shown(client: TestClient) -> None:
    body = {
        "type": "Subscription",
        "entities": [{"type": "https://example.org/Room"}],
        "notification": {"endpoint": {"uri": TARGET}},
    }
    sub_id = client.post(SUBS, json=body).headers["Location"].rsplit("/", 1)[1]
    context = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld"
    shown = client.get(f"{SUBS}/{sub_id}", headers=link(context)).json()
    assert shown["entities"] == [{"type": "https://example.org/Room"}]


# -- the guard --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with running_broker(
        tmp_path_factory.mktemp("guarded"),
        notification_allowed_networks="192.0.2.0/24,2001:db8::/32",
    ) as broker:
        yield broker.client


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:9000/notify",
        "http://localhost/notify",
        "http://10.1.2.3/notify",
        "mqtt://[::1]:1883/topic",
        "http://no-such-host.invalid/notify",
    ],
)
def test_the_guard_refuses_targets_outside_the_allowed_networks(
    guarded: TestClient, uri: str
) -> None:
    body = {
        "type": "Subscription",
        "entities": [{"type": "Room"}],
        "notification": {"endpoint": {"uri": uri}},
    }
    problem = assert_problem(guarded.post(SUBS, json=body), 400, "BadRequestData")
    assert "allowed networks" in problem["detail"] or "resolved" in problem["detail"]
    assert guarded.get(SUBS).json() == []


def test_the_guard_lets_allowed_targets_through_and_checks_patches(guarded: TestClient) -> None:
    sub_id = subscribe(guarded, TARGET, entities=[{"type": "Room"}])
    moved = {"notification": {"endpoint": {"uri": "http://127.0.0.1/x"}}}
    assert_problem(guarded.patch(f"{SUBS}/{sub_id}", json=moved), 400, "BadRequestData")
    assert guarded.get(f"{SUBS}/{sub_id}").json()["notification"]["endpoint"]["uri"] == TARGET
    guarded.delete(f"{SUBS}/{sub_id}")


def test_guard_setting_must_hold_networks(tmp_path: Path) -> None:
    from burgo.config import SettingsError, load_settings

    with pytest.raises(SettingsError, match="notification_allowed_networks"):
        load_settings(
            flags={"db": str(tmp_path / "x.db")},
            environ={"BURGO_NOTIFICATION_ALLOWED_NETWORKS": "10.0.0.0/8,nonsense"},
            config_path=None,
        )
