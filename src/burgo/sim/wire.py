"""Simulated devices on the wire: their registration, their readings as an HTTP device, a The
Things Stack or ChirpStack uplink (Cayenne LPP for the raw ones), and history as NGSI-LD
temporal instances.

>>> cayenne_lpp({"percentage_1": 83, "temperature_2": 14.2}).hex()
'0178530267008e'
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from burgo.sim.town import SimDevice

SDM = "https://raw.githubusercontent.com/smart-data-models/dataModel.{}/master/context.jsonld"

PROFILE_OF = {
    "air-quality": "air-quality",
    "noise": "noise",
    "parking": "parking",
    "waste-fill": "waste-fill",
    "soil-moisture": "soil-moisture",
    "weather": "weather",
    "energy-meter": "energy-meter",
    "classroom": "classroom",
}
"""Kinds registered from one of Burgo's built-in device profiles."""

# Kinds with no built-in profile give their own type, @context and mapping.
CUSTOM: dict[str, dict[str, Any]] = {
    "streetlight": {
        "entityType": "Streetlight",
        "context": SDM.format("Streetlighting"),
        "interval": 900,
        "mapping": [
            {"measurement": "power_state", "attribute": "powerState"},
            {"measurement": "power", "attribute": "powerConsumption", "unitCode": "WTT"},
            {"measurement": "status", "attribute": "status"},
        ],
    },
    "care-motion": {
        "entityType": "DeviceMeasurement",
        "context": SDM.format("Device"),
        "interval": 900,
        "mapping": [
            {"measurement": "motion", "attribute": "numValue", "unitCode": "C62"},
            # Hours since the last movement: what tells a carer that something is wrong.
            {"measurement": "idle", "attribute": "inactivityHours", "unitCode": "HUR"},
        ],
    },
    "care-door": {
        "entityType": "DeviceMeasurement",
        "context": SDM.format("Device"),
        "interval": 900,
        "mapping": [{"measurement": "door", "attribute": "numValue", "unitCode": "C62"}],
    },
    "care-temperature": {
        "entityType": "DeviceMeasurement",
        "context": SDM.format("Device"),
        "interval": 900,
        "mapping": [{"measurement": "temperature", "attribute": "numValue", "unitCode": "CEL"}],
    },
}

CARE_PROPERTY = {
    "care-motion": ("motion", "PIR motion detections in 15 minutes"),
    "care-door": ("door", "Front-door openings in 15 minutes"),
    "care-temperature": ("temperature", "Room temperature"),
}

# Raw Cayenne LPP sensors: measurement -> (channel, LPP type, name Burgo's decoder gives it).
LPP_CHANNELS = {"fill": (1, 0x78, "percentage_1"), "temperature": (2, 0x67, "temperature_2")}


def _prop(value: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value}


def protocol_of(device: SimDevice, mqtt: bool) -> str:
    """How a device reports: LoRaWAN through a network server, else MQTT when a broker is
    set for the kinds that use it, else HTTP."""
    if device.network != "http":
        return "lorawan"
    if mqtt and device.kind in ("care-motion", "care-door", "care-temperature", "energy-meter"):
        return "mqtt"
    return "http"


def registration(device: SimDevice, mqtt: bool = False) -> dict[str, Any]:
    """The body that registers ``device`` at ``POST /api/v1/devices``."""
    body: dict[str, Any] = {
        "id": device.id,
        "name": device.name,
        "protocol": protocol_of(device, mqtt),
        "location": {"latitude": device.latitude, "longitude": device.longitude},
    }
    static: dict[str, Any] = {"name": _prop(device.name)}
    static.update({key: _prop(value) for key, value in device.static.items()})
    if device.kind in PROFILE_OF:
        body["profile"] = PROFILE_OF[device.kind]
    else:
        body.update(CUSTOM[device.kind])
    if device.kind in CARE_PROPERTY:
        prop, description = CARE_PROPERTY[device.kind]
        static.update(
            controlledProperty=_prop(prop),
            measurementType=_prop(description),
            deviceType=_prop("sensor"),
        )
    if device.network == "tts-lpp":
        body["decoder"] = "cayenne-lpp"
        body["mapping"] = [
            {
                "measurement": "percentage_1",
                "attribute": "fillingLevel",
                "unitCode": "C62",
                "scale": 0.01,
            },
            {"measurement": "temperature_2", "attribute": "temperature", "unitCode": "CEL"},
        ]
    if device.dev_eui:
        body["devEUI"] = device.dev_eui
    body["staticAttributes"] = static
    return body


def cayenne_lpp(values: Mapping[str, float]) -> bytes:
    """Cayenne LPP bytes for ``percentage_N`` and ``temperature_N`` measurements."""
    out = bytearray()
    for name, value in values.items():
        kind, _, channel = name.rpartition("_")
        if kind == "percentage":
            out += struct.pack(">BBB", int(channel), 0x78, max(0, min(100, round(value))))
        elif kind == "temperature":
            out += struct.pack(">BBh", int(channel), 0x67, round(value * 10))
        else:
            raise ValueError(f"no Cayenne LPP encoding here for {name!r}")
    return bytes(out)


def device_values(device: SimDevice, reading: Mapping[str, Any]) -> dict[str, Any]:
    """A reading under the names the device itself uses (a raw LPP sensor numbers channels)."""
    if device.network != "tts-lpp":
        return dict(reading)
    return {LPP_CHANNELS[name][2]: value for name, value in reading.items()}


def iso(t: float) -> str:
    """Epoch seconds as an ISO 8601 UTC time with milliseconds."""
    moment = datetime.fromtimestamp(round(t, 3), UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _radio(device: SimDevice, f_cnt: int) -> tuple[float, float, str]:
    digest = hashlib.blake2b(f"{device.id}:{f_cnt}".encode(), digest_size=2).digest()
    rssi = -118.0 + 45.0 * (digest[0] / 255.0)
    snr = -6.0 + 16.0 * (digest[1] / 255.0)
    gateway = "fundao-camara" if digest[0] % 2 else "fundao-silvares"
    return round(rssi, 1), round(snr, 1), gateway


def tts_uplink(
    device: SimDevice, reading: Mapping[str, Any], t: float, f_cnt: int
) -> dict[str, Any]:
    """A The Things Stack v3 webhook body for one uplink: decoded by a payload formatter, or
    raw Cayenne LPP bytes for Burgo to decode."""
    assert device.dev_eui is not None
    rssi, snr, gateway = _radio(device, f_cnt)
    values = device_values(device, reading)
    message: dict[str, Any] = {
        "f_port": 2,
        "f_cnt": f_cnt,
        "received_at": iso(t),
        "rx_metadata": [{"gateway_ids": {"gateway_id": gateway}, "rssi": rssi, "snr": snr}],
    }
    if device.network == "tts-lpp":
        message["frm_payload"] = base64.b64encode(cayenne_lpp(values)).decode()
    else:
        message["frm_payload"] = ""
        message["decoded_payload"] = values
    return {
        "end_device_ids": {
            "device_id": device.id,
            "application_ids": {"application_id": "burgo-demo"},
            "dev_eui": device.dev_eui,
        },
        "correlation_ids": [f"as:up:{device.dev_eui}-{f_cnt}-{int(t)}"],
        "received_at": iso(t),
        "uplink_message": message,
    }


def chirpstack_up(
    device: SimDevice, reading: Mapping[str, Any], t: float, f_cnt: int
) -> dict[str, Any]:
    """A ChirpStack v4 HTTP integration ``up`` event, decoded by the device profile's codec."""
    assert device.dev_eui is not None
    rssi, snr, gateway = _radio(device, f_cnt)
    return {
        "deduplicationId": f"{device.dev_eui}-{f_cnt}-{int(t)}",
        "time": iso(t),
        "deviceInfo": {
            "deviceName": device.id,
            "applicationName": "burgo-demo",
            "devEui": device.dev_eui.lower(),
        },
        "fCnt": f_cnt,
        "fPort": 2,
        "data": "",
        "object": device_values(device, reading),
        "rxInfo": [{"gatewayId": gateway, "rssi": rssi, "snr": snr}],
    }


def history_body(
    entity_id: str,
    entity_type: str,
    mapping: Sequence[Mapping[str, Any]],
    samples: Iterable[tuple[float, Mapping[str, Any]]],
) -> dict[str, Any]:
    """A temporal entity (``POST /temporal/entities``) holding ``samples`` (time, device values)
    as attribute instances, converted by the device's registered mapping."""
    attrs: dict[str, list[dict[str, Any]]] = {}
    rules = [(m["measurement"], m) for m in mapping]
    for t, values in samples:
        at = iso(t)
        for measurement, rule in rules:
            value = values.get(measurement)
            if value is None:
                continue
            scale, offset = rule.get("scale", 1.0), rule.get("offset", 0.0)
            if isinstance(value, int | float) and (scale != 1.0 or offset != 0.0):
                value = round(value * scale + offset, 9)
            instance: dict[str, Any] = {"type": "Property", "value": value, "observedAt": at}
            if rule.get("unitCode"):
                instance["unitCode"] = rule["unitCode"]
            attrs.setdefault(rule["attribute"], []).append(instance)
    return {"id": entity_id, "type": entity_type, **attrs}
