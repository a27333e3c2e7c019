"""Device health: a worker that marks devices offline when they miss their expected reports,
and the Prometheus figures of ingestion.

>>> worker = HealthWorker(service, period=60.0)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from burgo.ingest.service import DeviceService
from burgo.store.base import devices

log = logging.getLogger(__name__)


class HealthWorker:
    """Checks every ``period`` seconds (on the service's clock) which devices went silent."""

    def __init__(self, service: DeviceService, *, period: float = 60.0) -> None:
        self.service = service
        self.period = period
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Check once now, then keep checking in the background."""
        await self.service.check_health()
        self._task = asyncio.create_task(self._run(), name="burgo-device-health")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            try:
                await self.service.check_health()
            except Exception:
                log.exception("Device health check failed; retrying in %s s", self.period)

    async def stop(self) -> None:
        """Stop checking."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class IngestCollector(Collector):
    """Devices by state, messages taken in, rejected and redelivered, for /metrics."""

    def __init__(self, service: DeviceService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        """The figures as Prometheus families."""
        states = GaugeMetricFamily("burgo_devices", "Registered devices by state", labels=["state"])
        counts = Counter(self.service.states.values())
        for state in (devices.STATE_ONLINE, devices.STATE_OFFLINE, devices.STATE_UNKNOWN):
            states.add_metric([state], counts.get(state, 0))
        yield states
        messages = CounterMetricFamily(
            "burgo_device_messages", "Device messages stored", labels=["source"]
        )
        rejected = CounterMetricFamily(
            "burgo_device_messages_rejected", "Device messages refused", labels=["source"]
        )
        for source in ("http", "mqtt", "lorawan"):
            messages.add_metric([source], self.service.messages.get(source, 0))
            rejected.add_metric([source], self.service.rejected.get(source, 0))
        yield messages
        yield rejected
        yield CounterMetricFamily(
            "burgo_device_messages_duplicate",
            "Redelivered uplinks recognised and stored once",
            value=self.service.duplicates,
        )
        yield CounterMetricFamily(
            "burgo_device_measurements",
            "Measurements written to entities",
            value=self.service.measurements,
        )
