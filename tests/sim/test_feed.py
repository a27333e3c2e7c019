"""The demo town fed to a real Burgo app (SQLite, in process) through its real APIs: device
registry, device HTTP measurements, The Things Stack and ChirpStack webhooks, temporal import."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from burgo.app import create_app
from burgo.config import load_settings
from burgo.ingest.mqtt import MqttListener
from burgo.sim.feed import Feeder, Secrets, history_step
from burgo.sim.town import build_town
from burgo.sim.wire import SDM
from tests.conftest import link
from tests.ingest.test_mqtt import wait_for
from tests.services import Broker

TOWN = build_town(seed=42, size="small")
SECRETS = Secrets(tts="tts-secret-for-tests", chirpstack="cs-secret-for-tests")
HOURS = 6


def app_client(path: Path, secrets: Secrets) -> TestClient:
    settings = load_settings(
        flags={
            "db": str(path / "burgo.db"),
            "sqlite_synchronous": "NORMAL",
            "lorawan_tts_secret": secrets.tts,
            "lorawan_chirpstack_secret": secrets.chirpstack,
        },
        environ={},
        config_path=None,
    )
    return TestClient(create_app(settings))


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Feeder, float]]:
    """A small town registered, with six hours of history and one live round."""
    with app_client(tmp_path_factory.mktemp("town"), SECRETS) as client:
        now = time.time()
        feeder = Feeder(client, TOWN, anchor=now, secrets=SECRETS)
        feeder.register()
        starts = feeder.starts(now - HOURS * 3600, None)
        feeder.backfill(starts, now)
        assert feeder.tick(now) == len(TOWN.devices)
        yield client, feeder, now


def context_of(client: TestClient, device_id: str) -> str:
    return str(client.get(f"/api/v1/devices/{device_id}").json()["context"])


def test_every_device_has_its_entity_with_history_and_is_online(
    fed: tuple[TestClient, Feeder, float],
) -> None:
    client, _feeder, _now = fed
    for device in TOWN.devices:
        shown = client.get(f"/api/v1/devices/{device.id}").json()
        assert shown["status"]["state"] == "online", device.id
        ctx = link(shown["context"])
        entity_id = quote(shown["entityId"], safe=":")
        entity = client.get(f"/ngsi-ld/v1/entities/{entity_id}", headers=ctx)
        assert entity.status_code == 200, device.id
        body = entity.json()
        assert body["location"]["value"]["coordinates"] == [device.longitude, device.latitude]
        attribute = shown["mapping"][0]["attribute"]
        assert attribute in body, (device.id, body)
        history = client.get(
            f"/ngsi-ld/v1/temporal/entities/{entity_id}",
            params={"attrs": attribute, "lastN": 1000},
            headers=ctx,
        )
        assert history.status_code == 200, history.text
        instances = history.json()[attribute]
        expected = HOURS * 3600 / history_step(device)
        assert expected <= len(instances) <= expected + 2, (device.id, len(instances))


def test_current_values_are_what_the_generator_says(
    fed: tuple[TestClient, Feeder, float],
) -> None:
    client, feeder, now = fed
    full = TOWN.device("bin-02")
    reading = feeder.sensors.read(full, now)
    ctx = link(SDM.format("WasteManagement"))
    entity = client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:WasteContainer:bin-02", headers=ctx)
    assert entity.json()["fillingLevel"]["value"] == pytest.approx(reading["fill"] / 100)
    assert reading["fill"] >= 95
    parcel = client.get(
        "/ngsi-ld/v1/entities/urn:ngsi-ld:AgriParcelRecord:soil-02",
        headers=link(SDM.format("Agrifood")),
    ).json()
    assert parcel["soilMoistureVwc"]["value"] < 0.12


def test_lorawan_devices_came_through_the_network_server_webhooks(
    fed: tuple[TestClient, Feeder, float],
) -> None:
    client, feeder, _ = fed
    assert set(feeder.counters.sent) == {"http", "tts", "chirpstack"}
    for device in TOWN.devices:
        status = client.get(f"/api/v1/devices/{device.id}").json()["status"]
        if device.network == "http":
            assert "rssi" not in status
        else:
            assert status["gateway"].startswith("fundao-"), device.id
            assert status["rssi"] < 0
    metrics = client.get("/metrics").text
    assert 'burgo_device_messages_total{source="lorawan"}' in metrics


def test_history_is_queryable_as_a_day_of_aggregates(
    fed: tuple[TestClient, Feeder, float],
) -> None:
    client, _, _ = fed
    answer = client.get(
        "/ngsi-ld/v1/temporal/entities/urn:ngsi-ld:IndoorEnvironmentObserved:class-1-1a",
        params={
            "options": "aggregatedValues",
            "aggrMethods": "max",
            "aggrPeriodDuration": "PT1H",
            "attrs": "co2",
        },
        headers=link(SDM.format("Environment")),
    )
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["co2"]["max"]) >= HOURS


def test_a_second_run_reuses_the_keys_and_fills_only_the_gap(tmp_path: Path) -> None:
    with app_client(tmp_path, SECRETS) as client:
        now = time.time() - 3600
        first = Feeder(client, TOWN, anchor=now, secrets=SECRETS)
        keys = first.register()
        first.backfill(first.starts(now - 2 * 3600, None), now)
        later = now + 3600
        second = Feeder(client, TOWN, anchor=later, secrets=SECRETS, keys=keys)
        assert second.register() == keys
        assert second.fresh == set()
        starts = second.starts(later - 2 * 3600, now)
        assert set(starts.values()) == {now}
        assert second.history_size(starts, later) < first.history_size(
            first.starts(now - 2 * 3600, None), now
        )
        second.backfill(starts, later)
        assert second.tick(later) == len(TOWN.devices)
        # A feeder that lost the keys registers the devices again, with new keys.
        third = Feeder(client, TOWN, anchor=later, secrets=SECRETS)
        new_keys = third.register()
        assert third.fresh == {d.id for d in TOWN.devices}
        assert all(new_keys[k] != keys[k] for k in keys)
        assert third.tick(later + 60) == len(TOWN.devices)


def test_without_webhook_secrets_lorawan_devices_post_over_http(tmp_path: Path) -> None:
    with app_client(tmp_path, Secrets()) as client:
        feeder = Feeder(client, TOWN, anchor=time.time())
        feeder.register()
        assert feeder.tick(time.time()) == len(TOWN.devices)
        assert feeder.counters.sent == {"http": len(TOWN.devices)}
        assert feeder.counters.failed == 0
        ctx = link(SDM.format("Environment"))
        entity = client.get(
            "/ngsi-ld/v1/entities/urn:ngsi-ld:AirQualityObserved:aq-01", headers=ctx
        )
        assert "NO2" in entity.json()


def test_a_refused_reading_is_counted_and_the_rest_still_go(tmp_path: Path) -> None:
    with app_client(tmp_path, SECRETS) as client:
        feeder = Feeder(client, TOWN, anchor=time.time(), secrets=SECRETS)
        feeder.register()
        client.delete("/api/v1/devices/park-001")
        assert feeder.tick(time.time()) == len(TOWN.devices) - 1
        assert feeder.counters.failed == 1


def test_with_a_broker_care_kits_and_meters_publish_over_mqtt(
    tmp_path: Path, mqtt_broker: Broker
) -> None:
    settings = load_settings(
        flags={
            "db": str(tmp_path / "burgo.db"),
            "sqlite_synchronous": "NORMAL",
            "lorawan_tts_secret": SECRETS.tts,
            "lorawan_chirpstack_secret": SECRETS.chirpstack,
            "mqtt_url": mqtt_broker.url,
        },
        environ={},
        config_path=None,
    )
    with TestClient(create_app(settings)) as client:
        worker = next(w for w in client.app.state.workers if isinstance(w, MqttListener))  # type: ignore[attr-defined]
        wait_for(worker.subscribed.is_set, "the subscription")
        now = time.time()
        feeder = Feeder(client, TOWN, anchor=now, secrets=SECRETS, mqtt_url=mqtt_broker.url)
        feeder.register()
        published = {
            d.id for d in TOWN.devices if d.kind.startswith("care-") or d.kind == "energy-meter"
        }
        assert {k for k, r in feeder.devices.items() if r.protocol == "mqtt"} == published
        assert feeder.tick(now) == len(TOWN.devices)
        assert feeder.counters.sent["mqtt"] == len(published)

        def all_online() -> bool:
            states = [
                client.get(f"/api/v1/devices/{d}").json()["status"]["state"] for d in published
            ]
            return set(states) == {"online"}

        wait_for(all_online, "the MQTT devices to report")
        meter = TOWN.device("energy-hub-1")
        entity = client.get(
            "/ngsi-ld/v1/entities/urn:ngsi-ld:SmartMeteringObservation:energy-hub-1",
            headers=link(SDM.format("Device")),
        ).json()
        assert entity["totalConsumption"]["value"] == feeder.sensors.read(meter, now)["energy"]
