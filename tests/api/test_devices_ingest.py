"""Taking measurements in: HTTP readings and batches, The Things Stack and ChirpStack uplinks (the
recorded real payloads), redeliveries stored once, bad input refused with nothing stored, and
device health moving with the clock."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.device_checks import (
    CHIRPSTACK_SECRET,
    DEVICE_CTX,
    DEVICES,
    ENVIRONMENT,
    TTS_SECRET,
    device_app,
    empty,
    entity,
    register,
    sdm_link,
    status,
)
from tests.api.entity_checks import BACKENDS, ManualClock, assert_problem, backend_database
from tests.conftest import DATA

WEATHER = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Weather/master/context.jsonld"
)
TTS = "/api/v1/lorawan/tts"
CHIRPSTACK = "/api/v1/lorawan/chirpstack"


def sample(name: str) -> dict[str, Any]:
    """A recorded payload from tests/data/lorawan."""
    loaded: dict[str, Any] = json.loads((DATA / "lorawan" / name).read_text())
    return loaded


@pytest.fixture(scope="module", params=BACKENDS)
def app(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, ManualClock]]:
    """One app for the module, on each backend."""
    url = backend_database(request)
    flags = {"db": url} if url else {}
    yield from device_app(tmp_path_factory.mktemp("ingest"), **flags)


@pytest.fixture
def client(app: tuple[TestClient, ManualClock]) -> Iterator[TestClient]:
    yield app[0]
    empty(app[0])


@pytest.fixture
def clock(app: tuple[TestClient, ManualClock]) -> ManualClock:
    return app[1]


def classroom(client: TestClient) -> str:
    """Register a classroom sensor; its API key."""
    key: str = register(client, {"id": "c-1", "profile": "classroom"})["apiKey"]
    return key


def send(client: TestClient, key: str | None, body: Any, device: str = "c-1") -> Any:
    headers = {"X-Api-Key": key} if key else {}
    return client.post(f"{DEVICES}/{device}/measurements", json=body, headers=headers)


ROOM = "urn:ngsi-ld:IndoorEnvironmentObserved:c-1"


def test_a_reading_without_a_time_is_observed_now(client: TestClient, clock: ManualClock) -> None:
    key = classroom(client)
    clock.advance(1)
    response = send(client, key, {"co2": 812, "temperature": 21.4, "humidity": 48})
    assert response.status_code == 202
    assert response.json() == {"stored": 1}
    room = entity(client, ROOM)
    now = clock.now().isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert room["co2"] == {"type": "Property", "value": 812, "observedAt": now, "unitCode": "59"}
    assert room["relativeHumidity"]["value"] == 0.48  # the profile's scale: percent to 0..1
    assert status(client, "c-1")["lastSeen"] == now


def test_a_batch_with_times_lands_in_time_order(client: TestClient) -> None:
    key = classroom(client)
    batch = [
        {"co2": 900, "observedAt": "2024-05-01T09:10:00Z"},
        {"co2": 700, "observedAt": "2024-05-01T09:00:00+00:00"},
        {"co2": 800, "temperature": 20.5, "observedAt": "2024-05-01T10:05:00+01:00"},
    ]
    response = client.post(
        f"{DEVICES}/c-1/measurements", json=batch, headers={"Authorization": f"Bearer {key}"}
    )
    assert response.json() == {"stored": 3}
    room = entity(client, ROOM)
    assert (room["co2"]["value"], room["co2"]["observedAt"]) == (900, "2024-05-01T09:10:00.000Z")
    assert room["temperature"]["observedAt"] == "2024-05-01T09:05:00.000Z"
    assert status(client, "c-1")["messages"] == 1


def test_history_keeps_every_reading_of_a_batch(client: TestClient) -> None:
    key = register(client, {"id": "hist-1", "profile": "classroom"})["apiKey"]
    batch = [{"co2": 700 + n, "observedAt": f"2024-05-02T09:0{n}:00Z"} for n in range(3)]
    assert send(client, key, batch, "hist-1").json() == {"stored": 3}
    response = client.get(
        "/ngsi-ld/v1/temporal/entities/urn:ngsi-ld:IndoorEnvironmentObserved:hist-1",
        params={"attrs": "co2", "options": "temporalValues"},
        headers=sdm_link(ENVIRONMENT),
    )
    assert response.status_code == 200, response.text
    assert response.json()["co2"]["values"] == [
        [700, "2024-05-02T09:00:00.000Z"],
        [701, "2024-05-02T09:01:00.000Z"],
        [702, "2024-05-02T09:02:00.000Z"],
    ]


def test_a_wrong_or_missing_key_is_refused_and_counted(client: TestClient) -> None:
    key = classroom(client)
    for n, bad in enumerate((None, key[:-1] + ("A" if key[-1] != "A" else "B"), "bgk_other")):
        response = send(client, bad, {"co2": 1})
        assert response.status_code == 401, response.text
        assert response.json()["type"] == "about:blank"
        health = status(client, "c-1")
        assert health["errors"] == n + 1
        assert health["lastError"] == ("missing API key" if bad is None else "wrong API key")
    assert "co2" not in entity(client, ROOM)
    assert health["messages"] == 0


def test_a_body_that_is_not_json_is_refused_and_counted(client: TestClient) -> None:
    key = classroom(client)
    response = client.post(
        f"{DEVICES}/c-1/measurements",
        content=b'{"co2": 6',
        headers={"X-Api-Key": key, "Content-Type": "application/json"},
    )
    problem = assert_problem(response, 400, "InvalidRequest")
    health = status(client, "c-1")
    assert (health["errors"], health["messages"]) == (1, 0)
    assert health["lastError"] == problem["detail"]
    assert "co2" not in entity(client, ROOM)


def test_measurements_for_an_unknown_device(client: TestClient) -> None:
    def refused() -> float:
        metrics = client.get("/metrics").text
        line = next(x for x in metrics.splitlines() if x.startswith(REFUSED_HTTP))
        return float(line.split()[-1])

    before = refused()
    assert_problem(send(client, "bgk_x", {"co2": 1}, "ghost"), 404, "ResourceNotFound")
    assert refused() == before + 1


REFUSED_HTTP = 'burgo_device_messages_rejected_total{source="http"}'


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"co2": 600, "c02": 1}, "no mapping for 'c02'; it maps: co2, humidity, temperature"),
        ({"co2": 600, "observedAt": "yesterday"}, "observedAt must be an ISO 8601 date-time"),
        ({"co2": 600, "observedAt": "2024-13-01T10:00:00Z"}, "observedAt is not a valid ISO 8601"),
        ({"co2": 600, "observedAt": "2024-05-01T10:00:00"}, "must carry a time zone"),
        ({"humidity": "wet"}, "'humidity' is scaled, so it must be a number"),
        ({"co2": [1, 2]}, "must be a number, string, boolean"),
        ({"observedAt": "2024-05-01T10:00:00Z"}, "holds no measurement"),
        ([], "must not be empty"),
        ([{"co2": 1}, {"co2": 2, "x": 3}], "no mapping for 'x'"),
        ([{"co2": 1}, 7], "reading 1 must be a JSON object"),
    ],
)
def test_bad_readings_are_refused_counted_and_store_nothing(
    client: TestClient, body: Any, detail: str
) -> None:
    key = classroom(client)
    before = entity(client, ROOM)
    problem = assert_problem(send(client, key, body), 400, "BadRequestData")
    assert detail in problem["detail"]
    assert entity(client, ROOM) == before
    health = status(client, "c-1")
    assert (health["errors"], health["messages"], health["state"]) == (1, 0, "unknown")
    assert detail in health["lastError"]


def test_a_removed_device_is_refused_at_once_and_can_come_back(client: TestClient) -> None:
    old_key = classroom(client)
    assert send(client, old_key, {"co2": 600}).status_code == 202
    assert client.delete(f"{DEVICES}/c-1").status_code == 204
    assert_problem(send(client, old_key, {"co2": 601}), 404, "ResourceNotFound")
    new_key = classroom(client)
    assert send(client, old_key, {"co2": 602}).status_code == 401
    assert send(client, new_key, {"co2": 603}).status_code == 202
    assert entity(client, ROOM)["co2"]["value"] == 603


def test_a_deleted_target_entity_comes_back(client: TestClient) -> None:
    key = classroom(client)
    assert client.delete(f"/ngsi-ld/v1/entities/{ROOM}").status_code == 204
    assert send(client, key, {"co2": 650}).status_code == 202
    room = entity(client, ROOM)
    assert room["co2"]["value"] == 650
    assert room["refDevice"]["object"] == "urn:ngsi-ld:Device:c-1"


# -- LoRaWAN -----------------------------------------------------------------------------------


def tts_device(client: TestClient) -> None:
    register(
        client,
        {
            "id": "tts-1",
            "protocol": "lorawan",
            "devEUI": "0004a30b001c0530",
            "entityType": "WeatherObserved",
            "context": WEATHER,
            "mapping": [
                {"measurement": "temperature", "attribute": "temperature", "unitCode": "CEL"},
                {"measurement": "luminosity", "attribute": "illuminance", "scale": 1000},
            ],
        },
    )


def post_tts(client: TestClient, body: Any, secret: str | None = TTS_SECRET) -> Any:
    return client.post(TTS, json=body, headers={"X-Burgo-Secret": secret} if secret else {})


def test_a_things_stack_uplink_updates_the_entity_and_the_radio_status(client: TestClient) -> None:
    tts_device(client)
    response = post_tts(client, sample("tts-v3-uplink-example.json"))
    assert (response.status_code, response.json()) == (202, {"result": "stored"})
    station = entity(client, "urn:ngsi-ld:WeatherObserved:tts-1", WEATHER)
    assert station["temperature"] == {
        "type": "Property",
        "value": 1.0,
        "observedAt": "2020-02-12T15:15:45.789Z",
        "unitCode": "CEL",
    }
    assert station["illuminance"]["value"] == 640.0
    health = status(client, "tts-1")
    assert health["state"] == "online"
    assert (health["rssi"], health["snr"], health["gateway"], health["frameCounter"]) == (
        -35.0,
        5.0,
        "gtw1",
        1,
    )
    device = entity(client, "urn:ngsi-ld:Device:tts-1", DEVICE_CTX)
    assert device["deviceState"]["value"] == "online"
    assert device["rssi"]["value"] == -35.0


def test_a_redelivered_uplink_is_stored_once(client: TestClient, clock: ManualClock) -> None:
    tts_device(client)
    uplink = sample("tts-v3-uplink-example.json")
    assert post_tts(client, uplink).json() == {"result": "stored"}
    first = client.get(
        "/ngsi-ld/v1/entities/urn:ngsi-ld:WeatherObserved:tts-1", params={"options": "sysAttrs"}
    ).json()
    clock.advance(5)
    again = post_tts(client, uplink)
    assert (again.status_code, again.json()) == (202, {"result": "duplicate"})
    after = client.get(
        "/ngsi-ld/v1/entities/urn:ngsi-ld:WeatherObserved:tts-1", params={"options": "sysAttrs"}
    ).json()
    assert after == first
    health = status(client, "tts-1")
    assert (health["messages"], health["duplicates"]) == (1, 1)


def test_uplinks_arriving_together_are_each_stored_once(client: TestClient) -> None:
    tts_device(client)

    def uplink(n: int) -> dict[str, Any]:
        body = sample("tts-v3-uplink-example.json")
        body["correlation_ids"] = [f"as:up:concurrent-{n}"]
        body["uplink_message"]["f_cnt"] = n
        body["uplink_message"]["decoded_payload"]["temperature"] = float(n)
        body["uplink_message"]["received_at"] = f"2020-02-13T10:{n:02d}:00Z"
        return body

    # Sent at once (and the first one four more times), so the server takes them in together.
    bodies = [uplink(n) for n in range(1, 31)] + [uplink(1)] * 4
    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        answers = list(pool.map(lambda body: post_tts(client, body), bodies))
    assert {a.status_code for a in answers} == {202}
    results = [a.json()["result"] for a in answers]
    assert results.count("stored") == 30 and results.count("duplicate") == 4
    health = status(client, "tts-1")
    assert (health["messages"], health["duplicates"]) == (30, 4)
    history = client.get(
        "/ngsi-ld/v1/temporal/entities/urn:ngsi-ld:WeatherObserved:tts-1",
        params={"attrs": "temperature", "timerel": "after", "timeAt": "2020-02-13T00:00:00Z"},
        headers=sdm_link(WEATHER),
    )
    assert history.status_code == 200, history.text
    values = [i["value"] for i in history.json()["temperature"]]
    assert values == [float(n) for n in range(1, 31)], values


def test_other_things_stack_messages_are_acknowledged_and_ignored(client: TestClient) -> None:
    tts_device(client)
    join = {"end_device_ids": {"dev_eui": "0004A30B001C0530"}, "join_accept": {}}
    assert post_tts(client, join).json() == {"result": "ignored"}
    assert status(client, "tts-1")["messages"] == 0


@pytest.mark.parametrize("secret", [None, "wrong"])
def test_a_webhook_without_its_secret_is_refused(client: TestClient, secret: str | None) -> None:
    tts_device(client)
    response = post_tts(client, sample("tts-v3-uplink-example.json"), secret)
    assert response.status_code == 401
    assert "X-Burgo-Secret" in response.json()["detail"]
    assert status(client, "tts-1")["messages"] == 0


def test_an_uplink_of_an_unknown_dev_eui(client: TestClient) -> None:
    problem = assert_problem(
        post_tts(client, sample("tts-v3-uplink-example.json")), 404, "ResourceNotFound"
    )
    assert "0004A30B001C0530" in problem["detail"]


def test_older_formats_get_a_clear_error(client: TestClient) -> None:
    ttn_v2 = {
        "app_id": "a",
        "dev_id": "d",
        "hardware_serial": "0004A30B001C0530",
        "payload_raw": "AQ==",
    }
    problem = assert_problem(post_tts(client, ttn_v2), 400, "BadRequestData")
    assert "The Things Network v2" in problem["detail"]
    v3 = {"applicationID": "1", "devEUI": "AQEBAQEBAQE=", "data": "AQ=="}
    response = client.post(
        CHIRPSTACK, params={"event": "up"}, json=v3, headers={"X-Burgo-Secret": CHIRPSTACK_SECRET}
    )
    assert "ChirpStack v3" in assert_problem(response, 400, "BadRequestData")["detail"]


def chirpstack_device(client: TestClient, decoder: str | None = "cayenne-lpp") -> None:
    body: dict[str, Any] = {
        "id": "cs-1",
        "protocol": "lorawan",
        "devEUI": "0101010101010101",
        "profile": "weather",
        "mapping": [
            {"measurement": "temperature_3", "attribute": "temperature", "unitCode": "CEL"},
            {"measurement": "temperature_5", "attribute": "dewPoint", "unitCode": "CEL"},
        ],
    }
    if decoder:
        body["decoder"] = decoder
    register(client, body)


def post_chirpstack(client: TestClient, body: Any, event: str = "up") -> Any:
    return client.post(
        CHIRPSTACK,
        params={"event": event},
        json=body,
        headers={"X-Burgo-Secret": CHIRPSTACK_SECRET},
    )


def test_a_chirpstack_uplink_is_decoded_with_the_devices_decoder(client: TestClient) -> None:
    chirpstack_device(client)
    event = sample("chirpstack-v4-up-example.json")
    event["data"] = base64.b64encode(bytes.fromhex("03670110056700FF")).decode()
    assert post_chirpstack(client, event).json() == {"result": "stored"}
    station = entity(client, "urn:ngsi-ld:WeatherObserved:cs-1", WEATHER)
    assert station["temperature"]["value"] == 27.2
    assert station["temperature"]["observedAt"] == "2022-07-18T09:34:15.775Z"
    assert station["dewPoint"]["value"] == 25.5
    assert post_chirpstack(client, event).json() == {"result": "duplicate"}
    health = status(client, "cs-1")
    assert (health["messages"], health["duplicates"], health["gateway"]) == (
        1,
        1,
        "0016c001f153a14c",
    )


def test_a_chirpstack_object_is_used_as_decoded(client: TestClient) -> None:
    chirpstack_device(client, decoder=None)
    event = sample("chirpstack-v4-up-example.json")
    event["object"] = {"temperature_3": 12.5, "battery": 87, "counter": 4}
    assert post_chirpstack(client, event).json() == {"result": "stored"}
    assert (
        entity(client, "urn:ngsi-ld:WeatherObserved:cs-1", WEATHER)["temperature"]["value"] == 12.5
    )
    assert status(client, "cs-1")["battery"] == 87


def test_an_undecodable_payload_is_refused_and_counted(client: TestClient) -> None:
    chirpstack_device(client)
    event = sample("chirpstack-v4-up-example.json")  # its payload, 0xAA, is not Cayenne LPP
    problem = assert_problem(post_chirpstack(client, event), 400, "BadRequestData")
    assert "Cayenne LPP: truncated header at byte 0" in problem["detail"]
    health = status(client, "cs-1")
    assert (health["errors"], health["messages"]) == (1, 0)
    # Refused, so not remembered: the same uplink, once decodable, is taken in.
    event["data"] = base64.b64encode(bytes.fromhex("0367FFD7")).decode()
    assert post_chirpstack(client, event).json() == {"result": "stored"}


def test_a_raw_payload_needs_a_decoder(client: TestClient) -> None:
    chirpstack_device(client, decoder=None)
    problem = assert_problem(
        post_chirpstack(client, sample("chirpstack-v4-up-example.json")), 400, "BadRequestData"
    )
    assert "has no decoded payload and the device has no decoder" in problem["detail"]


def test_other_chirpstack_events_are_ignored(client: TestClient) -> None:
    chirpstack_device(client)
    assert post_chirpstack(client, {"deviceInfo": {}}, event="join").json() == {"result": "ignored"}
    response = client.post(CHIRPSTACK, params={"event": "join"}, json={})
    assert response.status_code == 401


# -- health ------------------------------------------------------------------------------------


def test_a_silent_device_goes_offline_and_comes_back(
    app: tuple[TestClient, ManualClock], client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    _, clock = app
    service = client.app.state.devices  # type: ignore[attr-defined]
    key = classroom(client)  # expected every 300 s; offline after 3 missed reports
    assert send(client, key, {"co2": 600}).status_code == 202
    caplog.set_level(logging.INFO, logger="burgo.ingest")
    clock.advance(900)
    assert client.portal.call(service.check_health) == []  # type: ignore[union-attr]
    assert status(client, "c-1")["state"] == "online"
    clock.advance(1)
    assert len(client.portal.call(service.check_health)) == 1  # type: ignore[union-attr]
    assert client.portal.call(service.check_health) == []  # type: ignore[union-attr]
    health = status(client, "c-1")
    assert health["state"] == "offline"
    assert health["stateSince"] == clock.now().isoformat(timespec="milliseconds")[:-6] + "Z"
    device = entity(client, "urn:ngsi-ld:Device:c-1", DEVICE_CTX)
    assert device["deviceState"]["value"] == "offline"
    assert 'burgo_devices{state="offline"} 1.0' in client.get("/metrics").text

    clock.advance(60)
    assert send(client, key, {"co2": 610}).status_code == 202
    assert status(client, "c-1")["state"] == "online"
    assert entity(client, "urn:ngsi-ld:Device:c-1", DEVICE_CTX)["deviceState"]["value"] == "online"
    transitions = [r.getMessage() for r in caplog.records if "c-1" in r.getMessage()]
    assert transitions == [
        "Device c-1 (tenant '') went offline: missed 3 expected reports",
        "Device c-1 (tenant '') is online (was offline)",
    ]
    metrics = client.get("/metrics").text
    assert 'burgo_devices{state="online"} 1.0' in metrics
    assert 'burgo_device_messages_total{source="http"}' in metrics
