"""The SQLite backend: the store contract, plus what only an embedded database has to get right."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest

from burgo.ngsild.errors import AlreadyExists, BadRequestData
from burgo.ngsild.model import Entity
from burgo.store.base import DEFAULT_TENANT
from burgo.store.sqlite import SqliteStore
from tests.store.contract import (
    TEMPERATURE,
    context,
    every_kind,
    prop,
    room,
    set_temperature,
)

pytestmark = pytest.mark.anyio


async def test_data_survives_close_and_reopen(tmp_path: Path) -> None:
    first = SqliteStore(tmp_path / "burgo.db")
    await first.open()
    await first.create_entity(DEFAULT_TENANT, every_kind())
    await first.create_entity("fundao", room(temperature=1.0))
    await first.modify_entity("fundao", room().id, set_temperature(2.0))
    await first.put_context(context())
    await first.close()

    second = SqliteStore(tmp_path / "burgo.db")
    await second.open()
    try:
        assert await second.list_tenants() == [DEFAULT_TENANT, "fundao"]
        assert await second.get_entity(DEFAULT_TENANT, every_kind().id) == every_kind()
        reopened = await second.get_entity("fundao", room().id)
        assert reopened is not None
        assert reopened.instance(TEMPERATURE) == prop(2.0, unit_code="CEL")[0]
        assert await second.get_context("ctx-1") == context()
    finally:
        await second.close()


async def test_a_failing_job_does_not_spoil_its_commit_group(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "burgo.db", synchronous="NORMAL")
    await store.open()
    try:
        for n in range(6):
            await store.create_entity(DEFAULT_TENANT, room(f"urn:ngsi-ld:Room:{n}", n))

        # Hold the writer inside a first job so that the next ones queue up into one group.
        entered, release = threading.Event(), threading.Event()

        def hold(current: Entity) -> tuple[Entity, None]:
            entered.set()
            release.wait(10)
            return current, None

        def refuse(current: Entity) -> tuple[Entity, None]:
            raise BadRequestData("refused")

        blocker = asyncio.create_task(
            store.modify_entity(DEFAULT_TENANT, "urn:ngsi-ld:Room:0", hold)
        )
        await anyio.to_thread.run_sync(entered.wait, 10)
        commits = store.stats()["burgo_store_write_commits_total"]

        jobs: list[Coroutine[Any, Any, Any]] = []
        for n in range(1, 6):
            room_id = f"urn:ngsi-ld:Room:{n}"
            jobs.append(store.modify_entity(DEFAULT_TENANT, room_id, refuse))
            jobs.append(store.modify_entity(DEFAULT_TENANT, room_id, set_temperature(100 + n)))
        jobs.append(store.create_entity(DEFAULT_TENANT, room("urn:ngsi-ld:Room:1")))
        jobs.append(store.create_entity("newcomer", room()))
        tasks = [asyncio.create_task(job) for job in jobs]
        await asyncio.sleep(0)  # each task queues its job in its first step
        assert store.stats()["burgo_store_write_queue_depth"] == len(tasks)
        release.set()
        await blocker
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)

        assert store.stats()["burgo_store_write_commits_total"] == commits + 2
        assert [type(o).__name__ for o in outcomes[:10:2]] == ["BadRequestData"] * 5
        assert outcomes[1:10:2] == [1.0, 2.0, 3.0, 4.0, 5.0]
        assert isinstance(outcomes[10], AlreadyExists)
        assert outcomes[11] is None
        for n in range(1, 6):
            stored = await store.get_entity(DEFAULT_TENANT, f"urn:ngsi-ld:Room:{n}")
            assert stored is not None
            assert stored.instance(TEMPERATURE) == prop(100 + n, unit_code="CEL")[0]
        assert await store.get_entity("newcomer", room().id) == room()
    finally:
        await store.close()


async def test_change_hooks_see_every_write_in_its_transaction(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "burgo.db")
    seen: list[tuple[str, float | None, float | None]] = []

    def temperature(entity: Entity | None) -> float | None:
        instance = entity.instance(TEMPERATURE) if entity is not None else None
        return instance.value if instance is not None else None

    def record(conn: Any, change: Any) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS hook_log (entity TEXT)")
        conn.execute("INSERT INTO hook_log VALUES (?)", (change.entity_id,))
        seen.append((change.entity_id, temperature(change.before), temperature(change.after)))

    store._change_hooks.append(record)
    await store.open()
    try:
        await store.create_entity(DEFAULT_TENANT, room(temperature=1.0))
        await store.modify_entity(DEFAULT_TENANT, room().id, set_temperature(2.0))
        await store.delete_entity(DEFAULT_TENANT, room().id)
        assert seen == [(room().id, None, 1.0), (room().id, 1.0, 2.0), (room().id, 2.0, None)]

        def failing(conn: Any, change: Any) -> None:
            raise BadRequestData("the hook refuses")

        store._change_hooks.append(failing)
        with pytest.raises(BadRequestData):
            await store.create_entity(DEFAULT_TENANT, room(temperature=3.0))
        assert await store.get_entity(DEFAULT_TENANT, room().id) is None
        logged = store._read(lambda conn: conn.execute("SELECT count(*) FROM hook_log").fetchone())
        assert logged[0] == 3, "a failing hook must roll back the whole write, its log included"
    finally:
        await store.close()
