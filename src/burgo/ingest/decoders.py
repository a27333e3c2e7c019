"""Payload decoders: raw bytes from a device into named measurements.

Built in: ``cayenne-lpp`` (Cayenne Low Power Payload with the extended types) and ``json``. More
come from installed packages through the ``burgo.decoders`` entry-point group: each entry point
names a callable ``decode(payload: bytes, f_port: int | None) -> Mapping[str, Any]`` that raises
:class:`DecodeError` (or ValueError) on a payload it cannot read.

>>> decode("cayenne-lpp", bytes.fromhex("0167FFD7"))
{'temperature_1': -4.1}
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from typing import Any

import orjson

ENTRY_POINT_GROUP = "burgo.decoders"

Decoder = Callable[[bytes, "int | None"], Mapping[str, Any]]


class DecodeError(Exception):
    """A payload the decoder cannot read; the message says what was wrong."""


@dataclass(frozen=True, slots=True)
class LppValue:
    """One Cayenne LPP reading: its channel, type name and value."""

    channel: int
    type: str
    value: Any


# type id -> (name, size in bytes, per-field divisor, signed, fields)
_LPP_TYPES: dict[int, tuple[str, int, float, bool, int]] = {
    0x00: ("digital_input", 1, 1, False, 1),
    0x01: ("digital_output", 1, 1, False, 1),
    0x02: ("analog_input", 2, 100, True, 1),
    0x03: ("analog_output", 2, 100, True, 1),
    0x64: ("generic", 4, 1, False, 1),
    0x65: ("illuminance", 2, 1, False, 1),
    0x66: ("presence", 1, 1, False, 1),
    0x67: ("temperature", 2, 10, True, 1),
    0x68: ("humidity", 1, 2, False, 1),
    0x71: ("accelerometer", 6, 1000, True, 3),
    0x73: ("barometer", 2, 10, False, 1),
    0x74: ("voltage", 2, 100, False, 1),
    0x75: ("current", 2, 1000, False, 1),
    0x76: ("frequency", 4, 1, False, 1),
    0x78: ("percentage", 1, 1, False, 1),
    0x79: ("altitude", 2, 1, True, 1),
    0x7D: ("concentration", 2, 1, False, 1),
    0x80: ("power", 2, 1, False, 1),
    0x82: ("distance", 4, 1000, False, 1),
    0x83: ("energy", 4, 1000, False, 1),
    0x84: ("direction", 2, 1, False, 1),
    0x85: ("unixtime", 4, 1, False, 1),
    0x86: ("gyrometer", 6, 100, True, 3),
    0x87: ("colour", 3, 1, False, 3),
    0x88: ("gps", 9, 1, True, 3),
    0x8E: ("switch", 1, 1, False, 1),
}
_AXES = ("x", "y", "z")
_RGB = ("r", "g", "b")


def _number(raw: bytes, signed: bool, divisor: float) -> float | int:
    value = int.from_bytes(raw, "big", signed=signed)
    if divisor == 1:
        return value
    return round(value / divisor, 6)


def decode_lpp(payload: bytes) -> list[LppValue]:
    """Every reading of a Cayenne LPP payload, in order."""
    values: list[LppValue] = []
    pos = 0
    while pos < len(payload):
        if pos + 2 > len(payload):
            raise DecodeError(f"Cayenne LPP: truncated header at byte {pos}")
        channel, type_id = payload[pos], payload[pos + 1]
        spec = _LPP_TYPES.get(type_id)
        if spec is None:
            raise DecodeError(f"Cayenne LPP: unknown type 0x{type_id:02X} at byte {pos + 1}")
        name, size, divisor, signed, fields = spec
        data = payload[pos + 2 : pos + 2 + size]
        if len(data) < size:
            raise DecodeError(
                f"Cayenne LPP: {name} on channel {channel} needs {size} bytes, got {len(data)}"
            )
        values.append(LppValue(channel, name, _lpp_value(type_id, data, divisor, signed, fields)))
        pos += 2 + size
    return values


def _lpp_value(type_id: int, data: bytes, divisor: float, signed: bool, fields: int) -> Any:
    if type_id == 0x88:
        return {
            "latitude": _number(data[0:3], True, 10000),
            "longitude": _number(data[3:6], True, 10000),
            "altitude": float(_number(data[6:9], True, 100)),
        }
    if fields == 1:
        return _number(data, signed, divisor)
    width = len(data) // fields
    names = _RGB if type_id == 0x87 else _AXES
    return {
        names[i]: _number(data[i * width : (i + 1) * width], signed, divisor) for i in range(fields)
    }


def cayenne_lpp(payload: bytes, f_port: int | None = None) -> dict[str, Any]:
    """Cayenne LPP readings as measurements named ``{type}_{channel}`` (``temperature_3``)."""
    return {f"{v.type}_{v.channel}": v.value for v in decode_lpp(payload)}


def json_payload(payload: bytes, f_port: int | None = None) -> dict[str, Any]:
    """A payload that is a JSON object of measurements."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"JSON payload is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise DecodeError("JSON payload must be an object of measurements")
    return data


BUILT_IN: dict[str, Decoder] = {"cayenne-lpp": cayenne_lpp, "json": json_payload}


@cache
def _plugins() -> dict[str, Decoder]:
    found: dict[str, Decoder] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        found[entry.name] = entry.load()
    return found


def available() -> list[str]:
    """The names of every decoder: built-in ones and those installed as entry points."""
    return sorted({*BUILT_IN, *_plugins()})


def lookup(name: str) -> Decoder:
    """The decoder called ``name``; KeyError when there is none."""
    decoder = BUILT_IN.get(name) or _plugins().get(name)
    if decoder is None:
        raise KeyError(name)
    return decoder


def decode(name: str, payload: bytes, f_port: int | None = None) -> dict[str, Any]:
    """Run decoder ``name``; any failure of the decoder becomes a DecodeError."""
    try:
        result = lookup(name)(payload, f_port)
    except DecodeError:
        raise
    except KeyError as exc:
        raise DecodeError(
            f"No decoder called {name!r}; available: {', '.join(available())}"
        ) from exc
    except Exception as exc:
        raise DecodeError(f"Decoder {name!r} failed: {exc}") from exc
    if not isinstance(result, Mapping):
        raise DecodeError(f"Decoder {name!r} returned {type(result).__name__}, not an object")
    for key, value in result.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise DecodeError(f"Decoder {name!r} gave a non-finite value for {key!r}")
    return dict(result)
