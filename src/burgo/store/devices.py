"""The device registry in storage: devices, their health status, and delivered messages.

A device feeds one NGSI-LD entity; its measurements reach that entity through the ordinary
entity writes. What only the registry keeps lives here: the mapping, the hashed API key, the
device's status (last seen, battery, radio) and the ids of messages already taken in, so that a
redelivered LoRaWAN uplink is stored once.

>>> temp = AttributeMap("t", "temperature", "https://smartdatamodels.org/dataModel.Weather/temperature")
>>> temp.convert(21.5)
21.5
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from burgo.ngsild.model import Entity

STATE_UNKNOWN = "unknown"
STATE_ONLINE = "online"
STATE_OFFLINE = "offline"

# A change of an entity the device feeds, as ``Store.modify_entities`` applies it.
EntityUpdate = tuple[str, Callable[[Entity], tuple[Entity | None, Any]]]


@dataclass(frozen=True, slots=True)
class AttributeMap:
    """How one measurement becomes an attribute: name (short and expanded), unit, scale, offset."""

    measurement: str
    attribute: str
    iri: str
    unit_code: str | None = None
    scale: float = 1.0
    offset: float = 0.0

    def convert(self, value: Any) -> Any:
        """The attribute value for a raw measurement (numbers scaled, others as they are)."""
        if self.scale == 1.0 and self.offset == 0.0:
            return value
        result = value * self.scale + self.offset
        return round(result, 9)


@dataclass(frozen=True, slots=True)
class StaticAttribute:
    """An attribute the target entity always carries (e.g. the station's name)."""

    attribute: str
    iri: str
    value: Any


@dataclass(frozen=True, slots=True)
class Device:
    """A registered device: where its data goes and how its measurements are read."""

    tenant: str
    id: str
    name: str
    protocol: str
    entity_id: str
    entity_type: str
    entity_type_iri: str
    mapping: tuple[AttributeMap, ...]
    dev_eui: str | None = None
    profile: str | None = None
    context: str | None = None
    static_attrs: tuple[StaticAttribute, ...] = ()
    location: tuple[float, float] | None = None
    decoder: str | None = None
    interval: int | None = None
    key_hash: str = ""
    created_at: str = ""

    def to_storage(self) -> dict[str, Any]:
        """The document a backend keeps."""
        return asdict(self)

    @classmethod
    def from_storage(cls, doc: Mapping[str, Any]) -> Device:
        """Rebuild a device from :meth:`to_storage` output."""
        values = dict(doc)
        values["mapping"] = tuple(AttributeMap(**m) for m in values["mapping"])
        values["static_attrs"] = tuple(StaticAttribute(**s) for s in values["static_attrs"])
        if values.get("location") is not None:
            values["location"] = (float(values["location"][0]), float(values["location"][1]))
        return cls(**values)


@dataclass(frozen=True, slots=True)
class DeviceReport:
    """What one message tells about its device, besides its measurements."""

    at: str
    battery: float | None = None
    rssi: float | None = None
    snr: float | None = None
    gateway: str | None = None
    frame_counter: int | None = None


@dataclass(frozen=True, slots=True)
class DeviceMessage:
    """One message to take in: its device's report, its id (if the sender gives one) and the
    updates of the entities it feeds."""

    tenant: str
    device_id: str
    report: DeviceReport
    message_id: str | None = None
    updates: Sequence[EntityUpdate] = ()


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """A device's health: when it last reported, its battery and link, online or not."""

    tenant: str
    device_id: str
    state: str = STATE_UNKNOWN
    state_since: str | None = None
    last_seen: str | None = None
    battery: float | None = None
    rssi: float | None = None
    snr: float | None = None
    gateway: str | None = None
    frame_counter: int | None = None
    messages: int = 0
    duplicates: int = 0
    errors: int = 0
    last_error: str | None = None
    last_error_at: str | None = None
    interval: int | None = field(default=None)


@dataclass(frozen=True, slots=True)
class ReportOutcome:
    """What recording a report did: whether it was a redelivery, and the state it left."""

    duplicate: bool
    previous_state: str


class DeviceStore(Protocol):
    """Storage of registered devices, their status and the message ids already taken in."""

    async def create_device(self, device: Device) -> None:
        """Register a device; AlreadyExists if its id (or DevEUI) is taken in its tenant."""

    async def get_device(self, tenant: str, device_id: str) -> Device | None:
        """The device with that id, or None."""

    async def find_device_by_eui(self, tenant: str, dev_eui: str) -> Device | None:
        """The device with that DevEUI (upper-case hex), or None."""

    async def list_devices(self, tenant: str) -> Sequence[Device]:
        """The tenant's devices, by id."""

    async def delete_device(self, tenant: str, device_id: str) -> bool:
        """Forget a device, its status and its message ids; False if there was none."""

    async def get_device_status(self, tenant: str, device_id: str) -> DeviceStatus | None:
        """The device's health status, or None if there is no such device."""

    async def list_device_statuses(self) -> Sequence[DeviceStatus]:
        """The status of every device of every tenant."""

    async def record_device_report(
        self, tenant: str, device_id: str, report: DeviceReport, message_id: str | None = None
    ) -> ReportOutcome:
        """Count a message and update the status (online, last seen, radio) atomically; with a
        ``message_id`` already recorded, count a duplicate and change nothing else."""

    async def ingest_device_report(
        self,
        tenant: str,
        device_id: str,
        report: DeviceReport,
        message_id: str | None,
        updates: Sequence[EntityUpdate],
    ) -> ReportOutcome:
        """Record a report (as ``record_device_report``) and apply its entity ``updates`` (as
        ``modify_entities``) in one transaction, all or nothing: a redelivered ``message_id``
        counts a duplicate and applies nothing; a missing entity raises ResourceNotFound and
        leaves the status and message ids as they were."""

    async def ingest_device_messages(
        self, messages: Sequence[DeviceMessage]
    ) -> list[ReportOutcome | Exception]:
        """Take each message as ``ingest_device_report`` would, in order, each all or nothing on
        its own (one failing leaves the others stored); the outcome, or the error, of each. A
        backend may commit them together (one transaction, one flush to disk) and read and write
        each entity they feed once."""

    async def forget_device_message(self, tenant: str, device_id: str, message_id: str) -> None:
        """Drop a recorded message id (its data could not be stored, so a redelivery may be)."""

    async def record_device_error(self, tenant: str, device_id: str, error: str, at: str) -> None:
        """Count a rejected message and keep its reason."""

    async def set_device_state(
        self, tenant: str, device_id: str, state: str, at: str, *, expected: str
    ) -> bool:
        """Move the device to ``state`` if it is in ``expected``; whether it moved."""
