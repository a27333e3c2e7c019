"""The part of the Store protocol that keeps subscriptions and their notification outbox.

A backend matches every entity write against the tenant's active subscriptions inside the write's
own transaction and queues the notifications it causes in an outbox, so a change is never
acknowledged without its notifications. Delivery workers read the outbox per subscription (a
lane), in order, and remove what was delivered: at-least-once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from burgo.ngsild.errors import NgsiLdError
from burgo.ngsild.notification import EntityChange, Matcher
from burgo.ngsild.subscription import (
    DeliveryStatus,
    Subscription,
    subscription_from_storage,
)

if TYPE_CHECKING:  # base.py imports this module
    from burgo.store.base import EntityChangeRecord

log = logging.getLogger(__name__)

SubscriptionChange = Callable[[Subscription], Subscription]


@dataclass(frozen=True, slots=True)
class StoredSubscription:
    """A subscription with its delivery status."""

    tenant: str
    subscription: Subscription
    status: DeliveryStatus


@dataclass(frozen=True, slots=True)
class PendingNotification:
    """One queued notification: its place in the outbox and the entity changes it carries."""

    seq: int
    tenant: str
    subscription_id: str
    changes: tuple[EntityChange, ...]
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class Lane:
    """A subscription with queued notifications."""

    tenant: str
    subscription_id: str


class SubscriptionStore(Protocol):
    """Subscriptions, tenant-scoped, and the outbox of their notifications."""

    async def create_subscription(self, tenant: str, sub: Subscription) -> None:
        """Store a new subscription (creating the tenant); AlreadyExists if its id is taken."""

    async def get_subscription(self, tenant: str, sub_id: str) -> StoredSubscription | None:
        """One subscription with its status, or None; NonexistentTenant for an unknown tenant."""

    async def list_subscriptions(
        self, tenant: str, *, limit: int, offset: int
    ) -> tuple[list[StoredSubscription], int]:
        """A page of the tenant's subscriptions (oldest first) and how many there are."""

    async def modify_subscription(
        self, tenant: str, sub_id: str, change: SubscriptionChange
    ) -> Subscription:
        """Apply ``change`` atomically and return the result; ResourceNotFound if missing."""

    async def delete_subscription(self, tenant: str, sub_id: str) -> None:
        """Delete a subscription and its queued notifications; ResourceNotFound if missing."""

    async def outbox_lanes(self, after_seq: int) -> tuple[list[Lane], int]:
        """The subscriptions with notifications queued after ``after_seq``, and the last seq."""

    async def pending_notifications(
        self, tenant: str, sub_id: str, *, limit: int
    ) -> list[PendingNotification]:
        """The oldest queued notifications of one subscription, in order."""

    async def notifications_delivered(
        self, tenant: str, sub_id: str, seqs: Sequence[int], sent: int, at: str
    ) -> None:
        """Remove delivered notifications and count ``sent`` notifications as sent."""

    async def notification_failed(self, tenant: str, sub_id: str, seq: int, at: str) -> None:
        """Count a failed attempt (the notification stays queued)."""

    async def enqueue_periodic(self, tenant: str, sub_id: str, at: str) -> bool:
        """Queue a periodic notification with the entities the subscription selects now;
        False when the subscription is gone or has none."""

    def periodic_subscriptions(self) -> list[tuple[str, Subscription]]:
        """The active subscriptions with a timeInterval, by tenant (from memory)."""

    def subscription_cached(self, tenant: str, sub_id: str) -> Subscription | None:
        """A subscription from memory (the delivery path's quick lookup)."""

    def outbox_listener(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` (from any thread) whenever notifications are queued."""

    def outbox_written(self) -> int:
        """The highest seq queued so far (committed or about to be)."""

    async def claim_lane(self, lane: Lane, seconds: float) -> bool:
        """Take or extend the delivery of a lane for ``seconds``: False while another process
        sharing the store holds it (each notification is delivered by one process)."""

    async def release_lane(self, lane: Lane) -> None:
        """Give a lane back once it has nothing queued (another process may take it at once)."""


class SubscriptionCache:
    """What every backend keeps in memory beside its tables: each tenant's subscriptions as
    matchers (read by the change hook), the highest outbox seq queued, and who to wake."""

    def _init_subscription_cache(self) -> None:
        self._matchers: dict[str, dict[str, Matcher]] = {}
        self._outbox_high = 0
        self._outbox_wake: Callable[[], None] | None = None

    def _load_matchers(self, rows: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        """Replace the matchers by those of ``(tenant, stored subscription)`` rows; one that
        cannot be matched is logged and left out."""
        matchers: dict[str, dict[str, Matcher]] = {}
        for tenant, doc in rows:
            sub = subscription_from_storage(doc)
            try:
                matchers.setdefault(tenant, {})[sub.id] = Matcher.of(sub)
            except NgsiLdError as exc:
                log.error("Subscription %s cannot be matched and is ignored: %s", sub.id, exc)
        self._matchers = matchers

    def _set_matcher(self, tenant: str, sub: Subscription | None, sub_id: str) -> None:
        """Put (or, with ``sub`` None, drop) one subscription's matcher; readers keep the maps
        they hold, which are never changed in place."""
        current = dict(self._matchers.get(tenant, {}))
        if sub is None:
            current.pop(sub_id, None)
        else:
            current[sub_id] = Matcher.of(sub)
        self._matchers = {**self._matchers, tenant: current}

    def _matched(
        self, records: Iterable[EntityChangeRecord]
    ) -> list[tuple[str, str, EntityChange]]:
        """The notifications entity writes make, in order: each tenant, subscription id and
        the change the subscription is told of (a subscription that cannot match is logged)."""
        found: list[tuple[str, str, EntityChange]] = []
        for record in records:
            matchers = self._matchers.get(record.tenant)
            if not matchers:
                continue
            for matcher in matchers.values():
                try:
                    change = matcher.match(record.before, record.after, record.at)
                except NgsiLdError as exc:
                    log.warning("Subscription %s: %s", matcher.subscription.id, exc)
                    continue
                if change is not None:
                    found.append((record.tenant, matcher.subscription.id, change))
        return found

    def outbox_listener(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` whenever an entity write has queued notifications."""
        self._outbox_wake = wake

    def outbox_written(self) -> int:
        """The highest seq this process queued so far."""
        return self._outbox_high

    def subscription_cached(self, tenant: str, sub_id: str) -> Subscription | None:
        """A subscription from memory."""
        matcher = self._matchers.get(tenant, {}).get(sub_id)
        return matcher.subscription if matcher is not None else None

    def periodic_subscriptions(self) -> list[tuple[str, Subscription]]:
        """Subscriptions with a timeInterval."""
        return [
            (tenant, m.subscription)
            for tenant, matchers in self._matchers.items()
            for m in matchers.values()
            if m.subscription.time_interval is not None
        ]
