"""Entity history on PostgreSQL: not there yet.

Recording history in the entity write's transaction, partitioned by time, with the rollups and
retention of the SQLite backend, is the next part of this backend. Until then the temporal API
answers OperationNotSupported on PostgreSQL, and there is nothing to prune or count.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NoReturn

from burgo.ngsild.errors import OperationNotSupported
from burgo.ngsild.model import Attribute, Instances
from burgo.ngsild.temporal import Aggregation, TemporalQuery
from burgo.store.postgres.core import PostgresCore
from burgo.store.temporal import HistoryPage, HistorySelection, PruneReport, RetentionPolicy


def _unsupported() -> NoReturn:
    raise OperationNotSupported(
        "Entity history (the temporal API) is not yet available on the PostgreSQL backend; "
        "use the SQLite backend for it"
    )


class PostgresTemporal(PostgresCore):
    """The history part of the Store protocol, refused with a clear error."""

    async def query_history(
        self,
        tenant: str,
        selection: HistorySelection,
        query: TemporalQuery,
        *,
        max_instances: int,
        aggregation: Aggregation | None = None,
    ) -> HistoryPage:
        """OperationNotSupported: no history is kept on PostgreSQL yet."""
        _unsupported()

    async def count_history(
        self, tenant: str, selection: HistorySelection, query: TemporalQuery | None = None
    ) -> int:
        """OperationNotSupported: no history is kept on PostgreSQL yet."""
        _unsupported()

    async def add_history(
        self,
        tenant: str,
        entity_id: str,
        types: tuple[str, ...] | None,
        attrs: Mapping[str, Instances],
    ) -> bool:
        """OperationNotSupported: no history is kept on PostgreSQL yet."""
        _unsupported()

    async def delete_history(self, tenant: str, entity_id: str) -> None:
        """OperationNotSupported: no history is kept on PostgreSQL yet."""
        _unsupported()

    async def delete_history_attr(
        self, tenant: str, entity_id: str, attr: str, dataset_id: str | None, delete_all: bool
    ) -> None:
        """OperationNotSupported: no history is kept on PostgreSQL yet."""
        _unsupported()

    async def modify_history_instance(
        self,
        tenant: str,
        entity_id: str,
        attr: str,
        instance_id: str,
        change: Callable[[Attribute], Attribute],
    ) -> None:
        """OperationNotSupported: no history is kept on PostgreSQL yet."""
        _unsupported()

    async def set_retention(self, tenant: str, entity_type: str, raw_days: int | None) -> None:
        """OperationNotSupported: no history is kept on PostgreSQL yet."""
        _unsupported()

    async def list_retention(self) -> Sequence[RetentionPolicy]:
        """No retention policies: there is no history to keep."""
        return []

    async def prune_history(self, now_ms: int, default_raw_days: int | None) -> PruneReport:
        """Nothing to prune: there is no history."""
        return PruneReport(instances=0, series=0)

    async def history_stats(self) -> dict[str, float]:
        """No history figures."""
        return {}
