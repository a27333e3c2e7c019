"""Devices in SQLite: the registry (one JSON document per device), health status, message ids."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

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
from burgo.store.sqlite.changes import (
    EntityState,
    apply_changes,
    load_states,
    stage_changes,
    store_changed,
)
from burgo.store.sqlite.core import SqliteCore, StoredChange, translate_error

_STATUS_COLUMNS = (
    "s.tenant, s.device_id, s.state, s.state_since, s.last_seen, s.battery, s.rssi, s.snr, "
    "s.gateway, s.frame_counter, s.messages, s.duplicates, s.errors, s.last_error, "
    "s.last_error_at, d.doc"
)


_STATUS_FIELDS = tuple(c.removeprefix("s.") for c in _STATUS_COLUMNS.split(", ")[:-1])


def _status(row: tuple[Any, ...]) -> DeviceStatus:
    *columns, doc = row
    interval = orjson.loads(doc).get("interval") if isinstance(doc, str) else None
    return DeviceStatus(**dict(zip(_STATUS_FIELDS, columns, strict=True)), interval=interval)


class SqliteDevices(SqliteCore):
    """Register devices, keep their status, remember the messages taken in."""

    async def create_device(self, device: Device) -> None:
        """Insert a device and its (unknown) status."""
        doc = orjson.dumps(device.to_storage()).decode()

        def job(conn: sqlite3.Connection) -> None:
            self._ensure_tenant(conn, device.tenant, device.created_at)
            try:
                conn.execute(
                    "INSERT INTO devices (tenant, id, dev_eui, created_at, doc) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (device.tenant, device.id, device.dev_eui, device.created_at, doc),
                )
            except sqlite3.IntegrityError as exc:
                what = (
                    f"DevEUI {device.dev_eui}"
                    if device.dev_eui and "dev_eui" in str(exc)
                    else f"id {device.id}"
                )
                raise AlreadyExists(f"A device with {what} is already registered") from exc
            conn.execute(
                "INSERT INTO device_status (tenant, device_id, state) VALUES (?, ?, ?)",
                (device.tenant, device.id, STATE_UNKNOWN),
            )

        await self._write(job)
        self._tenants.add(device.tenant)

    def _device_where(self, clause: str, params: tuple[str, ...]) -> Device | None:
        row = self._read(
            lambda conn: conn.execute(f"SELECT doc FROM devices WHERE {clause}", params).fetchone()  # noqa: S608
        )
        return Device.from_storage(orjson.loads(row[0])) if row else None

    async def get_device(self, tenant: str, device_id: str) -> Device | None:
        """The device, or None."""
        return self._device_where("tenant = ? AND id = ?", (tenant, device_id))

    async def find_device_by_eui(self, tenant: str, dev_eui: str) -> Device | None:
        """The device with that DevEUI, or None."""
        return self._device_where("tenant = ? AND dev_eui = ?", (tenant, dev_eui))

    async def list_devices(self, tenant: str) -> Sequence[Device]:
        """The tenant's devices by id."""
        rows = await self._read_in_thread(
            lambda conn: conn.execute(
                "SELECT doc FROM devices WHERE tenant = ? ORDER BY id", (tenant,)
            ).fetchall()
        )
        return [Device.from_storage(orjson.loads(row[0])) for row in rows]

    async def delete_device(self, tenant: str, device_id: str) -> bool:
        """Delete a device (its status and message ids go with it)."""

        def job(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "DELETE FROM devices WHERE tenant = ? AND id = ?", (tenant, device_id)
            )
            return cursor.rowcount > 0

        return await self._write(job)

    async def get_device_status(self, tenant: str, device_id: str) -> DeviceStatus | None:
        """One device's status."""
        row = self._read(
            lambda conn: conn.execute(
                f"SELECT {_STATUS_COLUMNS} FROM device_status s JOIN devices d "  # noqa: S608
                "ON d.tenant = s.tenant AND d.id = s.device_id "
                "WHERE s.tenant = ? AND s.device_id = ?",
                (tenant, device_id),
            ).fetchone()
        )
        return _status(row) if row else None

    async def list_device_statuses(self) -> Sequence[DeviceStatus]:
        """Every device's status."""
        rows = await self._read_in_thread(
            lambda conn: conn.execute(
                f"SELECT {_STATUS_COLUMNS} FROM device_status s JOIN devices d "  # noqa: S608
                "ON d.tenant = s.tenant AND d.id = s.device_id ORDER BY s.tenant, s.device_id"
            ).fetchall()
        )
        return [_status(row) for row in rows]

    async def record_device_report(
        self, tenant: str, device_id: str, report: DeviceReport, message_id: str | None = None
    ) -> ReportOutcome:
        """Claim the message id (if any), then update the status, in one transaction."""
        return await self._write(
            lambda conn: _record_report(conn, tenant, device_id, report, message_id)
        )

    async def ingest_device_report(
        self,
        tenant: str,
        device_id: str,
        report: DeviceReport,
        message_id: str | None,
        updates: Sequence[EntityUpdate],
    ) -> ReportOutcome:
        """Claim the message, update the status and apply the entity updates in one job."""
        self._check_tenant(tenant)

        def job(conn: sqlite3.Connection) -> ReportOutcome:
            outcome = _record_report(conn, tenant, device_id, report, message_id)
            if not outcome.duplicate and updates:
                apply_changes(self, conn, tenant, updates)
            return outcome

        return await self._write(job)

    async def ingest_device_messages(
        self, messages: Sequence[DeviceMessage]
    ) -> list[ReportOutcome | Exception]:
        """Take the messages in one writer job: each in a savepoint of its own, every entity
        they feed read and written once, the hooks told once."""
        if not messages:
            return []
        results = await self._write(lambda conn: self._ingest_messages(conn, messages))
        return [translate_error(r) if isinstance(r, sqlite3.Error) else r for r in results]

    def _ingest_messages(
        self, conn: sqlite3.Connection, messages: Sequence[DeviceMessage]
    ) -> list[ReportOutcome | Exception]:
        wanted: dict[str, list[str]] = {}
        for m in messages:
            if m.tenant in self._tenants:
                wanted.setdefault(m.tenant, []).extend(entity_id for entity_id, _ in m.updates)
        states: dict[str, dict[str, EntityState]] = {
            tenant: load_states(conn, tenant, ids, self._decoded) for tenant, ids in wanted.items()
        }
        steps: dict[str, list[StoredChange]] = {tenant: [] for tenant in wanted}
        reports = _Reports(conn)
        results: list[ReportOutcome | Exception] = []
        for m in messages:
            try:
                self._check_tenant(m.tenant)
            except NgsiLdError as exc:
                results.append(exc)
                continue
            if m.message_id is None:
                # Nothing to claim: staging is all or nothing in memory, and the status changes
                # are summed per device and written once at the end.
                try:
                    if m.updates:
                        stage_changes(self, m.tenant, states[m.tenant], m.updates, steps[m.tenant])
                except Exception as exc:  # noqa: BLE001 - this message's own error, handed back
                    results.append(exc)
                else:
                    results.append(reports.add(m.tenant, m.device_id, m.report))
                continue
            reports.flush()
            conn.execute("SAVEPOINT message")
            try:
                outcome = _record_report(conn, m.tenant, m.device_id, m.report, m.message_id)
                if not outcome.duplicate and m.updates:
                    stage_changes(self, m.tenant, states[m.tenant], m.updates, steps[m.tenant])
            except Exception as exc:  # noqa: BLE001 - this message's own error, handed back
                conn.execute("ROLLBACK TO message")
                conn.execute("RELEASE message")
                results.append(exc)
            else:
                conn.execute("RELEASE message")
                results.append(outcome)
        reports.flush()
        for tenant, tenant_states in states.items():
            store_changed(self, conn, tenant, tenant_states.values(), steps[tenant])
        return results

    async def forget_device_message(self, tenant: str, device_id: str, message_id: str) -> None:
        """Drop a claimed message id."""
        await self._write(
            lambda conn: conn.execute(
                "DELETE FROM device_messages WHERE tenant = ? AND device_id = ? AND message_id = ?",
                (tenant, device_id, message_id),
            )
        )

    async def record_device_error(self, tenant: str, device_id: str, error: str, at: str) -> None:
        """Count one rejected message."""
        await self._write(
            lambda conn: conn.execute(
                "UPDATE device_status SET errors = errors + 1, last_error = ?, last_error_at = ? "
                "WHERE tenant = ? AND device_id = ?",
                (error[:500], at, tenant, device_id),
            )
        )

    async def set_device_state(
        self, tenant: str, device_id: str, state: str, at: str, *, expected: str
    ) -> bool:
        """Compare-and-set the device's state."""

        def job(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE device_status SET state = ?, state_since = ? "
                "WHERE tenant = ? AND device_id = ? AND state = ?",
                (state, at, tenant, device_id, expected),
            )
            return cursor.rowcount > 0

        return await self._write(job)


def _record_report(
    conn: sqlite3.Connection,
    tenant: str,
    device_id: str,
    report: DeviceReport,
    message_id: str | None,
) -> ReportOutcome:
    row = conn.execute(
        "SELECT state FROM device_status WHERE tenant = ? AND device_id = ?",
        (tenant, device_id),
    ).fetchone()
    if row is None:
        return ReportOutcome(duplicate=False, previous_state=STATE_UNKNOWN)
    previous = row[0]
    if message_id is not None:
        cursor = conn.execute(
            "INSERT OR IGNORE INTO device_messages "
            "(tenant, device_id, message_id, received_at) VALUES (?, ?, ?, ?)",
            (tenant, device_id, message_id, report.at),
        )
        if cursor.rowcount == 0:
            conn.execute(
                "UPDATE device_status SET duplicates = duplicates + 1 "
                "WHERE tenant = ? AND device_id = ?",
                (tenant, device_id),
            )
            return ReportOutcome(duplicate=True, previous_state=previous)
    conn.execute(
        "UPDATE device_status SET messages = messages + 1, last_seen = ?, "
        "state = ?, state_since = CASE WHEN state = ? THEN state_since ELSE ? END, "
        "battery = coalesce(?, battery), rssi = coalesce(?, rssi), "
        "snr = coalesce(?, snr), gateway = coalesce(?, gateway), "
        "frame_counter = coalesce(?, frame_counter) "
        "WHERE tenant = ? AND device_id = ?",
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


class _Reports:
    """Reports without a message id, summed per device and written in one statement each: the
    status ends as if they had been recorded one by one, in order."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._states: dict[tuple[str, str], str | None] = {}
        self._pending: dict[tuple[str, str], list[DeviceReport]] = {}

    def add(self, tenant: str, device_id: str, report: DeviceReport) -> ReportOutcome:
        """Count one report; its outcome (the state the device was in before it)."""
        key = (tenant, device_id)
        if key not in self._states:
            row = self._conn.execute(
                "SELECT state FROM device_status WHERE tenant = ? AND device_id = ?", key
            ).fetchone()
            self._states[key] = None if row is None else row[0]
        previous = self._states[key]
        if previous is None:
            return ReportOutcome(duplicate=False, previous_state=STATE_UNKNOWN)
        self._states[key] = STATE_ONLINE
        self._pending.setdefault(key, []).append(report)
        return ReportOutcome(duplicate=False, previous_state=previous)

    def flush(self) -> None:
        """Write the summed reports (before a report recorded on its own, and at the end)."""
        if not self._pending:
            return
        rows = []
        for (tenant, device_id), reports in self._pending.items():
            last = reports[-1]
            rows.append(
                (
                    len(reports),
                    last.at,
                    STATE_ONLINE,
                    STATE_ONLINE,
                    reports[0].at,
                    _latest(reports, "battery"),
                    _latest(reports, "rssi"),
                    _latest(reports, "snr"),
                    _latest(reports, "gateway"),
                    _latest(reports, "frame_counter"),
                    tenant,
                    device_id,
                )
            )
        self._conn.executemany(
            "UPDATE device_status SET messages = messages + ?, last_seen = ?, "
            "state = ?, state_since = CASE WHEN state = ? THEN state_since ELSE ? END, "
            "battery = coalesce(?, battery), rssi = coalesce(?, rssi), "
            "snr = coalesce(?, snr), gateway = coalesce(?, gateway), "
            "frame_counter = coalesce(?, frame_counter) "
            "WHERE tenant = ? AND device_id = ?",
            rows,
        )
        self._pending.clear()


def _latest(reports: Sequence[DeviceReport], field: str) -> Any:
    """The last value of ``field`` the reports carry, if any (as coalescing them in order)."""
    return next((v for r in reversed(reports) if (v := getattr(r, field)) is not None), None)
