"""LoRaWAN network-server uplinks: The Things Stack v3 webhooks and ChirpStack v4 HTTP events.

Both are parsed into one :class:`Uplink`; older formats (TTN v2, ChirpStack v3) are recognised and
refused with a message naming them, so a technician knows which integration to switch to.

>>> event = {"deduplicationId": "d1", "deviceInfo": {"devEui": "0101010101010101"},
...          "time": "2024-05-01T10:00:00Z", "data": "AWf/1w==", "fPort": 2}
>>> uplink = parse_chirpstack(event)
>>> uplink.dev_eui, uplink.payload.hex()
('0101010101010101', '0167ffd7')
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from burgo.ngsild.errors import BadRequestData
from burgo.ngsild.times import canonical_datetime

_EUI = re.compile(r"^[0-9A-Fa-f]{16}$")


@dataclass(frozen=True, slots=True)
class Uplink:
    """One uplink as a network server delivered it."""

    network: str
    message_id: str | None
    dev_eui: str
    received_at: str | None
    f_port: int | None
    f_cnt: int | None
    payload: bytes
    decoded: Mapping[str, Any] | None
    rssi: float | None
    snr: float | None
    gateway: str | None


def normalize_eui(value: Any, what: str = "DevEUI") -> str:
    """A DevEUI as 16 upper-case hex digits."""
    if not isinstance(value, str) or not _EUI.match(value):
        raise BadRequestData(f"{what} must be 16 hexadecimal digits, got {value!r}")
    return value.upper()


def _object(data: Any, key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key) if isinstance(data, Mapping) else None
    if not isinstance(value, Mapping):
        raise BadRequestData(f"{where}: {key!r} must be an object")
    return value


def _base64(value: Any, what: str) -> bytes:
    if value is None or value == "":
        return b""
    if not isinstance(value, str):
        raise BadRequestData(f"{what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequestData(f"{what} is not valid base64: {value!r}") from exc


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _time(value: Any, what: str) -> str | None:
    return canonical_datetime(value, what) if value is not None else None


def _best_gateway(rx: Any, gateway_of: Any) -> tuple[float | None, float | None, str | None]:
    best: tuple[float | None, float | None, str | None] = (None, None, None)
    if not isinstance(rx, list):
        return best
    for item in rx:
        if not isinstance(item, Mapping):
            continue
        rssi = _number(item.get("rssi"))
        if best[0] is None or (rssi is not None and rssi > best[0]):
            best = (rssi, _number(item.get("snr")), gateway_of(item))
    return best


def _refuse_old_formats(data: Mapping[str, Any]) -> None:
    if "payload_raw" in data or ("hardware_serial" in data and "dev_id" in data):
        raise BadRequestData(
            "This is a The Things Network v2 uplink, a format retired with TTN v2; configure a "
            "The Things Stack v3 webhook (uplink_message) pointing at /api/v1/lorawan/tts"
        )
    if "applicationID" in data or "devEUI" in data or "objectJSON" in data:
        raise BadRequestData(
            "This is a ChirpStack v3 uplink; Burgo reads ChirpStack v4 HTTP integration events "
            "(JSON encoding) at /api/v1/lorawan/chirpstack?event=up"
        )


def is_tts_uplink(data: Any) -> bool:
    """Whether a The Things Stack webhook body is an uplink (others are joins, acks...)."""
    return isinstance(data, Mapping) and "uplink_message" in data


def parse_tts(data: Any) -> Uplink:
    """A The Things Stack v3 ``uplink_message`` webhook body."""
    if not isinstance(data, Mapping):
        raise BadRequestData("The Things Stack webhook body must be a JSON object")
    _refuse_old_formats(data)
    ids = _object(data, "end_device_ids", "The Things Stack uplink")
    message = _object(data, "uplink_message", "The Things Stack uplink")
    correlation = data.get("correlation_ids")
    message_id = None
    if isinstance(correlation, list):
        message_id = next(
            (c for c in correlation if isinstance(c, str) and c.startswith("as:up:")), None
        )
    decoded = message.get("decoded_payload")
    rssi, snr, gateway = _best_gateway(
        message.get("rx_metadata"),
        lambda item: (item.get("gateway_ids") or {}).get("gateway_id"),
    )
    received = message.get("received_at", data.get("received_at"))
    return Uplink(
        network="tts",
        message_id=message_id,
        dev_eui=normalize_eui(ids.get("dev_eui"), "end_device_ids.dev_eui"),
        received_at=_time(received, "uplink_message.received_at"),
        f_port=_int(message.get("f_port")),
        f_cnt=_int(message.get("f_cnt")),
        payload=_base64(message.get("frm_payload"), "uplink_message.frm_payload"),
        decoded=decoded if isinstance(decoded, Mapping) and decoded else None,
        rssi=rssi,
        snr=snr,
        gateway=gateway if isinstance(gateway, str) else None,
    )


def parse_chirpstack(data: Any) -> Uplink:
    """A ChirpStack v4 HTTP integration ``up`` event (JSON encoding)."""
    if not isinstance(data, Mapping):
        raise BadRequestData("ChirpStack event body must be a JSON object")
    _refuse_old_formats(data)
    info = _object(data, "deviceInfo", "ChirpStack uplink")
    dedup = data.get("deduplicationId")
    decoded = data.get("object")
    rssi, snr, gateway = _best_gateway(data.get("rxInfo"), lambda item: item.get("gatewayId"))
    return Uplink(
        network="chirpstack",
        message_id=dedup if isinstance(dedup, str) and dedup else None,
        dev_eui=normalize_eui(info.get("devEui"), "deviceInfo.devEui"),
        received_at=_time(data.get("time"), "time"),
        f_port=_int(data.get("fPort")),
        f_cnt=_int(data.get("fCnt")),
        payload=_base64(data.get("data"), "data"),
        decoded=decoded if isinstance(decoded, Mapping) and decoded else None,
        rssi=rssi,
        snr=snr,
        gateway=gateway if isinstance(gateway, str) else None,
    )
