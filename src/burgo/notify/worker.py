"""Delivery of queued notifications: one lane per subscription, in order, with retries.

The dispatcher learns from the store which subscriptions have queued notifications and runs one
task per such lane. A lane sends its notifications one after the other; a failure keeps the
notification queued and the lane waits (exponential back-off) before trying it again, while every
other lane goes on. Notifications leave the outbox only once delivered: at-least-once, across
restarts and crashes.

Several processes sharing one database deliver together: a process delivers a lane only while it
holds the lane's lease in the store, so each notification goes out once, in order, whichever
process queued it; when a process stops or dies, another takes its lanes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson

from burgo.clock import Clock
from burgo.ngsild.context import CORE_CONTEXT_URL, Context
from burgo.ngsild.errors import NgsiLdError
from burgo.ngsild.notification import coalesce, notification_body
from burgo.ngsild.subscription import Subscription
from burgo.ngsild.times import format_datetime, parse_datetime
from burgo.notify.senders import DeliveryFailed, HttpSender, MqttSender, headers_for
from burgo.store.base import Lane, PendingNotification, Store

log = logging.getLogger(__name__)

JSONLD_CONTEXT_REL = "http://www.w3.org/ns/json-ld#context"
# Seconds a process holds a lane without extending its lease (a process that dies loses its
# lanes after this), and seconds before asking again for a lane another process holds.
_MIN_LEASE = 30.0
_ELSEWHERE_RECHECK = 0.5
ResolveContext = Callable[[Any], Awaitable[Context]]


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    """How hard and how fast to deliver."""

    timeout: float = 10.0
    retry_min: float = 1.0
    retry_max: float = 60.0
    concurrency: int = 64
    batch: int = 100
    tick: float = 0.05


class NotificationWorker:
    """Delivers the outbox's notifications to HTTP and MQTT endpoints (a :class:`Worker`)."""

    def __init__(
        self,
        store: Store,
        resolve_context: ResolveContext,
        clock: Clock,
        http_client: httpx.AsyncClient,
        settings: DeliverySettings | None = None,
    ) -> None:
        self._store = store
        self._resolve = resolve_context
        self._clock = clock
        self._settings = settings or DeliverySettings()
        self._http = HttpSender(http_client, self._settings.timeout)
        self._mqtt = MqttSender(self._settings.timeout)
        self._lanes: dict[Lane, asyncio.Task[None]] = {}
        self._dirty: set[Lane] = set()
        self._last_sent: dict[Lane, datetime] = {}
        self._next_periodic: dict[Lane, datetime] = {}
        self._wake = asyncio.Event()
        self._gate = asyncio.Semaphore(self._settings.concurrency)
        self._task: asyncio.Task[None] | None = None
        # Lanes this process holds (until, monotonic) and lanes another process held lately.
        self._lease = max(_MIN_LEASE, 3 * self._settings.timeout)
        self._leases: dict[Lane, float] = {}
        self._held_elsewhere: dict[Lane, float] = {}

    async def start(self) -> None:
        """Start dispatching (queued notifications from before a restart included)."""
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()

        def wake() -> None:
            loop.call_soon_threadsafe(self._wake.set)

        self._store.outbox_listener(wake)
        self._task = asyncio.create_task(self._dispatch(), name="burgo-notify")

    async def stop(self) -> None:
        """Stop delivering; what is not delivered stays queued for the next start."""
        self._store.outbox_listener(lambda: None)
        tasks = [t for t in (self._task, *self._lanes.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._lanes.clear()
        for lane in list(self._leases):
            with contextlib.suppress(NgsiLdError):  # else the lease runs out by itself
                await self._release(lane)
        await self._mqtt.close()

    # -- dispatching ---------------------------------------------------------------------------

    async def _dispatch(self) -> None:
        cursor, unseen_polls, down = 0, 0, False
        while True:
            try:
                lanes, cursor = await self._store.outbox_lanes(cursor)
                for lane in lanes:
                    self._kick(lane)
                await self._periodic()
            except NgsiLdError as exc:
                # The database is away: keep everything queued, try again shortly.
                if not down:
                    log.warning("Notification delivery paused: %s", exc.detail)
                down = True
                await asyncio.sleep(self._settings.retry_min)
                continue
            if down:
                log.info("Notification delivery resumed")
                down = False
            # The change hook announces notifications before their transaction commits.
            if self._store.outbox_written() > cursor and unseen_polls < 1000:
                unseen_polls += 1
                await asyncio.sleep(0.001)
                continue
            unseen_polls = 0
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.tick)

    def _kick(self, lane: Lane) -> None:
        self._dirty.add(lane)
        if lane in self._lanes or self._held_elsewhere.get(lane, 0.0) > time.monotonic():
            return
        self._lanes[lane] = asyncio.create_task(self._run_lane(lane))

    async def _periodic(self) -> None:
        now = self._clock.now()
        for tenant, sub in self._store.periodic_subscriptions():
            lane = Lane(tenant, sub.id)
            interval = timedelta(seconds=sub.time_interval or 0)
            due = self._next_periodic.get(lane)
            if due is None:
                created = parse_datetime(sub.created_at) if sub.created_at else now
                due = self._next_periodic[lane] = created + interval
            if now < due or sub.status(format_datetime(now)) != "active":
                continue
            self._next_periodic[lane] = max(due + interval, now)
            await self._store.enqueue_periodic(tenant, sub.id, format_datetime(now))

    # -- one lane ------------------------------------------------------------------------------

    async def _hold(self, lane: Lane, extra: float = 0.0) -> bool:
        """Take or extend this process's lease on the lane; False while another process has it."""
        now = time.monotonic()
        if not extra and self._leases.get(lane, 0.0) - now > self._lease / 2:
            return True
        if not await self._store.claim_lane(lane, self._lease + extra):
            self._leases.pop(lane, None)
            self._held_elsewhere[lane] = now + _ELSEWHERE_RECHECK
            return False
        if lane not in self._leases:
            self._last_sent.pop(lane, None)  # another process may have sent since
        self._leases[lane] = now + self._lease + extra
        self._held_elsewhere.pop(lane, None)
        return True

    async def _run_lane(self, lane: Lane) -> None:
        failures = 0
        try:
            while True:
                if not await self._hold(lane):
                    return
                self._dirty.discard(lane)
                sub = self._store.subscription_cached(lane.tenant, lane.subscription_id)
                if sub is None:
                    return
                if not await self._throttle_passed(lane, sub):
                    self._dirty.add(lane)
                    await asyncio.sleep(self._settings.tick)
                    continue
                limit = 10_000 if sub.throttling else self._settings.batch
                items = await self._store.pending_notifications(
                    lane.tenant, lane.subscription_id, limit=limit
                )
                if not items:
                    if lane in self._dirty:
                        continue
                    await self._release(lane)
                    return
                if await self._deliver(lane, sub, items):
                    failures = 0
                    continue
                failures += 1
                delay = min(self._settings.retry_min * 2 ** min(failures - 1, 20),
                            self._settings.retry_max)  # fmt: skip
                if not await self._hold(lane, extra=delay):
                    return
                await asyncio.sleep(delay)
        except asyncio.CancelledError:
            raise
        except NgsiLdError as exc:
            log.warning("Notification lane %s paused: %s", lane, exc.detail)
        except Exception:
            log.exception("Notification lane %s stopped; it restarts on the next change", lane)
        finally:
            self._lanes.pop(lane, None)

    async def _release(self, lane: Lane) -> None:
        if self._leases.pop(lane, None) is not None:
            await self._store.release_lane(lane)

    async def _throttle_passed(self, lane: Lane, sub: Subscription) -> bool:
        if not sub.throttling:
            return True
        last = self._last_sent.get(lane)
        if last is None:
            stored = await self._store.get_subscription(lane.tenant, lane.subscription_id)
            when = stored.status.last_success if stored is not None else None
            if when is None:
                return True
            last = self._last_sent[lane] = parse_datetime(when)
        return self._clock.now() >= last + timedelta(seconds=sub.throttling)

    async def _deliver(
        self, lane: Lane, sub: Subscription, items: list[PendingNotification]
    ) -> bool:
        """Send ``items`` as one notification; True when it went."""
        # What is already queued goes together, in order, as one notification (its data holds
        # every change); a lone change goes alone at once. Throttled lanes keep the latest only.
        try:
            async with self._gate:
                await self._send(lane, sub, items)
        except DeliveryFailed as exc:
            if items[0].attempts == 0:
                log.warning("Subscription %s: delivery failed: %s", sub.id, exc)
            now = format_datetime(self._clock.now())
            await self._store.notification_failed(lane.tenant, sub.id, items[0].seq, now)
            return False
        if items[0].attempts:
            log.info("Subscription %s: delivery works again", sub.id)
        await self._settle(lane, [item.seq for item in items], 1)
        return True

    async def _settle(self, lane: Lane, done: list[int], sent: int) -> None:
        if not done:
            return
        now = self._clock.now()
        self._last_sent[lane] = now
        await self._store.notifications_delivered(
            lane.tenant, lane.subscription_id, done, sent, format_datetime(now)
        )

    async def _send(self, lane: Lane, sub: Subscription, group: list[PendingNotification]) -> None:
        changes = [change for item in group for change in item.changes]
        if sub.throttling:
            changes = coalesce(changes)
        reference = sub.jsonld_context or sub.context or CORE_CONTEXT_URL
        try:
            ctx = await self._resolve(reference)
        except NgsiLdError as exc:
            raise DeliveryFailed(f"cannot resolve the @context {reference!r}: {exc}") from exc
        endpoint = sub.notification.endpoint
        in_body = endpoint.accept == "application/ld+json" or not isinstance(reference, str)
        body = notification_body(
            sub,
            changes,
            ctx,
            notification_id=f"urn:ngsi-ld:Notification:{uuid.uuid4()}",
            notified_at=format_datetime(self._clock.now()),
            context=reference if in_body else None,
        )
        link = None
        if not in_body:
            link = f'<{reference}>; rel="{JSONLD_CONTEXT_REL}"; type="application/ld+json"'
        accept = "application/ld+json" if in_body else "application/json"
        headers = headers_for(lane.tenant, accept, link)
        payload = orjson.dumps(body)
        if endpoint.scheme in ("mqtt", "mqtts"):
            await self._mqtt.send(endpoint, headers, payload)
        else:
            await self._http.send(endpoint, headers, payload)
