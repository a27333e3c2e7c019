"""Subscriptions in PostgreSQL, and the notification outbox filled inside each entity write.

The active subscriptions are kept in memory as :class:`Matcher` values, loaded when the store
opens. Every subscription write announces itself on a PostgreSQL channel when it commits
(NOTIFY); each process sharing the database listens and reloads that subscription, so several
workers match entity writes against the same subscriptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import orjson
import psycopg
from psycopg import errors

from burgo.ngsild.errors import AlreadyExists, NgsiLdError, ResourceNotFound
from burgo.ngsild.model import entity_from_storage
from burgo.ngsild.notification import EntityChange, Matcher
from burgo.ngsild.subscription import (
    DeliveryStatus,
    Subscription,
    subscription_from_storage,
    subscription_to_storage,
)
from burgo.ngsild.times import parse_datetime
from burgo.store.base import EntityChangeRecord
from burgo.store.postgres.core import Connection, PostgresCore, defer_returning
from burgo.store.subscriptions import (
    Lane,
    PendingNotification,
    StoredSubscription,
    SubscriptionCache,
    SubscriptionChange,
)

log = logging.getLogger(__name__)

# The channel on which subscription writes are announced: "tenant\nsubscription id".
CHANNEL = "burgo_subscriptions"
# Seconds between attempts to listen again after the listening connection was lost.
_RELISTEN = 1.0
# Seconds between the listener's looks at whether the store is closing.
_WAKE = 1.0

_COLUMNS = (
    "doc, times_sent, times_failed, last_notification, last_success, last_failure, failing, "
    "(SELECT count(*) FROM notification_outbox o "
    "WHERE o.tenant = s.tenant AND o.subscription_id = s.id)"
)


def _stored(tenant: str, row: Sequence[Any]) -> StoredSubscription:
    status = DeliveryStatus(
        times_sent=int(row[1]),
        times_failed=int(row[2]),
        last_notification=row[3],
        last_success=row[4],
        last_failure=row[5],
        failing=bool(row[6]),
        pending=int(row[7]),
    )
    return StoredSubscription(tenant, subscription_from_storage(row[0]), status)


class PostgresSubscriptions(SubscriptionCache, PostgresCore):
    """Create, read, change and delete subscriptions; queue, read and settle notifications."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_subscription_cache()
        self._outbox_depth = 0
        self._notifications_sent = 0
        self._notifications_failed = 0
        self._change_hooks.append(self._queue_notifications)
        self._set_based_hooks[self._queue_notifications] = self._queue_many_notifications
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._closing = False

    async def open(self) -> None:
        """Open the store, listen for subscription writes and load the subscriptions."""
        await super().open()
        self._closing = False
        self._listening = asyncio.Event()
        self._listener = asyncio.create_task(self._listen(), name="burgo-subscription-listener")
        await self._listening.wait()
        async with self._transaction() as conn:
            cursor = await conn.execute("SELECT coalesce(max(seq), 0) FROM notification_outbox")
            high = await cursor.fetchone()
        self._outbox_high = int(high[0]) if high else 0
        await self._reload_all()

    async def close(self) -> None:
        """Stop listening and close the store."""
        if self._listener is not None:
            # The flag as well as the cancellation: a cancellation landing inside a database
            # call may be absorbed there, and the listener must still stop.
            self._closing = True
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        await super().close()

    # -- other processes' subscription writes ---------------------------------------------------

    async def _listen(self) -> None:
        """Reload each subscription another process (or this one) announces, for ever; after a
        lost connection, listen again and reload them all (announcements may have been missed)."""
        lost = False
        while not self._closing:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, connect_timeout=max(1, int(self._connect_timeout))
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    if lost:
                        await self._reload_all()
                        log.info("Listening for subscription changes again")
                    self._listening.set()
                    while not self._closing:
                        # A bounded wait, so that the flag is seen within a second even when
                        # the cancellation was absorbed.
                        async for notice in conn.notifies(timeout=_WAKE):
                            tenant, _, sub_id = notice.payload.partition("\n")
                            await self._reload(tenant, sub_id)
            except (psycopg.Error, NgsiLdError) as exc:
                if not lost:
                    log.warning("Lost the subscription change channel: %s", exc)
                lost = True
                self._listening.set()
                await asyncio.sleep(_RELISTEN)

    async def _reload(self, tenant: str, sub_id: str) -> None:
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "SELECT doc FROM subscriptions WHERE tenant = %s AND id = %s", (tenant, sub_id)
            )
            row = await cursor.fetchone()
        sub = subscription_from_storage(row[0]) if row else None
        try:
            self._set_matcher(tenant, sub, sub_id)
        except NgsiLdError as exc:
            log.error("Subscription %s cannot be matched and is ignored: %s", sub_id, exc)

    async def _reload_all(self) -> None:
        async with self._transaction() as conn:
            cursor = await conn.execute("SELECT tenant, doc FROM subscriptions ORDER BY pos")
            rows = await cursor.fetchall()
        self._load_matchers(rows)

    @staticmethod
    async def _announce(conn: Connection, tenant: str, sub_id: str) -> None:
        """Tell every process sharing the database, when this transaction commits."""
        await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"{tenant}\n{sub_id}"))

    # -- the change hook (inside the entity write's transaction) --------------------------------

    async def _queue_notifications(self, conn: Connection, record: EntityChangeRecord) -> None:
        for tenant, sub_id, change in self._matched([record]):
            await self._insert_outbox(conn, tenant, sub_id, [change])
            self._on_commit(self._wake)

    async def _queue_many_notifications(
        self, conn: Connection, records: Sequence[EntityChangeRecord]
    ) -> None:
        """Set-based form of :meth:`_queue_notifications` for the writes of many entities of
        one tenant: their notifications queued in one statement, in the same order."""
        rows = [
            # Each change as a JSON text, cast as a single write's is (see batch.py).
            {
                "subscription_id": sub_id,
                "created_at": change.at,
                "changes": orjson.dumps([change.to_json()]).decode(),
            }
            for _, sub_id, change in self._matched(records)
        ]
        if not rows:
            return
        cursor = await conn.execute(
            "WITH added AS (INSERT INTO notification_outbox (tenant, subscription_id, changes, "
            "created_at) SELECT %s, u.subscription_id, u.changes::json, u.created_at "
            "FROM ROWS FROM (json_to_recordset(%s::json) AS (subscription_id text, changes text, "
            "created_at text)) WITH ORDINALITY AS u(subscription_id, changes, created_at, ord) "
            "ORDER BY u.ord RETURNING seq) SELECT max(seq) FROM added",
            (records[0].tenant, orjson.dumps(rows).decode()),
        )
        high = await cursor.fetchone()
        if high is not None and high[0] is not None:
            self._outbox_high = max(self._outbox_high, int(high[0]))
        self._on_commit(self._wake)

    async def _insert_outbox(
        self, conn: Connection, tenant: str, sub_id: str, changes: list[EntityChange]
    ) -> None:
        payload = orjson.dumps([c.to_json() for c in changes]).decode()
        # In a write block the row goes with COMMIT (no round trip of its own), and its seq
        # comes back once committed.
        await defer_returning(
            conn,
            "INSERT INTO notification_outbox (tenant, subscription_id, changes, created_at) "
            "VALUES (%s, %s, %s::json, %s) RETURNING seq",
            (tenant, sub_id, payload, changes[0].at),
            self._queued,
        )

    def _queued(self, rows: list[Any]) -> None:
        for (seq,) in rows:
            self._outbox_high = max(self._outbox_high, int(seq))

    def _wake(self) -> None:
        if self._outbox_wake is not None:
            self._outbox_wake()

    # -- subscriptions --------------------------------------------------------------------------

    async def create_subscription(self, tenant: str, sub: Subscription) -> None:
        """Insert a new subscription."""
        doc = orjson.dumps(subscription_to_storage(sub)).decode()
        Matcher.of(sub)  # a subscription that cannot be matched is refused before it is stored
        async with self._transaction() as conn:
            await self._ensure_tenant(conn, tenant, sub.created_at or self._now())
            try:
                await conn.execute(
                    "INSERT INTO subscriptions (tenant, id, doc) VALUES (%s, %s, %s::json)",
                    (tenant, sub.id, doc),
                )
            except errors.UniqueViolation as exc:
                raise AlreadyExists(f"Subscription {sub.id} already exists") from exc
            await self._announce(conn, tenant, sub.id)
        self._set_matcher(tenant, sub, sub.id)
        self._tenants.add(tenant)

    async def get_subscription(self, tenant: str, sub_id: str) -> StoredSubscription | None:
        """One subscription with its status, or None."""
        await self._check_tenant(tenant)
        async with self._transaction() as conn:
            cursor = await conn.execute(
                f"SELECT {_COLUMNS} FROM subscriptions s WHERE tenant = %s AND id = %s",  # noqa: S608
                (tenant, sub_id),
            )
            row = await cursor.fetchone()
        return _stored(tenant, row) if row else None

    async def list_subscriptions(
        self, tenant: str, *, limit: int, offset: int
    ) -> tuple[list[StoredSubscription], int]:
        """A page of subscriptions, oldest first, and the total."""
        await self._check_tenant(tenant)
        async with self._transaction() as conn:
            cursor = await conn.execute(
                f"SELECT {_COLUMNS} FROM subscriptions s WHERE tenant = %s "  # noqa: S608
                "ORDER BY pos LIMIT %s OFFSET %s",
                (tenant, limit, offset),
            )
            rows = await cursor.fetchall()
            cursor = await conn.execute(
                "SELECT count(*) FROM subscriptions WHERE tenant = %s", (tenant,)
            )
            total = await cursor.fetchone()
        return [_stored(tenant, row) for row in rows], int(total[0]) if total else 0

    async def modify_subscription(
        self, tenant: str, sub_id: str, change: SubscriptionChange
    ) -> Subscription:
        """Lock, change and write back a subscription in one transaction."""
        await self._check_tenant(tenant)
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "SELECT doc FROM subscriptions WHERE tenant = %s AND id = %s FOR UPDATE",
                (tenant, sub_id),
            )
            row = await cursor.fetchone()
            if row is None:
                raise ResourceNotFound(f"Subscription {sub_id} was not found")
            new = change(subscription_from_storage(row[0]))
            Matcher.of(new)
            await conn.execute(
                "UPDATE subscriptions SET doc = %s::json WHERE tenant = %s AND id = %s",
                (orjson.dumps(subscription_to_storage(new)).decode(), tenant, sub_id),
            )
            await self._announce(conn, tenant, sub_id)
        self._set_matcher(tenant, new, sub_id)
        return new

    async def delete_subscription(self, tenant: str, sub_id: str) -> None:
        """Delete a subscription and the notifications still queued for it."""
        await self._check_tenant(tenant)
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "DELETE FROM subscriptions WHERE tenant = %s AND id = %s", (tenant, sub_id)
            )
            if cursor.rowcount == 0:
                raise ResourceNotFound(f"Subscription {sub_id} was not found")
            await conn.execute(
                "DELETE FROM notification_outbox WHERE tenant = %s AND subscription_id = %s",
                (tenant, sub_id),
            )
            await self._announce(conn, tenant, sub_id)
        self._set_matcher(tenant, None, sub_id)

    # -- the outbox -----------------------------------------------------------------------------

    async def outbox_lanes(self, after_seq: int) -> tuple[list[Lane], int]:
        """Every subscription with queued notifications, and the highest seq queued.

        Concurrent transactions commit their sequence numbers out of order, so a lane whose
        notification has a seq below ``after_seq`` may only just have become visible: every
        lane with something queued is returned, never only those past ``after_seq``.
        """
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "SELECT tenant, subscription_id, max(seq), count(*) FROM notification_outbox "
                "GROUP BY tenant, subscription_id ORDER BY 3"
            )
            rows = await cursor.fetchall()
        self._outbox_depth = sum(int(row[3]) for row in rows)
        high = max((int(row[2]) for row in rows), default=after_seq)
        high = max(high, after_seq)
        return [Lane(row[0], row[1]) for row in rows], high

    async def pending_notifications(
        self, tenant: str, sub_id: str, *, limit: int
    ) -> list[PendingNotification]:
        """The oldest queued notifications of one subscription."""
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "SELECT seq, changes, attempts FROM notification_outbox "
                "WHERE tenant = %s AND subscription_id = %s ORDER BY seq LIMIT %s",
                (tenant, sub_id, limit),
            )
            rows = await cursor.fetchall()
        return [
            PendingNotification(
                int(seq),
                tenant,
                sub_id,
                tuple(EntityChange.from_json(c) for c in changes),
                int(attempts),
            )
            for seq, changes, attempts in rows
        ]

    async def notifications_delivered(
        self, tenant: str, sub_id: str, seqs: Sequence[int], sent: int, at: str
    ) -> None:
        """Remove delivered notifications; count ``sent`` notifications as sent at ``at``."""
        # The subscription's row first, then its outbox rows, as every writer of both does
        # (deleting the subscription, queueing a period): no deadlock between them.
        async with self._transaction() as conn:
            await conn.execute(
                "UPDATE subscriptions SET times_sent = times_sent + %s, last_notification = %s, "
                "last_success = %s, failing = false WHERE tenant = %s AND id = %s",
                (sent, at, at, tenant, sub_id),
            )
            await conn.execute(
                "DELETE FROM notification_outbox "
                "WHERE tenant = %s AND subscription_id = %s AND seq = ANY(%s)",
                (tenant, sub_id, list(seqs)),
            )
        self._notifications_sent += sent

    async def notification_failed(self, tenant: str, sub_id: str, seq: int, at: str) -> None:
        """Count one failed attempt of notification ``seq``."""
        async with self._transaction() as conn:
            await conn.execute(
                "UPDATE subscriptions SET times_failed = times_failed + 1, "
                "last_notification = %s, last_failure = %s, failing = true "
                "WHERE tenant = %s AND id = %s",
                (at, at, tenant, sub_id),
            )
            await conn.execute(
                "UPDATE notification_outbox SET attempts = attempts + 1 "
                "WHERE tenant = %s AND subscription_id = %s AND seq = %s",
                (tenant, sub_id, seq),
            )
        self._notifications_failed += 1

    async def claim_lane(self, lane: Lane, seconds: float) -> bool:
        """Take or extend the delivery of a subscription's notifications for ``seconds``, unless
        another process holds it (or is changing the subscription right now)."""
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "WITH free AS (SELECT tenant, id FROM subscriptions "
                "WHERE tenant = %(tenant)s AND id = %(id)s "
                "AND (lane_owner IS NULL OR lane_owner = %(me)s OR lane_until < now()) "
                "FOR NO KEY UPDATE SKIP LOCKED) "
                "UPDATE subscriptions s SET lane_owner = %(me)s, "
                "lane_until = now() + make_interval(secs => %(secs)s) "
                "FROM free WHERE s.tenant = free.tenant AND s.id = free.id",
                {
                    "tenant": lane.tenant,
                    "id": lane.subscription_id,
                    "me": self.process_name,
                    "secs": seconds,
                },
            )
            return cursor.rowcount > 0

    async def release_lane(self, lane: Lane) -> None:
        """Give the lane back, if this process still holds it."""
        async with self._transaction() as conn:
            await conn.execute(
                "UPDATE subscriptions SET lane_owner = NULL, lane_until = NULL "
                "WHERE tenant = %s AND id = %s AND lane_owner = %s",
                (lane.tenant, lane.subscription_id, self.process_name),
            )

    async def enqueue_periodic(self, tenant: str, sub_id: str, at: str) -> bool:
        """Queue the current state of the entities a periodic subscription selects, once per
        period whichever processes ask (the period is counted from the subscription's
        creation)."""
        matcher = self._matchers.get(tenant, {}).get(sub_id)
        if matcher is None:
            return False
        sub = matcher.subscription
        types = sorted({s.type for s in sub.entities})
        async with self._transaction() as conn:
            if not await self._claim_period(conn, tenant, sub, at):
                return False
            cursor = await conn.execute(
                "SELECT doc FROM entities WHERE tenant = %s AND types && %s ORDER BY id",
                (tenant, types),
            )
            entities = [entity_from_storage(row[0]) for row in await cursor.fetchall()]
            changes = [EntityChange(e, at) for e in entities if matcher.selects(e)]
            if not changes:
                return False
            await self._insert_outbox(conn, tenant, sub_id, changes)
        self._wake()
        return True

    @staticmethod
    async def _claim_period(conn: Connection, tenant: str, sub: Subscription, at: str) -> bool:
        if not sub.time_interval or not sub.created_at:
            return True
        elapsed = (parse_datetime(at) - parse_datetime(sub.created_at)).total_seconds()
        period = int(elapsed // sub.time_interval)
        cursor = await conn.execute(
            "UPDATE subscriptions SET periodic_round = %s WHERE tenant = %s AND id = %s "
            "AND (periodic_round IS NULL OR periodic_round < %s)",
            (period, tenant, sub.id, period),
        )
        return cursor.rowcount > 0

    def stats(self) -> dict[str, float]:
        """The store's gauges plus the outbox depth (as last read) and delivery counters."""
        stats = super().stats()
        stats["burgo_notifications_pending"] = self._outbox_depth
        stats["burgo_notifications_sent_total"] = self._notifications_sent
        stats["burgo_notifications_failed_total"] = self._notifications_failed
        stats["burgo_subscriptions"] = sum(len(m) for m in self._matchers.values())
        return stats
