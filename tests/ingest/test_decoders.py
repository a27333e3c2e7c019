"""Payload decoders: the Cayenne LPP reference vectors, the extended types, and fuzzing that a bad
payload only ever gives a clean DecodeError."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from burgo.ingest import decoders
from burgo.ingest.decoders import DecodeError, decode, decode_lpp
from tests.conftest import DATA

VECTORS = json.loads((DATA / "lorawan" / "cayenne-lpp-vectors.json").read_text())


@pytest.mark.parametrize("vector", VECTORS, ids=[v["hex"] for v in VECTORS])
def test_cayenne_reference_vectors(vector: dict[str, Any]) -> None:
    readings = decode_lpp(bytes.fromhex(vector["hex"]))
    got = [{"channel": r.channel, "type": r.type, "value": r.value} for r in readings]
    assert got == vector["expect"]


def test_cayenne_measurements_are_named_type_and_channel() -> None:
    assert decode("cayenne-lpp", bytes.fromhex("03670110056700FF")) == {
        "temperature_3": 27.2,
        "temperature_5": 25.5,
    }


@pytest.mark.parametrize(
    ("hex_payload", "name", "value"),
    [
        ("016864", "humidity_1", 50.0),  # 0.5 % per step
        ("02730A0C", "barometer_2", 257.2),
        ("03740172", "voltage_3", 3.7),
        ("047501F4", "current_4", 0.5),
        ("05784B", "percentage_5", 75),
        ("067D0258", "concentration_6", 600),
        ("07800064", "power_7", 100),
        ("0882000003E8", "distance_8", 1.0),
        ("09830001E240", "energy_9", 123.456),
        ("0A8400B4", "direction_10", 180),
        ("0B8566000000", "unixtime_11", 1711276032),
        ("0C8E01", "switch_12", 1),
        ("0D79FFF6", "altitude_13", -10),
        ("0E020064", "analog_input_14", 1.0),
        ("0F71000103E8FC18", "accelerometer_15", {"x": 0.001, "y": 1.0, "z": -1.0}),
        ("1086FF9C00640000", "gyrometer_16", {"x": -1.0, "y": 1.0, "z": 0.0}),
        ("1187FF8000", "colour_17", {"r": 255, "g": 128, "b": 0}),
        ("12650190", "illuminance_18", 400),
        ("136601", "presence_19", 1),
        ("14640000002A", "generic_20", 42),
        ("157600000032", "frequency_21", 50),
    ],
)
def test_cayenne_extended_types(hex_payload: str, name: str, value: Any) -> None:
    assert decode("cayenne-lpp", bytes.fromhex(hex_payload)) == {name: value}


@pytest.mark.parametrize(
    ("hex_payload", "message"),
    [
        ("01", "truncated header"),
        ("01FF00", "unknown type 0xFF"),
        ("0167", "temperature on channel 1 needs 2 bytes, got 0"),
        ("01880676", "gps on channel 1 needs 9 bytes, got 2"),
    ],
)
def test_bad_cayenne_payloads_say_what_is_wrong(hex_payload: str, message: str) -> None:
    payload = bytes.fromhex(hex_payload)
    with pytest.raises(DecodeError, match=message):
        decode("cayenne-lpp", payload)


def test_json_decoder_and_unknown_decoder() -> None:
    assert decode("json", b'{"co2": 612}') == {"co2": 612}
    with pytest.raises(DecodeError, match="not valid JSON"):
        decode("json", b"{co2")
    with pytest.raises(DecodeError, match="must be an object"):
        decode("json", b"[1, 2]")
    with pytest.raises(DecodeError, match="No decoder called 'nope'; available: cayenne-lpp"):
        decode("nope", b"")
    assert {"cayenne-lpp", "json"} <= set(decoders.available())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_decoders_never_raise_anything_but_decode_error(payload: bytes) -> None:
    for name in ("cayenne-lpp", "json"):
        try:
            result = decode(name, payload)
        except DecodeError:
            continue
        assert isinstance(result, dict)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 255), st.sampled_from(sorted(decoders._LPP_TYPES))),
        max_size=6,
    ),
    st.data(),
)
def test_well_formed_cayenne_payloads_always_decode(
    frames: list[tuple[int, int]], data: st.DataObject
) -> None:
    payload = b""
    for channel, type_id in frames:
        size = decoders._LPP_TYPES[type_id][1]
        payload += bytes([channel, type_id]) + data.draw(st.binary(min_size=size, max_size=size))
    assert len(decode_lpp(payload)) == len(frames)
