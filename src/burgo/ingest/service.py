"""The device service: registers devices and takes their measurements into the store.

Every path (HTTP, MQTT, LoRaWAN) ends in :meth:`DeviceService.ingest`: in one store transaction
the report is counted (and a LoRaWAN message id claimed) and each reading becomes one ordinary
entity update of the target entity, so history and subscriptions see it; only once that is
committed is the sender answered.

>>> service = DeviceService(store, clock, resolve=resolver.resolve)  # doctest: +SKIP
>>> body, key = await service.add("", {"id": "aq-1", "profile": "air-quality"})  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from types import MappingProxyType
from typing import Any, NamedTuple

import orjson

from burgo.clock import Clock
from burgo.ingest import decoders
from burgo.ingest.keys import fingerprint, hash_key, new_key, verify_key
from burgo.ingest.lorawan import Uplink, is_tts_uplink, parse_chirpstack, parse_tts
from burgo.ingest.profiles import PROFILES
from burgo.ingest.readings import (
    Reading,
    apply_reading,
    check_mapped,
    lorawan_reading,
    parse_readings,
    reading_attributes,
)
from burgo.ingest.registry import (
    DEVICE_CONTEXT,
    build_device,
    device_entity,
    device_entity_id,
    parse_device,
    render_device,
    target_attrs,
    with_status_attrs,
)
from burgo.ngsild.context import Context
from burgo.ngsild.errors import AlreadyExists, BadRequestData, NgsiLdError, ResourceNotFound
from burgo.ngsild.model import Attribute, Entity, attribute_to_storage
from burgo.ngsild.parse import Fragment
from burgo.ngsild.times import format_datetime, parse_datetime
from burgo.ngsild.update import append_attrs, create_entity, delete_attr, replace_entity
from burgo.store.base import Store, devices

Device = devices.Device
DeviceMessage = devices.DeviceMessage
DeviceReport = devices.DeviceReport
DeviceStatus = devices.DeviceStatus
STATE_ONLINE = devices.STATE_ONLINE
STATE_OFFLINE = devices.STATE_OFFLINE

log = logging.getLogger(__name__)

Resolve = Callable[[Any], Awaitable[Context]]
# How long a device read from the store serves this process's messages. Devices are only added
# and removed (both forget the cached copy here); another worker sees a removal this late at most.
DEVICE_CACHE_SECONDS = 5.0
SECRET_HEADER = "X-Burgo-Secret"  # noqa: S105 - a header name, not a secret
# At most this many messages (or, counted in entity updates, readings) go to the store together.
MAX_MESSAGES_PER_WRITE = 256
MAX_UPDATES_PER_WRITE = 2500


class Unauthorized(NgsiLdError):
    """A missing or wrong device key or integration secret."""

    problem, status, title = "Unauthorized", 401, "Unauthorized"

    @property
    def type_uri(self) -> str:
        # NGSI-LD defines no problem type for authentication; RFC 7807's default stands in.
        return "about:blank"


def _fragment(attrs: Mapping[str, tuple[Attribute, ...]]) -> Fragment:
    return Fragment(
        attrs={iri: [attribute_to_storage(a) for a in inst] for iri, inst in attrs.items()},
        names={iri: iri for iri in attrs},
    )


class Publication(NamedTuple):
    """An MQTT message for a device: the tenant and device its topic names, and its payload."""

    tenant: str
    device_id: str
    payload: bytes | bytearray


def _report(readings: Sequence[Reading], now: str) -> DeviceReport:
    """The report of readings received at ``now``: their latest battery level, if any."""
    battery = next((r.battery for r in reversed(readings) if r.battery is not None), None)
    return DeviceReport(at=now, battery=battery)


def _device_message(
    device: Device, readings: Sequence[Reading], report: DeviceReport, message_id: str | None
) -> DeviceMessage:
    """The store's view of a message: its report and one entity update per reading."""
    built = [reading_attributes(device, r) for r in readings]
    updates = [(device.entity_id, apply_reading(attrs, report.at)) for attrs in built if attrs]
    return DeviceMessage(device.tenant, device.id, report, message_id, updates)


class DeviceService:
    """Device registry and ingestion over the Store protocol."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        resolve: Resolve,
        missed_reports: int = 3,
        secrets: Mapping[str, str | None] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self._resolve = resolve
        self.missed_reports = missed_reports
        self._secrets = dict(secrets or {})
        self._verified: dict[tuple[str, str], bytes] = {}
        self._by_id: dict[tuple[str, str], tuple[float, Device]] = {}
        self._by_eui: dict[tuple[str, str], tuple[float, Device]] = {}
        self.messages: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.duplicates = 0
        self.measurements = 0
        self.states: dict[tuple[str, str], str] = {}
        self._waiting: list[tuple[DeviceMessage, asyncio.Future[devices.ReportOutcome]]] = []
        self._writing: asyncio.Task[None] | None = None

    def now(self) -> str:
        """The current time, canonical."""
        return format_datetime(self.clock.now())

    # -- registry ------------------------------------------------------------------------------

    @staticmethod
    def profiles() -> list[dict[str, Any]]:
        """The built-in profiles as the API lists them."""
        return [
            {
                "name": p.name,
                "description": p.description,
                "entityType": p.entity_type,
                "context": p.context,
                "interval": p.interval,
                "mapping": [
                    {
                        "measurement": m.measurement,
                        "attribute": m.attribute,
                        "unitCode": m.unit_code,
                        "scale": m.scale,
                        "offset": m.offset,
                    }
                    for m in p.mapping
                ],
            }
            for p in PROFILES.values()
        ]

    @staticmethod
    def decoders() -> list[str]:
        """The payload decoders available (built in and installed)."""
        return decoders.available()

    async def add(self, tenant: str, body: Any) -> tuple[dict[str, Any], str]:
        """Register a device, its Device entity and its link to the target; the rendered device
        and its API key (shown this once)."""
        draft = parse_device(body)
        ctx = await self._resolve(draft.context)
        dctx = await self._resolve(DEVICE_CONTEXT)
        now = self.now()
        key = new_key()
        key_hash = await asyncio.to_thread(hash_key, key)
        device = build_device(draft, tenant, ctx, key_hash, now)
        extra = target_attrs(device, ctx)
        entity = create_entity(device_entity(device, dctx), now)
        await self.store.create_device(device)
        self._forget(device)
        try:
            await self._put_device_entity(tenant, entity, now)
            await self._link_target(device, extra, now)
        except BaseException:
            await self.store.delete_device(tenant, device.id)
            self._forget(device)
            raise
        self.states[(tenant, device.id)] = "unknown"
        status = await self.store.get_device_status(tenant, device.id)
        return render_device(device, status), key

    async def _put_device_entity(self, tenant: str, entity: Entity, now: str) -> None:
        try:
            await self.store.create_entity(tenant, entity)
        except AlreadyExists:
            await self.store.modify_entity(
                tenant, entity.id, lambda current: (replace_entity(current, entity, now), None)
            )

    async def _link_target(
        self, device: Device, extra: Mapping[str, tuple[Attribute, ...]], now: str
    ) -> None:
        fragment = _fragment(extra)
        try:
            await self.store.modify_entity(
                device.tenant,
                device.entity_id,
                lambda current: (append_attrs(current, fragment, now)[0], None),
            )
        except ResourceNotFound:
            target = Entity(
                device.entity_id, (device.entity_type_iri,), MappingProxyType(dict(extra))
            )
            await self.store.create_entity(device.tenant, create_entity(target, now))

    async def device(self, tenant: str, device_id: str, source: str | None = None) -> Device:
        """The registered device; ResourceNotFound names it when there is none (a message for
        it from ``source`` counts as refused)."""
        device = await self._cached(
            self._by_id, (tenant, device_id), lambda: self.store.get_device(tenant, device_id)
        )
        if device is None:
            if source is not None:
                self.rejected[source] += 1
            raise ResourceNotFound(f"No device {device_id!r} is registered")
        return device

    @staticmethod
    async def _cached(
        cache: dict[tuple[str, str], tuple[float, Device]],
        key: tuple[str, str],
        load: Callable[[], Awaitable[Device | None]],
    ) -> Device | None:
        """The device from ``cache`` while fresh, else from ``load`` (a miss is not kept, so a
        device registered by another worker is found at once)."""
        now = time.monotonic()
        hit = cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        device = await load()
        if device is None:
            cache.pop(key, None)
        else:
            cache[key] = (now + DEVICE_CACHE_SECONDS, device)
        return device

    def _forget(self, device: Device) -> None:
        self._verified.pop((device.tenant, device.id), None)
        self._by_id.pop((device.tenant, device.id), None)
        if device.dev_eui:
            self._by_eui.pop((device.tenant, device.dev_eui), None)

    async def show(self, tenant: str, device_id: str) -> dict[str, Any]:
        """One device with its status."""
        device = await self.device(tenant, device_id)
        return render_device(device, await self.store.get_device_status(tenant, device_id))

    async def list_devices(self, tenant: str) -> list[dict[str, Any]]:
        """The tenant's devices with their status."""
        statuses = {(s.tenant, s.device_id): s for s in await self.store.list_device_statuses()}
        return [
            render_device(d, statuses.get((tenant, d.id)))
            for d in await self.store.list_devices(tenant)
        ]

    async def remove(self, tenant: str, device_id: str) -> None:
        """Forget a device and its Device entity; the target entity and its data stay."""
        device = await self.device(tenant, device_id)
        await self.store.delete_device(tenant, device_id)
        self._forget(device)
        self.states.pop((tenant, device_id), None)
        with contextlib.suppress(ResourceNotFound):
            await self.store.delete_entity(tenant, device_entity_id(device))
        ref = (await self._resolve(device.context)).expand("refDevice")

        def unlink(current: Entity) -> tuple[Entity, None]:
            link = current.instance(ref)
            if link is None or link.value != device_entity_id(device):
                return current, None
            return delete_attr(current, ref)[0].with_attrs(
                {k: v for k, v in current.attrs.items() if k != ref}, self.now()
            ), None

        with contextlib.suppress(ResourceNotFound):
            await self.store.modify_entity(tenant, device.entity_id, unlink)

    # -- ingestion -----------------------------------------------------------------------------

    async def authenticate(self, tenant: str, device_id: str, key: str | None) -> Device:
        """The device, if ``key`` is its API key; Unauthorized (counted in the device's errors)
        otherwise."""
        device = await self.device(tenant, device_id, "http")
        if not key:
            await self._reject(device, "missing API key", "http")
            raise Unauthorized(f"Device {device_id} must send its API key (X-Api-Key header)")
        cache_key = (tenant, device_id)
        presented = fingerprint(key)
        known = self._verified.get(cache_key)
        if known is None or not hmac.compare_digest(known, presented):
            if not await asyncio.to_thread(verify_key, key, device.key_hash):
                await self._reject(device, "wrong API key", "http")
                raise Unauthorized(f"Wrong API key for device {device_id}")
            self._verified[cache_key] = presented
        return device

    async def http_measurements(
        self, tenant: str, device_id: str, key: str | None, read_body: Callable[[], Awaitable[Any]]
    ) -> int:
        """Take one reading or a batch sent over HTTP (the body read once the device's key is
        checked, so a body that is not JSON counts against the device); the readings stored."""
        device = await self.authenticate(tenant, device_id, key)
        try:
            body = await read_body()
        except NgsiLdError as exc:
            await self._reject(device, exc.detail, "http")
            raise
        return await self.json_measurements(device, body, "http")

    async def mqtt_messages(self, messages: Sequence[Publication]) -> list[NgsiLdError | None]:
        """Take MQTT messages that arrived together, in one store job: for each, None once
        stored, else why not (a refused message is counted in its device's errors; one
        message refused or failing leaves the others stored)."""
        now = self.now()
        errors: list[NgsiLdError | None] = [None] * len(messages)
        taken: list[tuple[int, Device, list[Reading], DeviceMessage]] = []
        found: dict[tuple[str, str], Device] = {}  # each device looked up once a batch
        for n, (tenant, device_id, payload) in enumerate(messages):
            device = found.get((tenant, device_id))
            try:
                if device is None:
                    device = found[(tenant, device_id)] = await self.device(
                        tenant, device_id, "mqtt"
                    )
            except NgsiLdError as exc:
                errors[n] = exc
                continue
            try:
                body = orjson.loads(payload)
            except orjson.JSONDecodeError as exc:
                await self._reject(device, f"payload is not JSON: {exc}", "mqtt")
                errors[n] = BadRequestData(f"MQTT payload of {device_id} is not JSON: {exc}")
                continue
            try:
                readings = await self._readings(device, body, now, "mqtt")
            except BadRequestData as exc:
                errors[n] = exc
                continue
            message = _device_message(device, readings, _report(readings, now), None)
            taken.append((n, device, readings, message))
        if not taken:
            return errors
        try:
            outcomes: Sequence[
                devices.ReportOutcome | Exception
            ] = await self.store.ingest_device_messages([t[3] for t in taken])
        except NgsiLdError as exc:  # the whole job failed (the database busy or broken)
            for n, *_ in taken:
                errors[n] = exc
            return errors
        for (n, device, readings, message), outcome in zip(taken, outcomes, strict=True):
            try:
                await self._settle(device, readings, message, outcome, "mqtt")
            except NgsiLdError as exc:
                errors[n] = exc
        return errors

    async def _readings(self, device: Device, body: Any, now: str, source: str) -> list[Reading]:
        """The device's readings in a JSON body, validated in full (else counted and refused)."""
        try:
            readings = parse_readings(body, now)
            check_mapped(device, readings)
        except BadRequestData as exc:
            await self._reject(device, exc.detail, source)
            raise
        return readings

    async def json_measurements(self, device: Device, body: Any, source: str) -> int:
        """Validate readings in full, then store them."""
        now = self.now()
        readings = await self._readings(device, body, now, source)
        await self.ingest(device, readings, _report(readings, now), None, source)
        return len(readings)

    def check_secret(self, network: str, secret: str | None) -> None:
        """Unauthorized unless ``secret`` is the integration's (and the integration is on)."""
        expected = self._secrets.get(network)
        setting = f"BURGO_LORAWAN_{network.upper()}_SECRET"
        if not expected:
            raise Unauthorized(f"The {network} integration is disabled; set {setting} to enable it")
        if secret is None or not hmac.compare_digest(secret.encode(), expected.encode()):
            raise Unauthorized(f"Missing or wrong {SECRET_HEADER} header for the {network} webhook")

    async def lorawan_uplink(self, network: str, tenant: str, secret: str | None, body: Any) -> str:
        """Take one uplink from a network server: "stored", "duplicate" or "ignored"."""
        self.check_secret(network, secret)
        if network == "tts":
            if isinstance(body, Mapping) and "end_device_ids" in body and not is_tts_uplink(body):
                return "ignored"
            uplink = parse_tts(body)
        else:
            uplink = parse_chirpstack(body)
        eui = uplink.dev_eui
        device = await self._cached(
            self._by_eui, (tenant, eui), lambda: self.store.find_device_by_eui(tenant, eui)
        )
        if device is None:
            self.rejected["lorawan"] += 1
            raise ResourceNotFound(f"No device with DevEUI {uplink.dev_eui} is registered")
        now = self.now()
        try:
            reading = self._uplink_reading(device, uplink, now)
        except BadRequestData as exc:
            await self._reject(device, exc.detail, "lorawan")
            raise
        report = DeviceReport(
            at=now,
            battery=reading.battery,
            rssi=uplink.rssi,
            snr=uplink.snr,
            gateway=uplink.gateway,
            frame_counter=uplink.f_cnt,
        )
        stored = await self.ingest(device, [reading], report, uplink.message_id, "lorawan")
        return "stored" if stored else "duplicate"

    def _uplink_reading(self, device: Device, uplink: Uplink, now: str) -> Reading:
        values = uplink.decoded
        if values is None:
            if device.decoder is None:
                raise BadRequestData(
                    f"The uplink of {device.id} has no decoded payload and the device has no "
                    f"decoder; set one ({', '.join(decoders.available())}) or decode in the "
                    "network server"
                )
            try:
                values = decoders.decode(device.decoder, uplink.payload, uplink.f_port)
            except decoders.DecodeError as exc:
                raise BadRequestData(f"Payload of {device.id}: {exc}") from exc
        return lorawan_reading(device, values, uplink.received_at or now)

    async def _reject(self, device: Device, reason: str, source: str) -> None:
        self.rejected[source] += 1
        await self.store.record_device_error(device.tenant, device.id, reason, self.now())

    async def ingest(
        self,
        device: Device,
        readings: Sequence[Reading],
        report: DeviceReport,
        message_id: str | None,
        source: str,
    ) -> bool:
        """Record the report and write every reading in one store transaction; False for an
        uplink already stored."""
        message = _device_message(device, readings, report, message_id)
        try:
            outcome: devices.ReportOutcome | Exception = await self._store_message(message)
        except NgsiLdError as exc:
            outcome = exc
        return await self._settle(device, readings, message, outcome, source)

    async def _settle(
        self,
        device: Device,
        readings: Sequence[Reading],
        message: DeviceMessage,
        outcome: devices.ReportOutcome | Exception,
        source: str,
    ) -> bool:
        """Count what the store made of a message (an error raised, counted against the
        device); False for an uplink already stored."""
        try:
            if isinstance(outcome, ResourceNotFound):
                # The target entity was deleted by hand: bring it back as registration made it.
                ctx = await self._resolve(device.context)
                await self._link_target(device, target_attrs(device, ctx), message.report.at)
                outcome = await self.store.ingest_device_report(
                    device.tenant, device.id, message.report, message.message_id, message.updates
                )
            elif isinstance(outcome, Exception):
                raise outcome
        except NgsiLdError as exc:
            await self._reject(device, exc.detail, source)
            raise
        if outcome.duplicate:
            self.duplicates += 1
            return False
        self.messages[source] += 1
        self.measurements += sum(len(r.values) for r in readings)
        if outcome.previous_state != STATE_ONLINE:
            await self._transition(device, STATE_ONLINE, outcome.previous_state)
        return True

    async def _store_message(self, message: DeviceMessage) -> devices.ReportOutcome:
        """Store one message together with the others that arrive meanwhile: while the store
        writes one group, the next one gathers, so under load many messages share a
        transaction (and its flush to disk) and each entity is read and written once."""
        future: asyncio.Future[devices.ReportOutcome] = asyncio.get_running_loop().create_future()
        self._waiting.append((message, future))
        if self._writing is None or self._writing.done():
            self._writing = asyncio.create_task(self._write_waiting())
        return await future

    async def _write_waiting(self) -> None:
        while self._waiting:
            group, updates = 0, 0
            for message, _ in self._waiting:
                if group == MAX_MESSAGES_PER_WRITE or (group and updates > MAX_UPDATES_PER_WRITE):
                    break
                group += 1
                updates += len(message.updates)
            taken, self._waiting = self._waiting[:group], self._waiting[group:]
            try:
                results = await self.store.ingest_device_messages([m for m, _ in taken])
            except asyncio.CancelledError:
                for _, future in taken:
                    future.cancel()
                raise
            except Exception as exc:  # noqa: BLE001 - the whole group failed: each sender is told
                results = [exc] * len(taken)
            for (_, future), result in zip(taken, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    # -- health --------------------------------------------------------------------------------

    async def _transition(self, device: Device, state: str, previous: str) -> None:
        self.states[(device.tenant, device.id)] = state
        if state == STATE_ONLINE:
            log.info("Device %s (tenant %r) is online (was %s)", device.id, device.tenant, previous)
        else:
            log.warning(
                "Device %s (tenant %r) went offline: missed %d expected reports",
                device.id,
                device.tenant,
                self.missed_reports,
            )
        status = await self.store.get_device_status(device.tenant, device.id)
        if status is None:
            return
        dctx = await self._resolve(DEVICE_CONTEXT)
        now = self.now()
        try:
            await self.store.modify_entity(
                device.tenant,
                device_entity_id(device),
                lambda current: (with_status_attrs(current, dctx, status, now), None),
            )
        except ResourceNotFound:
            log.warning("The Device entity of %s is missing", device.id)

    async def check_health(self) -> list[DeviceStatus]:
        """Mark offline every online device that missed its expected reports; those it marked."""
        moment = self.clock.now()
        now = format_datetime(moment)
        marked = []
        for status in await self.store.list_device_statuses():
            key = (status.tenant, status.device_id)
            self.states[key] = status.state
            if status.state != STATE_ONLINE or not status.interval or not status.last_seen:
                continue
            allowed = timedelta(seconds=status.interval * self.missed_reports)
            if moment - parse_datetime(status.last_seen) <= allowed:
                continue
            if await self.store.set_device_state(
                status.tenant, status.device_id, STATE_OFFLINE, now, expected=STATE_ONLINE
            ):
                device = await self.store.get_device(status.tenant, status.device_id)
                if device is not None:
                    await self._transition(device, STATE_OFFLINE, STATE_ONLINE)
                    marked.append(status)
        return marked
