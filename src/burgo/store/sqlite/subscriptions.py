"""Subscriptions in SQLite, and the notification outbox filled inside each entity write.

The active subscriptions of every tenant are kept in memory as :class:`Matcher` values, changed
only by write jobs on the writer thread, which is also where the change hook reads them: the hook
always sees the subscriptions as of its own transaction.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from burgo.ngsild.errors import AlreadyExists, ResourceNotFound
from burgo.ngsild.model import entity_from_storage
from burgo.ngsild.notification import EntityChange, Matcher
from burgo.ngsild.subscription import (
    DeliveryStatus,
    Subscription,
    subscription_from_storage,
    subscription_to_storage,
)
from burgo.store.sqlite.core import SqliteCore, StoredChange
from burgo.store.subscriptions import (
    Lane,
    PendingNotification,
    StoredSubscription,
    SubscriptionCache,
    SubscriptionChange,
)

log = logging.getLogger(__name__)

_COLUMNS = (
    "doc, times_sent, times_failed, last_notification, last_success, last_failure, failing, "
    "(SELECT count(*) FROM notification_outbox o "
    "WHERE o.tenant = s.tenant AND o.subscription_id = s.id)"
)


def _stored(tenant: str, row: Sequence[Any]) -> StoredSubscription:
    status = DeliveryStatus(
        times_sent=row[1],
        times_failed=row[2],
        last_notification=row[3],
        last_success=row[4],
        last_failure=row[5],
        failing=bool(row[6]),
        pending=row[7],
    )
    return StoredSubscription(tenant, subscription_from_storage(orjson.loads(row[0])), status)


class SqliteSubscriptions(SubscriptionCache, SqliteCore):
    """Create, read, change and delete subscriptions; queue, read and settle notifications."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_subscription_cache()
        self._notifications_sent = 0
        self._notifications_failed = 0
        self._batch_hooks.append(self._queue_notifications)

    async def open(self) -> None:
        """Open the store and load the subscriptions into memory."""
        await super().open()

        def load(conn: sqlite3.Connection) -> tuple[list[tuple[str, str]], int]:
            rows = conn.execute("SELECT tenant, doc FROM subscriptions ORDER BY pk").fetchall()
            high = conn.execute("SELECT coalesce(max(seq), 0) FROM notification_outbox")
            return rows, high.fetchone()[0]

        rows, self._outbox_high = self._read(load)
        self._load_matchers((tenant, orjson.loads(doc)) for tenant, doc in rows)

    # -- the change hook (writer thread) -------------------------------------------------------

    def _queue_notifications(
        self, conn: sqlite3.Connection, changes: Sequence[StoredChange]
    ) -> None:
        rows = [
            (tenant, sub_id, orjson.dumps([change.to_json()]).decode(), change.at)
            for tenant, sub_id, change in self._matched(stored.record for stored in changes)
        ]
        if not rows:
            return
        conn.executemany(
            "INSERT INTO notification_outbox (tenant, subscription_id, changes, created_at) "
            "VALUES (?, ?, ?, ?)",
            rows,
        )
        (last,) = conn.execute("SELECT last_insert_rowid()").fetchone()
        self._outbox_high = max(self._outbox_high, last)
        if self._outbox_wake is not None:
            self._outbox_wake()

    def _insert_outbox(
        self, conn: sqlite3.Connection, tenant: str, sub_id: str, changes: list[EntityChange]
    ) -> None:
        payload = orjson.dumps([c.to_json() for c in changes]).decode()
        cursor = conn.execute(
            "INSERT INTO notification_outbox (tenant, subscription_id, changes, created_at) "
            "VALUES (?, ?, ?, ?)",
            (tenant, sub_id, payload, changes[0].at),
        )
        self._outbox_high = max(self._outbox_high, cursor.lastrowid or 0)

    # -- subscriptions -------------------------------------------------------------------------

    async def create_subscription(self, tenant: str, sub: Subscription) -> None:
        """Insert a new subscription."""
        doc = orjson.dumps(subscription_to_storage(sub)).decode()
        Matcher.of(sub)  # a subscription that cannot be matched is refused before it is stored

        def job(conn: sqlite3.Connection) -> None:
            self._ensure_tenant(conn, tenant, sub.created_at or self._now())
            try:
                conn.execute(
                    "INSERT INTO subscriptions (tenant, id, doc) VALUES (?, ?, ?)",
                    (tenant, sub.id, doc),
                )
            except sqlite3.IntegrityError as exc:
                if exc.sqlite_errorcode == sqlite3.SQLITE_CONSTRAINT_UNIQUE:
                    raise AlreadyExists(f"Subscription {sub.id} already exists") from exc
                raise
            self._set_matcher(tenant, sub, sub.id)

        await self._write(job)
        self._tenants.add(tenant)

    async def get_subscription(self, tenant: str, sub_id: str) -> StoredSubscription | None:
        """One subscription with its status, or None."""
        self._check_tenant(tenant)
        row = self._read(
            lambda conn: conn.execute(
                f"SELECT {_COLUMNS} FROM subscriptions s WHERE tenant = ? AND id = ?",  # noqa: S608
                (tenant, sub_id),
            ).fetchone()
        )
        return _stored(tenant, row) if row else None

    async def list_subscriptions(
        self, tenant: str, *, limit: int, offset: int
    ) -> tuple[list[StoredSubscription], int]:
        """A page of subscriptions, oldest first, and the total."""
        self._check_tenant(tenant)

        def query(conn: sqlite3.Connection) -> tuple[list[Any], int]:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM subscriptions s WHERE tenant = ? "  # noqa: S608
                "ORDER BY pk LIMIT ? OFFSET ?",
                (tenant, limit, offset),
            ).fetchall()
            total = conn.execute(
                "SELECT count(*) FROM subscriptions WHERE tenant = ?", (tenant,)
            ).fetchone()[0]
            return rows, total

        rows, total = await self._read_in_thread(query)
        return [_stored(tenant, row) for row in rows], total

    async def modify_subscription(
        self, tenant: str, sub_id: str, change: SubscriptionChange
    ) -> Subscription:
        """Read, change and write back a subscription in one transaction."""
        self._check_tenant(tenant)

        def job(conn: sqlite3.Connection) -> Subscription:
            row = conn.execute(
                "SELECT doc FROM subscriptions WHERE tenant = ? AND id = ?", (tenant, sub_id)
            ).fetchone()
            if row is None:
                raise ResourceNotFound(f"Subscription {sub_id} was not found")
            new = change(subscription_from_storage(orjson.loads(row[0])))
            Matcher.of(new)
            conn.execute(
                "UPDATE subscriptions SET doc = ? WHERE tenant = ? AND id = ?",
                (orjson.dumps(subscription_to_storage(new)).decode(), tenant, sub_id),
            )
            self._set_matcher(tenant, new, sub_id)
            return new

        return await self._write(job)

    async def delete_subscription(self, tenant: str, sub_id: str) -> None:
        """Delete a subscription and the notifications still queued for it."""
        self._check_tenant(tenant)

        def job(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                "DELETE FROM subscriptions WHERE tenant = ? AND id = ?", (tenant, sub_id)
            )
            if cursor.rowcount == 0:
                raise ResourceNotFound(f"Subscription {sub_id} was not found")
            conn.execute(
                "DELETE FROM notification_outbox WHERE tenant = ? AND subscription_id = ?",
                (tenant, sub_id),
            )
            self._set_matcher(tenant, None, sub_id)

        await self._write(job)

    # -- the outbox ----------------------------------------------------------------------------

    async def outbox_lanes(self, after_seq: int) -> tuple[list[Lane], int]:
        """Subscriptions with notifications queued after ``after_seq``."""

        def query(conn: sqlite3.Connection) -> tuple[list[Lane], int]:
            rows = conn.execute(
                "SELECT tenant, subscription_id, max(seq) FROM notification_outbox "
                "WHERE seq > ? GROUP BY tenant, subscription_id",
                (after_seq,),
            ).fetchall()
            high = max((row[2] for row in rows), default=after_seq)
            return [Lane(row[0], row[1]) for row in rows], high

        return self._read(query)

    async def pending_notifications(
        self, tenant: str, sub_id: str, *, limit: int
    ) -> list[PendingNotification]:
        """The oldest queued notifications of one subscription."""
        rows = self._read(
            lambda conn: conn.execute(
                "SELECT seq, changes, attempts FROM notification_outbox "
                "WHERE tenant = ? AND subscription_id = ? ORDER BY seq LIMIT ?",
                (tenant, sub_id, limit),
            ).fetchall()
        )
        return [
            PendingNotification(
                seq,
                tenant,
                sub_id,
                tuple(EntityChange.from_json(c) for c in orjson.loads(changes)),
                attempts,
            )
            for seq, changes, attempts in rows
        ]

    async def notifications_delivered(
        self, tenant: str, sub_id: str, seqs: Sequence[int], sent: int, at: str
    ) -> None:
        """Remove delivered notifications; count ``sent`` notifications as sent at ``at``."""

        def job(conn: sqlite3.Connection) -> None:
            conn.executemany("DELETE FROM notification_outbox WHERE seq = ?", [(s,) for s in seqs])
            conn.execute(
                "UPDATE subscriptions SET times_sent = times_sent + ?, last_notification = ?, "
                "last_success = ?, failing = 0 WHERE tenant = ? AND id = ?",
                (sent, at, at, tenant, sub_id),
            )
            self._notifications_sent += sent

        await self._write(job)

    async def notification_failed(self, tenant: str, sub_id: str, seq: int, at: str) -> None:
        """Count one failed attempt of notification ``seq``."""

        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE notification_outbox SET attempts = attempts + 1 WHERE seq = ?", (seq,)
            )
            conn.execute(
                "UPDATE subscriptions SET times_failed = times_failed + 1, "
                "last_notification = ?, last_failure = ?, failing = 1 "
                "WHERE tenant = ? AND id = ?",
                (at, at, tenant, sub_id),
            )
            self._notifications_failed += 1

        await self._write(job)

    async def claim_lane(self, lane: Lane, seconds: float) -> bool:
        """Always: one process owns a SQLite file and delivers every lane."""
        return True

    async def release_lane(self, lane: Lane) -> None:
        """Nothing to give back."""

    async def enqueue_periodic(self, tenant: str, sub_id: str, at: str) -> bool:
        """Queue the current state of the entities a periodic subscription selects."""

        def job(conn: sqlite3.Connection) -> bool:
            matcher = self._matchers.get(tenant, {}).get(sub_id)
            if matcher is None:
                return False
            types = sorted({s.type for s in matcher.subscription.entities})
            marks = ", ".join("?" * len(types))
            rows = conn.execute(
                "SELECT DISTINCT e.doc FROM entities e JOIN entity_types t ON t.entity_pk = e.pk "  # noqa: S608
                f"WHERE t.tenant = ? AND t.type IN ({marks}) ORDER BY e.pk",
                (tenant, *types),
            ).fetchall()
            entities = [entity_from_storage(orjson.loads(row[0])) for row in rows]
            changes = [EntityChange(e, at) for e in entities if matcher.selects(e)]
            if not changes:
                return False
            self._insert_outbox(conn, tenant, sub_id, changes)
            return True

        queued = await self._write(job)
        if queued and self._outbox_wake is not None:
            self._outbox_wake()
        return queued

    def stats(self) -> dict[str, float]:
        """The store's gauges plus the outbox depth and delivery counters."""
        stats = super().stats()
        depth = 0
        if self._opened:
            depth = self._read(
                lambda conn: conn.execute("SELECT count(*) FROM notification_outbox").fetchone()[0]
            )
        stats["burgo_notifications_pending"] = depth
        stats["burgo_notifications_sent_total"] = self._notifications_sent
        stats["burgo_notifications_failed_total"] = self._notifications_failed
        stats["burgo_subscriptions"] = sum(len(m) for m in self._matchers.values())
        return stats
