"""Network-server uplinks parsed from the recorded real payloads; old formats named and refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from burgo.ingest.lorawan import parse_chirpstack, parse_tts
from burgo.ngsild.errors import BadRequestData
from tests.conftest import DATA


def sample(name: str) -> dict[str, Any]:
    """A recorded payload from tests/data/lorawan."""
    loaded: dict[str, Any] = json.loads((DATA / "lorawan" / name).read_text())
    return loaded


def test_the_things_stack_uplink() -> None:
    uplink = parse_tts(sample("tts-v3-uplink-example.json"))
    assert uplink.message_id == "as:up:01E0WZGT6Y7657CPFPE5WEYDSQ"
    assert uplink.dev_eui == "0004A30B001C0530"
    assert uplink.received_at == "2020-02-12T15:15:45.789Z"
    assert (uplink.f_port, uplink.f_cnt) == (1, 1)
    assert uplink.payload == bytes.fromhex("8241de")
    assert uplink.decoded == {"temperature": 1.0, "luminosity": 0.64}
    assert (uplink.rssi, uplink.snr, uplink.gateway) == (-35.0, 5.0, "gtw1")


def test_chirpstack_uplink() -> None:
    uplink = parse_chirpstack(sample("chirpstack-v4-up-example.json"))
    assert uplink.message_id == "3ac7e3c4-4401-4b8d-9386-a5c902f9202d"
    assert uplink.dev_eui == "0101010101010101"
    assert uplink.received_at == "2022-07-18T09:34:15.775Z"
    assert uplink.payload == b"\xaa"
    assert uplink.decoded is None
    assert (uplink.rssi, uplink.snr, uplink.gateway) == (-36.0, 10.5, "0016c001f153a14c")


def test_the_best_gateway_gives_the_link_quality() -> None:
    event = sample("chirpstack-v4-up-example.json")
    event["rxInfo"] = [
        {"gatewayId": "far", "rssi": -118, "snr": -7.5},
        {"gatewayId": "near", "rssi": -60, "snr": 9.0},
    ]
    uplink = parse_chirpstack(event)
    assert (uplink.rssi, uplink.snr, uplink.gateway) == (-60.0, 9.0, "near")


TTN_V2 = {
    "app_id": "my-app",
    "dev_id": "my-dev",
    "hardware_serial": "0004A30B001C0530",
    "port": 1,
    "counter": 2,
    "payload_raw": "AWf/1w==",
    "metadata": {"time": "2019-01-01T00:00:00Z"},
}
CHIRPSTACK_V3 = {
    "applicationID": "1",
    "applicationName": "app",
    "deviceName": "dev",
    "devEUI": "AQEBAQEBAQE=",
    "rxInfo": [],
    "fCnt": 10,
    "fPort": 5,
    "data": "AWf/1w==",
    "objectJSON": "{}",
}


@pytest.mark.parametrize(
    ("parse", "body", "named"),
    [
        (parse_tts, TTN_V2, "The Things Network v2"),
        (parse_chirpstack, TTN_V2, "The Things Network v2"),
        (parse_chirpstack, CHIRPSTACK_V3, "ChirpStack v3"),
        (parse_tts, CHIRPSTACK_V3, "ChirpStack v3"),
    ],
)
def test_older_formats_are_named(parse: Any, body: dict[str, Any], named: str) -> None:
    with pytest.raises(BadRequestData, match=named):
        parse(body)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b["end_device_ids"].update(dev_eui="XYZ"), "dev_eui must be 16 hexadecimal"),
        (lambda b: b["uplink_message"].update(frm_payload="%%%"), "not valid base64"),
        (lambda b: b["uplink_message"].update(received_at="yesterday"), "received_at"),
        (lambda b: b.pop("end_device_ids"), "'end_device_ids' must be an object"),
    ],
)
def test_malformed_uplinks_say_what_is_wrong(change: Any, message: str) -> None:
    body = sample("tts-v3-uplink-example.json")
    change(body)
    with pytest.raises(BadRequestData, match=message):
        parse_tts(body)
