"""Devices in PostgreSQL: the registry (a json document per device), status, message ids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import psycopg
from psycopg import errors

from burgo.ngsild.errors import AlreadyExists, NgsiLdError
from burgo.store.devices import (
    STATE_ONLINE,
    STATE_UNKNOWN,
    Device,
    DeviceMessage,
    DeviceReport,
    DeviceStatus,
    EntityUpdate,
    ReportOutcome,
)
from burgo.store.postgres.core import Connection, translate_error
from burgo.store.postgres.entities import PostgresEntities

_STATUS_COLUMNS = (
    "s.tenant, s.device_id, s.state, s.state_since, s.last_seen, s.battery, s.rssi, s.snr, "
    "s.gateway, s.frame_counter, s.messages, s.duplicates, s.errors, s.last_error, "
    "s.last_error_at, d.doc"
)
_STATUS_FIELDS = tuple(c.removeprefix("s.") for c in _STATUS_COLUMNS.split(", ")[:-1])
_STATUS_FROM = (
    f"SELECT {_STATUS_COLUMNS} FROM device_status s JOIN devices d "  # noqa: S608 - fixed text
    "ON d.tenant = s.tenant AND d.id = s.device_id"
)
_COUNTERS = ("messages", "duplicates", "errors")


def _status(row: Sequence[Any]) -> DeviceStatus:
    *columns, doc = row
    values = dict(zip(_STATUS_FIELDS, columns, strict=True))
    for name in _COUNTERS:
        values[name] = int(values[name])
    if values["frame_counter"] is not None:
        values["frame_counter"] = int(values["frame_counter"])
    interval = doc.get("interval") if isinstance(doc, dict) else None
    return DeviceStatus(**values, interval=interval)


class PostgresDevices(PostgresEntities):
    """Register devices, keep their status, remember the messages taken in."""

    async def create_device(self, device: Device) -> None:
        """Insert a device and its (unknown) status."""
        doc = orjson.dumps(device.to_storage()).decode()
        async with self._transaction() as conn:
            await self._ensure_tenant(conn, device.tenant, device.created_at)
            try:
                await conn.execute(
                    "INSERT INTO devices (tenant, id, dev_eui, created_at, doc) "
                    "VALUES (%s, %s, %s, %s, %s::json)",
                    (device.tenant, device.id, device.dev_eui, device.created_at, doc),
                )
            except errors.UniqueViolation as exc:
                constraint = exc.diag.constraint_name or ""
                what = (
                    f"DevEUI {device.dev_eui}"
                    if device.dev_eui and "eui" in constraint
                    else f"id {device.id}"
                )
                raise AlreadyExists(f"A device with {what} is already registered") from exc
            await conn.execute(
                "INSERT INTO device_status (tenant, device_id, state) VALUES (%s, %s, %s)",
                (device.tenant, device.id, STATE_UNKNOWN),
            )
        self._tenants.add(device.tenant)

    async def _device_where(self, column: str, tenant: str, value: str) -> Device | None:
        async with self._transaction() as conn:
            cursor = await conn.execute(
                f"SELECT doc FROM devices WHERE tenant = %s AND {column} = %s",  # noqa: S608
                (tenant, value),
            )
            row = await cursor.fetchone()
        return Device.from_storage(row[0]) if row else None

    async def get_device(self, tenant: str, device_id: str) -> Device | None:
        """The device, or None."""
        return await self._device_where("id", tenant, device_id)

    async def find_device_by_eui(self, tenant: str, dev_eui: str) -> Device | None:
        """The device with that DevEUI, or None."""
        return await self._device_where("dev_eui", tenant, dev_eui)

    async def list_devices(self, tenant: str) -> Sequence[Device]:
        """The tenant's devices by id."""
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "SELECT doc FROM devices WHERE tenant = %s ORDER BY id", (tenant,)
            )
            rows = await cursor.fetchall()
        return [Device.from_storage(row[0]) for row in rows]

    async def delete_device(self, tenant: str, device_id: str) -> bool:
        """Delete a device (its status and message ids go with it)."""
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "DELETE FROM devices WHERE tenant = %s AND id = %s", (tenant, device_id)
            )
            return cursor.rowcount > 0

    async def get_device_status(self, tenant: str, device_id: str) -> DeviceStatus | None:
        """One device's status."""
        async with self._transaction() as conn:
            cursor = await conn.execute(
                f"{_STATUS_FROM} WHERE s.tenant = %s AND s.device_id = %s", (tenant, device_id)
            )
            row = await cursor.fetchone()
        return _status(row) if row else None

    async def list_device_statuses(self) -> Sequence[DeviceStatus]:
        """Every device's status."""
        async with self._transaction() as conn:
            cursor = await conn.execute(f"{_STATUS_FROM} ORDER BY s.tenant, s.device_id")
            rows = await cursor.fetchall()
        return [_status(row) for row in rows]

    async def record_device_report(
        self, tenant: str, device_id: str, report: DeviceReport, message_id: str | None = None
    ) -> ReportOutcome:
        """Claim the message id (if any), then update the status, in one transaction."""
        async with self._transaction() as conn:
            return await _record_report(conn, tenant, device_id, report, message_id)

    async def ingest_device_report(
        self,
        tenant: str,
        device_id: str,
        report: DeviceReport,
        message_id: str | None,
        updates: Sequence[EntityUpdate],
    ) -> ReportOutcome:
        """Claim the message, update the status and apply the entity updates in one
        transaction."""
        message = DeviceMessage(tenant, device_id, report, message_id, updates)
        (outcome,) = await self.ingest_device_messages([message])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def ingest_device_messages(
        self, messages: Sequence[DeviceMessage]
    ) -> list[ReportOutcome | Exception]:
        """The messages in one transaction (one commit and its flush to disk), each in a savepoint
        of its own: a message that fails changes nothing and fails alone; a lost connection
        fails them all."""
        results: list[ReportOutcome | Exception] = []
        if not messages:
            return results
        async with self._transaction() as conn:
            for m in messages:
                try:
                    await self._check_tenant(m.tenant)
                    async with conn.transaction():
                        outcome = await _record_report(
                            conn, m.tenant, m.device_id, m.report, m.message_id
                        )
                        if not outcome.duplicate and m.updates:
                            await self.apply_changes(conn, m.tenant, m.updates)
                except NgsiLdError as exc:
                    results.append(exc)
                except psycopg.Error as exc:
                    if conn.broken:
                        raise
                    results.append(translate_error(exc))
                else:
                    results.append(outcome)
        return results

    async def forget_device_message(self, tenant: str, device_id: str, message_id: str) -> None:
        """Drop a claimed message id."""
        async with self._transaction() as conn:
            await conn.execute(
                "DELETE FROM device_messages "
                "WHERE tenant = %s AND device_id = %s AND message_id = %s",
                (tenant, device_id, message_id),
            )

    async def record_device_error(self, tenant: str, device_id: str, error: str, at: str) -> None:
        """Count one rejected message."""
        async with self._transaction() as conn:
            await conn.execute(
                "UPDATE device_status SET errors = errors + 1, last_error = %s, "
                "last_error_at = %s WHERE tenant = %s AND device_id = %s",
                (error[:500], at, tenant, device_id),
            )

    async def set_device_state(
        self, tenant: str, device_id: str, state: str, at: str, *, expected: str
    ) -> bool:
        """Compare-and-set the device's state."""
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "UPDATE device_status SET state = %s, state_since = %s "
                "WHERE tenant = %s AND device_id = %s AND state = %s",
                (state, at, tenant, device_id, expected),
            )
            return cursor.rowcount > 0


async def _record_report(
    conn: Connection, tenant: str, device_id: str, report: DeviceReport, message_id: str | None
) -> ReportOutcome:
    """Claim the message id (if any), then update the status, in the caller's transaction."""
    cursor = await conn.execute(
        "SELECT state FROM device_status WHERE tenant = %s AND device_id = %s FOR UPDATE",
        (tenant, device_id),
    )
    row = await cursor.fetchone()
    if row is None:
        return ReportOutcome(duplicate=False, previous_state=STATE_UNKNOWN)
    previous = row[0]
    if message_id is not None:
        cursor = await conn.execute(
            "INSERT INTO device_messages (tenant, device_id, message_id, received_at) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (tenant, device_id, message_id, report.at),
        )
        if cursor.rowcount == 0:
            await conn.execute(
                "UPDATE device_status SET duplicates = duplicates + 1 "
                "WHERE tenant = %s AND device_id = %s",
                (tenant, device_id),
            )
            return ReportOutcome(duplicate=True, previous_state=previous)
    await conn.execute(
        "UPDATE device_status SET messages = messages + 1, last_seen = %s, "
        "state = %s, state_since = CASE WHEN state = %s THEN state_since ELSE %s END, "
        "battery = coalesce(%s, battery), rssi = coalesce(%s, rssi), "
        "snr = coalesce(%s, snr), gateway = coalesce(%s, gateway), "
        "frame_counter = coalesce(%s, frame_counter) "
        "WHERE tenant = %s AND device_id = %s",
        (
            report.at,
            STATE_ONLINE,
            STATE_ONLINE,
            report.at,
            report.battery,
            report.rssi,
            report.snr,
            report.gateway,
            report.frame_counter,
            tenant,
            device_id,
        ),
    )
    return ReportOutcome(duplicate=False, previous_state=previous)
