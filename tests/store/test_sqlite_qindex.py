"""The q language's attribute-value index survives a restart and indexes older databases."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from burgo.cli import app
from burgo.ngsild.model import Attribute, AttrKind, Entity, entity_from_storage, entity_to_storage
from burgo.ngsild.qlang import evaluate, parse_q
from burgo.store.base import DEFAULT_TENANT
from burgo.store.sqlite import SqliteStore
from burgo.store.sqlite.migrations import available_migrations, migrate
from burgo.store.sqlite.qindex import entity_rows
from burgo.store.sqlite.qsql import q_to_sql
from tests.store.contract import TEMPERATURE, VOCAB, every_kind, room

NAME = VOCAB + "name"
QUERIES = ("temperature>21", "temperature==20..22", "!temperature", 'name=="x"', "temperature")


def write_at_version_1(path: Path, entities: list[tuple[str, Entity]]) -> None:
    """A database as Burgo left it before migration 0002: entities but no value index."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        migrate(conn, available_migrations()[:1])
        for tenant, entity in entities:
            conn.execute(
                "INSERT OR IGNORE INTO tenants (name, created_at) VALUES (?, '')", (tenant,)
            )
            pk = conn.execute(
                "INSERT INTO entities (tenant, id, types, created_at, modified_at, doc) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    tenant,
                    entity.id,
                    orjson.dumps(list(entity.types)).decode(),
                    entity.created_at or "",
                    entity.modified_at or "",
                    orjson.dumps(entity_to_storage(entity)).decode(),
                ),
            ).lastrowid
            conn.executemany(
                "INSERT INTO entity_types (entity_pk, tenant, type) VALUES (?, ?, ?)",
                [(pk, tenant, t) for t in entity.types],
            )


def index_is_exact(path: Path) -> None:
    """Every entity's index rows are exactly those the change hook would write."""
    with closing(sqlite3.connect(path)) as conn:
        stored = conn.execute("SELECT pk, doc FROM entities").fetchall()
        have = {
            (pk, attr, kind, None if num is None else float(num), txt)
            for pk, attr, kind, num, txt in conn.execute(
                "SELECT entity_pk, attr, kind, num, txt FROM attr_values"
            )
        }
    want = {
        (pk, attr, kind, None if num is None else float(num), txt)
        for pk, doc in stored
        for pk, attr, kind, num, txt in entity_rows(pk, entity_from_storage(orjson.loads(doc)))
    }
    assert have == want
    assert any(kind != "e" for _, _, kind, _, _ in have)


async def answers(store: SqliteStore, tenant: str) -> dict[str, set[str]]:
    """What each of :data:`QUERIES` selects in the tenant, checked against the evaluator."""
    found: dict[str, set[str]] = {}
    ids = store._read(
        lambda conn: [
            r[0] for r in conn.execute("SELECT id FROM entities WHERE tenant = ?", (tenant,))
        ]
    )
    entities = [e for e in [await store.get_entity(tenant, i) for i in ids] if e is not None]
    for text in QUERIES:
        expr = parse_q(text, lambda name: VOCAB + name)
        sql, params = q_to_sql(expr, "e")
        rows = store._read(
            lambda conn, sql=sql, params=params: conn.execute(
                f"SELECT e.id FROM entities e WHERE e.tenant = ? AND {sql}",
                [tenant, *params],
            ).fetchall()
        )
        found[text] = {r[0] for r in rows}
        assert found[text] == {e.id for e in entities if evaluate(expr, e)}, text
    return found


def test_burgo_db_migrate_indexes_entities_written_before_the_index(tmp_path: Path) -> None:
    path = tmp_path / "burgo.db"
    warm, cold = room("urn:ngsi-ld:Room:warm", 23.0), room("urn:ngsi-ld:Room:cold", 12.0)
    write_at_version_1(
        path, [(DEFAULT_TENANT, warm), (DEFAULT_TENANT, cold), ("fundao", every_kind())]
    )

    result = CliRunner().invoke(app, ["db", "migrate", "--db", str(path)])

    assert result.exit_code == 0, result.output
    index_is_exact(path)

    async def check() -> None:
        store = SqliteStore(path)
        await store.open()
        try:
            found = await answers(store, DEFAULT_TENANT)
            assert found["temperature>21"] == {warm.id}
            await answers(store, "fundao")
        finally:
            await store.close()

    asyncio.run(check())


@pytest.mark.anyio
async def test_the_index_survives_a_restart_and_follows_later_writes(tmp_path: Path) -> None:
    path = tmp_path / "burgo.db"
    store = SqliteStore(path)
    await store.open()
    await store.create_entity(DEFAULT_TENANT, room("urn:ngsi-ld:Room:a", 25.0))
    await store.create_entity(DEFAULT_TENANT, room("urn:ngsi-ld:Room:b", 15.0))
    await store.close()

    store = SqliteStore(path)
    await store.open()
    try:
        assert (await answers(store, DEFAULT_TENANT))["temperature>21"] == {"urn:ngsi-ld:Room:a"}
        await store.delete_entity(DEFAULT_TENANT, "urn:ngsi-ld:Room:a")
        await store.create_entity(DEFAULT_TENANT, room("urn:ngsi-ld:Room:c", 30.0))
        assert (await answers(store, DEFAULT_TENANT))["temperature>21"] == {"urn:ngsi-ld:Room:c"}
    finally:
        await store.close()
    index_is_exact(path)


def reading(value: Any) -> Any:
    """A change setting the room's temperature (and a name, a string value) to ``value``."""

    def change(current: Entity) -> tuple[Entity, None]:
        at = "2024-05-01T10:00:00.000Z"
        new = {
            TEMPERATURE: (Attribute(AttrKind.PROPERTY, value, unit_code="CEL"),),
            NAME: (Attribute(AttrKind.PROPERTY, f"room at {value}"),),
        }
        return current.with_attrs({**current.attrs, **new}, at), None

    return change


@pytest.mark.anyio
async def test_new_values_keep_the_index_exact(tmp_path: Path) -> None:
    path = tmp_path / "burgo.db"
    store = SqliteStore(path)
    await store.open()
    try:
        await store.create_entity(DEFAULT_TENANT, room("urn:ngsi-ld:Room:a", 25.0))
        for value in (26.5, 27, 27.0, "high", 20):
            await store.modify_entities(DEFAULT_TENANT, [("urn:ngsi-ld:Room:a", reading(value))])
            index_is_exact(path)
        assert (await answers(store, DEFAULT_TENANT))["temperature==20..22"] == {
            "urn:ngsi-ld:Room:a"
        }
    finally:
        await store.close()


@pytest.mark.anyio
async def test_an_index_row_found_missing_or_twice_is_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "burgo.db"
    store = SqliteStore(path)
    await store.open()
    try:
        for n, value in enumerate((25.0, 26.0)):
            await store.create_entity(DEFAULT_TENANT, room(f"urn:ngsi-ld:Room:{n}", value))
        with closing(sqlite3.connect(path, isolation_level=None)) as conn:
            # Room 0 lost its value row; room 1 has it twice.
            conn.execute("DELETE FROM attr_values WHERE kind = 'v' AND num = 25.0")
            conn.execute(
                "INSERT INTO attr_values SELECT entity_pk, attr, kind, num, txt FROM attr_values "
                "WHERE kind = 'v' AND num = 26.0"
            )
        await store.modify_entities(
            DEFAULT_TENANT,
            [("urn:ngsi-ld:Room:0", reading(30.0)), ("urn:ngsi-ld:Room:1", reading(31.0))],
        )
    finally:
        await store.close()
    index_is_exact(path)
