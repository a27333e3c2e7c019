"""History on PostgreSQL: what only its monthly partitions have to get right (the history contract
runs in test_contract.py): months added on demand by several processes at once, and old months
emptied whole by retention."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg import sql

from burgo.ngsild.duration import DAY, Duration
from burgo.ngsild.model import Attribute, AttrKind
from burgo.ngsild.temporal import Aggregation, TemporalQuery, from_millis, to_millis
from burgo.store.base import DEFAULT_TENANT
from burgo.store.postgres import PostgresStore
from burgo.store.temporal import ALL_TYPES, HistorySelection
from tests.store.contract import ROOM, TEMPERATURE

pytestmark = pytest.mark.anyio

JAN_1 = to_millis(datetime(2024, 1, 1, tzinfo=UTC))
MAR_1 = to_millis(datetime(2024, 3, 1, tzinfo=UTC))


@pytest.fixture
async def pg_store(empty_postgres: str) -> AsyncIterator[PostgresStore]:
    """An opened PostgresStore on the emptied test database."""
    opened = PostgresStore(empty_postgres, max_connections=4)
    await opened.open()
    yield opened
    await opened.close()


def daily(first: int, days: int) -> tuple[Attribute, ...]:
    """One reading a day from ``first`` (epoch ms), valued by its day number."""
    return tuple(
        Attribute(AttrKind.PROPERTY, n, observed_at=from_millis(first + n * DAY))
        for n in range(days)
    )


def months(url: str) -> dict[str, int]:
    """The history table's partitions, with the rows each holds."""
    with psycopg.connect(url) as conn:
        names = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'history'::regclass"
        ).fetchall()
        return {
            name: conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(name))
            ).fetchall()[0][0]
            for (name,) in names
        }


async def values(store: PostgresStore, entity_id: str) -> list[int]:
    """The raw temperature history of an entity."""
    page = await store.query_history(
        DEFAULT_TENANT, HistorySelection(ids=(entity_id,)), TemporalQuery(), max_instances=999
    )
    return [i.attribute.value for i in page.entities[0].attrs.get(TEMPERATURE, ())]


async def test_old_months_are_emptied_whole_and_their_rollups_stay(
    pg_store: PostgresStore, empty_postgres: str
) -> None:
    for entity_id in ("urn:a:1", "urn:a:2"):
        await pg_store.add_history(
            DEFAULT_TENANT, entity_id, (ROOM,), {TEMPERATURE: daily(JAN_1, 80)}
        )
    assert {"history_202401", "history_202402", "history_202403"} <= set(months(empty_postgres))
    await pg_store.set_retention(DEFAULT_TENANT, ALL_TYPES, 10)
    report = await pg_store.prune_history(MAR_1 + 19 * DAY + 3_600_000, None)
    # Cutoff 10 March: January and February go whole, then the first 9 days of March.
    assert report.instances == 2 * (31 + 29 + 9)
    assert report.series == 2
    left = months(empty_postgres)
    assert (left["history_202401"], left["history_202402"], left["history_202403"]) == (0, 0, 22)
    # A late instance for an emptied month still has its partition.
    late = {TEMPERATURE: daily(JAN_1 + 5 * DAY, 1)}
    await pg_store.add_history(DEFAULT_TENANT, "urn:a:1", None, late)
    assert months(empty_postgres)["history_202401"] == 1
    assert await values(pg_store, "urn:a:1") == [0, *range(69, 80)]
    monthly = Aggregation(("totalCount", "max"), Duration(1, 0))
    page = await pg_store.query_history(
        DEFAULT_TENANT, HistorySelection(ids=("urn:a:1",)), TemporalQuery(start=JAN_1),
        max_instances=1, aggregation=monthly,
    )  # fmt: skip
    counts = page.entities[0].aggregated[TEMPERATURE][0].values["totalCount"]
    assert [count for count, _, _ in counts] == [32, 29, 20]
    assert (await pg_store.history_stats())["burgo_history_instances"] == 2 * 11 + 1


async def test_an_entity_kept_for_ever_keeps_every_month(
    pg_store: PostgresStore, empty_postgres: str
) -> None:
    lamp = "https://example.org/Streetlight"
    await pg_store.add_history(
        DEFAULT_TENANT, "urn:a:room", (ROOM,), {TEMPERATURE: daily(JAN_1, 80)}
    )
    await pg_store.add_history(
        DEFAULT_TENANT, "urn:a:lamp", (lamp,), {TEMPERATURE: daily(JAN_1, 80)}
    )
    await pg_store.set_retention(DEFAULT_TENANT, ROOM, 10)
    report = await pg_store.prune_history(MAR_1 + 19 * DAY, None)
    assert report.instances == 31 + 29 + 9
    assert months(empty_postgres)["history_202401"] == 31
    assert await values(pg_store, "urn:a:lamp") == list(range(80))
    assert await values(pg_store, "urn:a:room") == list(range(69, 80))


async def test_processes_adding_the_same_month_at_once_share_it(
    pg_store: PostgresStore, empty_postgres: str
) -> None:
    other = PostgresStore(empty_postgres, max_connections=4)
    await other.open()
    try:
        may_1990 = to_millis(datetime(1990, 5, 1, tzinfo=UTC))
        readings = {TEMPERATURE: daily(may_1990, 3)}
        await asyncio.gather(*(
            store.add_history(DEFAULT_TENANT, f"urn:a:{n}", (ROOM,), readings)
            for n, store in enumerate([pg_store, other] * 3)
        ))  # fmt: skip
    finally:
        await other.close()
    assert "history_199005" in months(empty_postgres)
    assert await pg_store.count_history(DEFAULT_TENANT, HistorySelection()) == 6
    assert await values(pg_store, "urn:a:5") == [0, 1, 2]
