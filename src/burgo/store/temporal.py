"""The history part of the Store protocol: every change recorded, read back over time, aggregated,
imported, corrected and pruned by retention policy.

Backends record an instance for each attribute instance an entity write changes, in the same
transaction as the write (see ``EntityChangeRecord``), and keep hourly and daily rollups
(count, sum, min, max, sum of squares) of numeric values so that aggregations over months read
the rollups.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from burgo.clock import Clock
from burgo.ngsild.errors import NgsiLdError
from burgo.ngsild.geoquery import GeoQuery
from burgo.ngsild.model import Attribute, Instances
from burgo.ngsild.qmatch import QExpr
from burgo.ngsild.temporal import Aggregation, TemporalEntity, TemporalQuery

ALL_TYPES = ""
_JOB = "history-retention"

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HistorySelection:
    """Which entities and attributes: ids, an id pattern (regular expression), types (any of
    them), attribute names (expanded; None = all), filters on the instances in the query's time
    range (``q``, ``geo``: see :func:`burgo.ngsild.temporal.history_matches`), and a page of
    entities."""

    ids: tuple[str, ...] | None = None
    id_pattern: str | None = None
    types: tuple[str, ...] | None = None
    attrs: frozenset[str] | None = None
    q: QExpr | None = None
    geo: GeoQuery | None = None
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """Entities with their temporal evolution; ``truncated`` when an attribute had more
    instances than the limit, with the range of times returned (``first``, ``last``)."""

    entities: list[TemporalEntity]
    truncated: bool = False
    first: int | None = None
    last: int | None = None


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How many days raw instances are kept, per tenant and entity type (``ALL_TYPES`` for the
    tenant's default); rollups are kept."""

    tenant: str
    entity_type: str
    raw_days: int


@dataclass(frozen=True, slots=True)
class PruneReport:
    """What a prune removed."""

    instances: int
    series: int


class HistoryStore(Protocol):
    """History of entities (the temporal API)."""

    async def query_history(
        self,
        tenant: str,
        selection: HistorySelection,
        query: TemporalQuery,
        *,
        max_instances: int,
        aggregation: Aggregation | None = None,
    ) -> HistoryPage:
        """Entities matching ``selection`` with their instances in ``query``'s range (at most
        ``max_instances`` per attribute instance series), or aggregated."""

    async def count_history(
        self, tenant: str, selection: HistorySelection, query: TemporalQuery | None = None
    ) -> int:
        """How many entities with history match ``selection`` (its page ignored; its q and
        geo-query over the instances in ``query``'s range)."""

    async def add_history(
        self,
        tenant: str,
        entity_id: str,
        types: tuple[str, ...] | None,
        attrs: Mapping[str, Instances],
    ) -> bool:
        """Add instances to an entity's history (created if new: returns True; with ``types``
        None the entity must have history already, else ResourceNotFound); an instance at the same
        observedAt as an existing one of the same attribute and datasetId is skipped."""

    async def delete_history(self, tenant: str, entity_id: str) -> None:
        """Forget an entity's whole history; ResourceNotFound if it has none."""

    async def delete_history_attr(
        self, tenant: str, entity_id: str, attr: str, dataset_id: str | None, delete_all: bool
    ) -> None:
        """Forget the history of one attribute (one datasetId, or every one); ResourceNotFound
        if there is none."""

    async def modify_history_instance(
        self,
        tenant: str,
        entity_id: str,
        attr: str,
        instance_id: str,
        change: Callable[[Attribute], Attribute],
    ) -> None:
        """Replace one recorded instance by ``change`` of it; ResourceNotFound if missing."""

    async def set_retention(self, tenant: str, entity_type: str, raw_days: int | None) -> None:
        """Keep raw instances ``raw_days`` for the tenant and type (None removes the policy)."""

    async def list_retention(self) -> Sequence[RetentionPolicy]:
        """Every retention policy."""

    async def prune_history(self, now_ms: int, default_raw_days: int | None) -> PruneReport:
        """Remove raw instances older than their policy (rollups stay)."""

    async def history_stats(self) -> dict[str, float]:
        """Instances, rollups and bytes the history takes (also reported by ``stats``)."""


class HistoryRetention:
    """The scheduled job that prunes raw history by retention policy (a Worker of the app).

    With ``claim`` (the store's ``claim_job``), processes sharing a database prune once per
    interval between them.

    >>> job = HistoryRetention(store, clock, interval=3600, default_raw_days=None)
    """

    def __init__(
        self,
        store: HistoryStore,
        clock: Clock,
        *,
        interval: float,
        default_raw_days: int | None,
        claim: Callable[[str, float], Awaitable[bool]] | None = None,
    ) -> None:
        self._store = store
        self._claim = claim
        self._clock = clock
        self._interval = interval
        self._default = default_raw_days
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Run a first prune soon, then one every interval."""
        self._task = asyncio.create_task(self._run(), name="burgo-history-retention")

    async def stop(self) -> None:
        """Cancel the job (a prune in progress stops between two series)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run_once(self) -> PruneReport:
        """Prune now."""
        now = self._clock.now()
        epoch_ms = int(now.timestamp() * 1000)
        report = await self._store.prune_history(epoch_ms, self._default)
        if report.instances:
            log.info(
                "History retention removed %d raw instances from %d series",
                report.instances,
                report.series,
            )
        return report

    async def _run(self) -> None:
        while True:
            try:
                # Processes sharing a database take turns: one prune per interval in all.
                if self._claim is None or await self._claim(_JOB, self._interval):
                    await self.run_once()
            except NgsiLdError as exc:
                log.warning("History retention failed: %s", exc.detail)
            await asyncio.sleep(self._interval)
