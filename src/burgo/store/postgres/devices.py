"""Devices in PostgreSQL: the registry (a json document per device), status, message ids."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, LiteralString

import orjson
import psycopg
from psycopg import errors

from burgo.ngsild.errors import AlreadyExists, NgsiLdError, ServiceUnavailable
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
from burgo.store.postgres.core import (
    RETRY_LATER,
    Connection,
    defer,
    read_all,
    text_array,
    translate_error,
)
from burgo.store.postgres.entities import PostgresEntities, Staging, lock_entities

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
        """The messages in one transaction of two round trips (one commit and its flush to
        disk): their devices' status rows and entities locked and read, their ids claimed,
        together; each message then applied in memory, all or nothing on its own; what they
        changed written with COMMIT. If that transaction fails (a value the database refuses,
        a conflict with another transaction), each message is taken again in a savepoint of
        its own, so that one bad message fails alone; a lost connection fails them all."""
        if not messages:
            return []
        results: list[ReportOutcome | Exception | None] = [None] * len(messages)
        taken: list[tuple[int, DeviceMessage]] = []
        for n, m in enumerate(messages):
            try:
                await self._check_tenant(m.tenant)
            except NgsiLdError as exc:
                results[n] = exc
            else:
                taken.append((n, m))
        if taken:
            try:
                async with self._write_block() as conn:
                    outcomes = await self._ingest_together(conn, [m for _, m in taken])
            except ServiceUnavailable as exc:
                if not isinstance(exc.__cause__, RETRY_LATER):
                    raise  # the database is away: taking them one by one will not help
                outcomes = await self._ingest_one_by_one([m for _, m in taken])
            except NgsiLdError:
                outcomes = await self._ingest_one_by_one([m for _, m in taken])
            for (n, _), outcome in zip(taken, outcomes, strict=True):
                results[n] = outcome
        return [r for r in results if r is not None]

    async def _ingest_together(
        self, conn: Connection, messages: Sequence[DeviceMessage]
    ) -> list[ReportOutcome | Exception]:
        """Take the messages in the caller's write block: one statement message reads and
        locks, the changes go with COMMIT."""
        devices = sorted({(m.tenant, m.device_id) for m in messages})
        claims: dict[tuple[str, str, str | None], str] = {
            (m.tenant, m.device_id, m.message_id): m.report.at
            for m in reversed(messages)  # the first message with an id gives its time
            if m.message_id is not None
        }
        entities = {(m.tenant, entity_id) for m in messages for entity_id, _ in m.updates}
        statements = [_lock_statuses(devices), lock_entities(entities)]
        if claims:
            statements.append(_claim(claims))
        status_rows, entity_rows, *claimed_rows = await read_all(conn, statements)
        states = {(tenant, device_id): _Fold(state) for tenant, device_id, state in status_rows}
        claimed: set[tuple[str, str, str | None]] = {
            (tenant, device_id, message_id)
            for rows in claimed_rows
            for tenant, device_id, message_id in rows
        }
        staging = Staging(entity_rows)
        outcomes: list[ReportOutcome | Exception] = []
        for m in messages:
            fold = states.get((m.tenant, m.device_id))
            claim = (m.tenant, m.device_id, m.message_id)
            if fold is not None and m.message_id is not None and claim not in claimed:
                fold.duplicates += 1  # stored before, or by a message before it in this batch
                outcomes.append(ReportOutcome(duplicate=True, previous_state=fold.state))
                continue
            previous = STATE_UNKNOWN if fold is None else fold.state
            outcome = staging.stage(m.tenant, m.updates, self._now) if m.updates else []
            if isinstance(outcome, Exception):
                outcomes.append(outcome)  # its claim stays free for a redelivery
                continue
            if fold is not None:
                claimed.discard(claim)
                fold.take(m.report)
            outcomes.append(ReportOutcome(duplicate=False, previous_state=previous))
        if claimed:  # claimed for messages that failed
            await defer(conn, *_unclaim(sorted(claimed)))
        changed = {key: fold for key, fold in states.items() if fold.changed}
        if changed:
            await defer(conn, *_update_statuses(changed))
        await self._write_staged(conn, staging)
        return outcomes

    async def _ingest_one_by_one(
        self, messages: Sequence[DeviceMessage]
    ) -> list[ReportOutcome | Exception]:
        """The messages in one transaction, each in a savepoint of its own (a round trip per
        statement): a message that fails changes nothing and fails alone."""
        results: list[ReportOutcome | Exception] = []
        async with self._transaction() as conn:
            for m in messages:
                try:
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


class _Fold:
    """A device's status through the messages of one batch: its state as each message finds
    it, and what the batch changes (counters added, the latest radio values)."""

    def __init__(self, state: str) -> None:
        self.stored_state = state
        self.state = state
        self.since: str | None = None
        self.messages = 0
        self.duplicates = 0
        self.last: DeviceReport | None = None
        self.radio: dict[str, Any] = {}

    @property
    def changed(self) -> bool:
        return bool(self.messages or self.duplicates)

    def take(self, report: DeviceReport) -> None:
        """One message stored: counted, online since its time unless online already."""
        self.messages += 1
        if self.state != STATE_ONLINE and self.since is None:
            self.since = report.at
        self.state = STATE_ONLINE
        self.last = report
        for name in _RADIO:
            value = getattr(report, name)
            if value is not None:
                self.radio[name] = value

    def row(self, tenant: str, device_id: str) -> dict[str, Any]:
        return {
            "tenant": tenant,
            "device_id": device_id,
            "messages": self.messages,
            "duplicates": self.duplicates,
            "last_seen": self.last.at if self.last is not None else None,
            "since": self.since,
            **{name: self.radio.get(name) for name in _RADIO},
        }


_RADIO = ("battery", "rssi", "snr", "gateway", "frame_counter")


def _lock_statuses(devices: Sequence[tuple[str, str]]) -> tuple[LiteralString, Any]:
    """Lock and read the devices' status rows, in key order."""
    return (
        "SELECT s.tenant, s.device_id, s.state FROM device_status s "
        "JOIN unnest(%s::text[], %s::text[]) AS k(tenant, device_id) "
        "ON s.tenant = k.tenant AND s.device_id = k.device_id "
        "ORDER BY s.tenant, s.device_id FOR UPDATE OF s",
        (text_array(t for t, _ in devices), text_array(d for _, d in devices)),
    )


def _claim(claims: Mapping[tuple[str, str, str | None], str]) -> tuple[LiteralString, Any]:
    """Record the message ids (of devices that still exist); those new come back: a
    concurrent transaction claiming the same id makes this one wait for its outcome."""
    keys = [(t, d, m) for (t, d, m) in claims if m is not None]
    return (
        "INSERT INTO device_messages (tenant, device_id, message_id, received_at) "
        "SELECT k.tenant, k.device_id, k.message_id, k.at "
        "FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[]) "
        "AS k(tenant, device_id, message_id, at) "
        "WHERE EXISTS (SELECT 1 FROM device_status s "
        "WHERE s.tenant = k.tenant AND s.device_id = k.device_id) "
        "ON CONFLICT DO NOTHING RETURNING tenant, device_id, message_id",
        (
            text_array(t for t, _, _ in keys),
            text_array(d for _, d, _ in keys),
            text_array(m for _, _, m in keys),
            text_array(claims[key] for key in keys),
        ),
    )


def _unclaim(claims: Sequence[tuple[str, str, str | None]]) -> tuple[LiteralString, Any]:
    """Drop the message ids claimed for messages that failed."""
    return (
        "DELETE FROM device_messages m USING unnest(%s::text[], %s::text[], %s::text[]) "
        "AS k(tenant, device_id, message_id) WHERE m.tenant = k.tenant "
        "AND m.device_id = k.device_id AND m.message_id = k.message_id",
        (
            text_array(t for t, _, _ in claims),
            text_array(d for _, d, _ in claims),
            text_array(m or "" for _, _, m in claims),
        ),
    )


def _update_statuses(folds: Mapping[tuple[str, str], _Fold]) -> tuple[LiteralString, Any]:
    """One statement for every device status the batch changed (their rows are locked)."""
    rows = [fold.row(tenant, device_id) for (tenant, device_id), fold in folds.items()]
    return (
        "UPDATE device_status s SET messages = s.messages + r.messages, "
        "duplicates = s.duplicates + r.duplicates, "
        "last_seen = coalesce(r.last_seen, s.last_seen), "
        "state = CASE WHEN r.messages > 0 THEN %s ELSE s.state END, "
        "state_since = coalesce(r.since, s.state_since), "
        "battery = coalesce(r.battery, s.battery), rssi = coalesce(r.rssi, s.rssi), "
        "snr = coalesce(r.snr, s.snr), gateway = coalesce(r.gateway, s.gateway), "
        "frame_counter = coalesce(r.frame_counter, s.frame_counter) "
        "FROM json_to_recordset(%s::json) AS r(tenant text, device_id text, messages bigint, "
        "duplicates bigint, last_seen text, since text, battery float8, rssi float8, "
        "snr float8, gateway text, frame_counter bigint) "
        "WHERE s.tenant = r.tenant AND s.device_id = r.device_id",
        (STATE_ONLINE, orjson.dumps(rows).decode()),
    )
