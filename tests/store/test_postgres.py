"""The PostgreSQL backend: what only a database server has to get right (the contract runs in
test_contract.py): its schema versions, other processes sharing it, errors and lost connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from psycopg import errors
from psycopg_pool import PoolTimeout

from burgo.ngsild.errors import (
    BadRequestData,
    InternalError,
    NgsiLdError,
    ResourceNotFound,
    ServiceUnavailable,
)
from burgo.ngsild.model import Entity
from burgo.store.base import DEFAULT_TENANT, Lane
from burgo.store.postgres import PostgresStore, translate_error
from burgo.store.postgres.migrations import available_migrations
from tests.services import PostgresServer, free_port
from tests.store.contract import (
    T1,
    TEMPERATURE,
    context,
    every_kind,
    prop,
    room,
    set_temperature,
    subscription,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
async def pg_store(empty_postgres: str) -> AsyncIterator[PostgresStore]:
    """An opened PostgresStore on the emptied test database."""
    opened = PostgresStore(empty_postgres, max_connections=4)
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
def fresh_database(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> str:
    """The URL of a new, empty database (no Burgo schema at all)."""
    name = f"burgo_{request.node.name.lower()}"[:60]
    with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return postgres_server.url(name)


async def test_data_survives_close_and_reopen(pg_store: PostgresStore) -> None:
    await pg_store.create_entity(DEFAULT_TENANT, every_kind())
    await pg_store.create_entity("fundao", room(temperature=1.0))
    await pg_store.modify_entity("fundao", room().id, set_temperature(2.0))
    await pg_store.put_context(context())
    await pg_store.create_subscription("fundao", subscription())
    await pg_store.close()

    second = PostgresStore(pg_store.url)
    await second.open()
    try:
        assert await second.list_tenants() == [DEFAULT_TENANT, "fundao"]
        assert await second.get_entity(DEFAULT_TENANT, every_kind().id) == every_kind()
        reopened = await second.get_entity("fundao", room().id)
        assert reopened is not None
        assert reopened.instance(TEMPERATURE) == prop(2.0, unit_code="CEL")[0]
        assert await second.get_context("ctx-1") == context()
        assert second.subscription_cached("fundao", subscription().id) == subscription()
    finally:
        await second.close()


async def test_two_processes_share_entities_and_tenants(pg_store: PostgresStore) -> None:
    """A second store on the same database (another worker) sees what the first one wrote."""
    other = PostgresStore(pg_store.url, max_connections=2)
    await other.open()
    try:
        await pg_store.create_entity("fundao", room(temperature=1.0))
        assert await other.tenant_exists("fundao")
        assert await other.get_entity("fundao", room().id) == room(temperature=1.0)
        await other.modify_entity("fundao", room().id, set_temperature(5.0))
        stored = await pg_store.get_entity("fundao", room().id)
        assert stored is not None
        assert stored.instance(TEMPERATURE) == prop(5.0, unit_code="CEL")[0]
    finally:
        await other.close()


async def test_one_process_at_a_time_holds_a_lane_of_notifications(
    pg_store: PostgresStore,
) -> None:
    await pg_store.create_subscription(DEFAULT_TENANT, subscription("urn:ngsi-ld:Subscription:l"))
    lane = Lane(DEFAULT_TENANT, "urn:ngsi-ld:Subscription:l")
    other = PostgresStore(pg_store.url, max_connections=2)
    await other.open()
    try:
        assert await pg_store.claim_lane(lane, 30)
        assert not await other.claim_lane(lane, 30)
        assert await pg_store.claim_lane(lane, 30)  # extended by its holder
        await pg_store.release_lane(lane)
        assert await other.claim_lane(lane, 30)
        assert not await pg_store.claim_lane(lane, 30)
        with psycopg.connect(pg_store.url) as conn:  # the holder died; its lease ran out
            conn.execute("UPDATE subscriptions SET lane_until = now() - interval '1 second'")
        assert await pg_store.claim_lane(lane, 30)
    finally:
        await other.close()


async def test_a_scheduled_job_runs_in_one_process_per_period(pg_store: PostgresStore) -> None:
    other = PostgresStore(pg_store.url, max_connections=2)
    await other.open()
    try:
        assert await pg_store.claim_job("history-retention", 3600)
        assert not await other.claim_job("history-retention", 3600)
        assert await other.claim_job("device-health", 3600)  # each job on its own
        with psycopg.connect(pg_store.url) as conn:  # a period later
            conn.execute("UPDATE burgo_jobs SET ran_at = now() - interval '1 hour'")
        assert await other.claim_job("history-retention", 3600)
        assert not await pg_store.claim_job("history-retention", 3600)
    finally:
        await other.close()


async def test_a_new_database_gets_every_migration_once(fresh_database: str) -> None:
    latest = available_migrations()[-1].version
    store = PostgresStore(fresh_database)
    assert await store.upgrade() == (latest, [m.version for m in available_migrations()])
    assert await store.upgrade() == (latest, [])
    await store.open()
    try:
        await store.create_entity(DEFAULT_TENANT, room())
        assert await store.count_entities(DEFAULT_TENANT) == 1
    finally:
        await store.close()


async def test_a_schema_newer_than_burgo_is_refused(fresh_database: str) -> None:
    store = PostgresStore(fresh_database)
    await store.upgrade()
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute("INSERT INTO burgo_schema (version, name) VALUES (9999, 'future')")
    with pytest.raises(InternalError, match="newer than this Burgo knows"):
        await store.open()


async def test_an_unreachable_server_is_unavailable_and_hides_the_password() -> None:
    url = f"postgresql://burgo:s3cret@127.0.0.1:{free_port()}/burgo"
    store = PostgresStore(url, connect_timeout=2)
    with pytest.raises(ServiceUnavailable) as caught:
        await store.open()
    assert "s3cret" not in caught.value.detail
    assert "127.0.0.1" in caught.value.detail


async def test_text_postgresql_cannot_hold_is_bad_request_data(pg_store: PostgresStore) -> None:
    nul = Entity("urn:ngsi-ld:Room:\x00", room().types, room().attrs)
    with pytest.raises(BadRequestData, match="NUL"):
        await pg_store.create_entity(DEFAULT_TENANT, nul)
    assert await pg_store.count_entities(DEFAULT_TENANT) == 0
    await pg_store.create_entity(DEFAULT_TENANT, room())
    assert await pg_store.get_entity(DEFAULT_TENANT, room().id) == room()


async def test_a_failing_change_hook_rolls_back_the_whole_write(pg_store: PostgresStore) -> None:
    async def audit(conn: Any, record: Any) -> None:
        await conn.execute("CREATE TABLE IF NOT EXISTS hook_log (entity text)")
        await conn.execute("INSERT INTO hook_log VALUES (%s)", (record.entity_id,))
        if record.after is not None and record.after.instance(TEMPERATURE).value > 50:
            raise BadRequestData("the hook refuses")

    pg_store._change_hooks.append(audit)
    try:
        await pg_store.create_entity(DEFAULT_TENANT, room(temperature=1.0))
        with pytest.raises(BadRequestData):
            await pg_store.modify_entity(DEFAULT_TENANT, room().id, set_temperature(99.0))
        assert await pg_store.get_entity(DEFAULT_TENANT, room().id) == room(temperature=1.0)
        with psycopg.connect(pg_store.url) as conn:
            logged = conn.execute("SELECT count(*) FROM hook_log").fetchone()
            conn.execute("DROP TABLE hook_log")
        assert logged == (1,), "the refused write's log line must be rolled back with it"
    finally:
        pg_store._change_hooks.remove(audit)


async def test_writes_arriving_together_commit_together_and_fail_alone(
    pg_store: PostgresStore,
) -> None:
    rooms = [room(f"urn:ngsi-ld:Room:{n}", temperature=float(n)) for n in range(1, 6)]
    for each in rooms:
        await pg_store.create_entity(DEFAULT_TENANT, each)
    groups = pg_store._groups.groups
    outcomes = await asyncio.gather(
        *(pg_store.modify_entity(DEFAULT_TENANT, r.id, set_temperature(20.0)) for r in rooms[:3]),
        pg_store.modify_entity(DEFAULT_TENANT, "urn:ngsi-ld:Room:missing", set_temperature(1.0)),
        pg_store.modify_entity(DEFAULT_TENANT, rooms[3].id, set_temperature(30.0)),
        pg_store.modify_entity(DEFAULT_TENANT, rooms[3].id, set_temperature(31.0)),
        return_exceptions=True,
    )
    assert pg_store._groups.groups == groups + 1, "the six writes went in one transaction"
    assert outcomes[:3] == [1.0, 2.0, 3.0]
    assert isinstance(outcomes[3], ResourceNotFound)
    assert outcomes[4:] == [4.0, 30.0], "a later write of the same entity sees the earlier one"
    # A value the database refuses spoils the group's transaction: the others are written again
    # alone, and only the bad write fails.
    nul = {TEMPERATURE: prop("12\x00", unit_code="CEL")}
    outcomes = await asyncio.gather(
        pg_store.modify_entity(DEFAULT_TENANT, rooms[0].id, set_temperature(21.0)),
        pg_store.modify_entity(DEFAULT_TENANT, rooms[4].id, lambda e: (e.with_attrs(nul, T1), 0)),
        pg_store.modify_entity(DEFAULT_TENANT, rooms[1].id, set_temperature(22.0)),
        return_exceptions=True,
    )
    assert outcomes[0] == 20.0 and outcomes[2] == 20.0
    assert isinstance(outcomes[1], BadRequestData)
    temperatures = [
        e.instance(TEMPERATURE).value
        for r in rooms
        if (e := await pg_store.get_entity(DEFAULT_TENANT, r.id)) is not None
    ]
    assert temperatures == [21.0, 22.0, 20.0, 31.0, 5.0]


async def test_lost_connections_fail_cleanly_and_the_store_recovers(
    pg_store: PostgresStore,
) -> None:
    await pg_store.create_entity(DEFAULT_TENANT, room())
    with psycopg.connect(pg_store.url, autocommit=True) as conn:
        killed = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND datname = current_database()"
        ).fetchone()
    assert killed is not None and killed[0] >= 1
    outcomes: list[str] = []
    for _ in range(10):
        try:
            await pg_store.get_entity(DEFAULT_TENANT, room().id)
        except ServiceUnavailable:
            outcomes.append("unavailable")
            continue
        outcomes.append("ok")
        break
    assert outcomes[-1] == "ok", outcomes
    assert set(outcomes) <= {"unavailable", "ok"}
    assert await pg_store.get_entity(DEFAULT_TENANT, room().id) == room()


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (errors.AdminShutdown("terminating connection"), ServiceUnavailable),
        (errors.CannotConnectNow("the database system is starting up"), ServiceUnavailable),
        (psycopg.OperationalError("connection refused"), ServiceUnavailable),
        (errors.DiskFull("could not extend file"), ServiceUnavailable),
        (errors.TooManyConnections("too many clients"), ServiceUnavailable),
        (errors.SerializationFailure("could not serialize"), ServiceUnavailable),
        (errors.DeadlockDetected("deadlock detected"), ServiceUnavailable),
        (PoolTimeout("couldn't get a connection"), ServiceUnavailable),
        (errors.CharacterNotInRepertoire("invalid byte sequence 0x00"), BadRequestData),
        (errors.UntranslatableCharacter("unsupported Unicode escape"), BadRequestData),
        (psycopg.DataError("text fields cannot contain NUL (0x00) bytes"), BadRequestData),
        (errors.UndefinedTable("relation does not exist"), InternalError),
        (psycopg.ProgrammingError("bad query"), InternalError),
    ],
)
def test_every_driver_error_is_translated(error: Exception, expected: type[NgsiLdError]) -> None:
    translated = translate_error(error)
    assert type(translated) is expected
    assert translated.detail


async def _until(condition: Any, deadline: float = 10.0) -> None:
    """Wait until ``condition()`` holds (another process's news arrives asynchronously)."""
    import asyncio
    import time

    until = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < until, "the other process never learnt of the change"
        await asyncio.sleep(0.01)


async def test_every_process_matches_against_subscriptions_made_elsewhere(
    pg_store: PostgresStore,
) -> None:
    """Two workers on one database: a subscription made through one queues notifications for
    entity writes through the other, and stops doing so once deleted there."""
    from dataclasses import replace

    other = PostgresStore(pg_store.url, max_connections=2)
    await other.open()
    try:
        await pg_store.create_subscription(DEFAULT_TENANT, subscription())
        await _until(lambda: other.subscription_cached(DEFAULT_TENANT, subscription().id))
        await other.create_entity(DEFAULT_TENANT, room())
        lanes, _ = await pg_store.outbox_lanes(0)
        assert [lane.subscription_id for lane in lanes] == [subscription().id]

        await pg_store.modify_subscription(
            DEFAULT_TENANT, subscription().id, lambda s: replace(s, is_active=False)
        )
        await _until(
            lambda: other.subscription_cached(DEFAULT_TENANT, subscription().id).is_active is False
        )
        await pg_store.delete_subscription(DEFAULT_TENANT, subscription().id)
        await _until(lambda: other.subscription_cached(DEFAULT_TENANT, subscription().id) is None)
        await other.modify_entity(DEFAULT_TENANT, room().id, set_temperature(30.0))
        assert await other.outbox_lanes(0) == ([], 0)
    finally:
        await other.close()


async def test_the_subscription_channel_comes_back_after_a_lost_connection(
    pg_store: PostgresStore,
) -> None:
    with psycopg.connect(pg_store.url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE query LIKE 'LISTEN%%' AND datname = current_database()"
        )
    other = PostgresStore(pg_store.url, max_connections=2)
    await other.open()
    try:
        await other.create_subscription(DEFAULT_TENANT, subscription())
        await _until(lambda: pg_store.subscription_cached(DEFAULT_TENANT, subscription().id))
    finally:
        await other.close()
