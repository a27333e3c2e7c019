"""Burgo served on PostgreSQL (`--db postgresql://...`): the API on the real database, and
`burgo db migrate` on it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType

import psycopg
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from burgo.app import create_app
from burgo.cli import app as cli_app
from burgo.config import Settings, load_settings
from burgo.ngsild.model import Entity
from burgo.store.postgres.entities import entity_doc
from burgo.store.postgres.migrations import available_migrations, migrate
from tests.conftest import JSON, entity
from tests.services import PostgresServer

ENTITIES = "/ngsi-ld/v1/entities"
TEMPORAL = "/ngsi-ld/v1/temporal/entities"
ROOM_ID = "urn:ngsi-ld:Room:before-history"
ROOM_IRI = "https://uri.etsi.org/ngsi-ld/default-context/Room"


@pytest.fixture
def database(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> str:
    """A new, empty database of the private cluster, for one test."""
    name = f"burgo_api_{request.node.name.lower()}"[:60]
    with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return postgres_server.url(name)


@pytest.fixture
def pg_settings(database: str) -> Settings:
    """Settings naming the test database by URL, as `burgo serve --db postgresql://...` does."""
    return load_settings(flags={"db": database, "db_pool_size": 4}, environ={}, config_path=None)


@pytest.fixture
def pg_client(pg_settings: Settings) -> Iterator[TestClient]:
    """A running Burgo app on PostgreSQL."""
    with TestClient(create_app(pg_settings)) as client:
        yield client


def test_the_entity_api_works_on_postgresql(pg_client: TestClient, database: str) -> None:
    room = entity(temperature={"type": "Property", "value": 21.5})
    assert pg_client.post(ENTITIES, json=room, headers=JSON).status_code == 201
    assert pg_client.post(ENTITIES, json=room, headers=JSON).status_code == 409
    patch = {"temperature": {"type": "Property", "value": 23.0}}
    response = pg_client.patch(f"{ENTITIES}/{room['id']}/attrs", json=patch, headers=JSON)
    assert response.status_code == 204, response.text
    got = pg_client.get(f"{ENTITIES}/{room['id']}", params={"options": "keyValues"})
    assert got.json() == {"id": room["id"], "type": "Room", "temperature": 23.0}
    found = pg_client.get(ENTITIES, params={"type": "Room", "q": "temperature>22"})
    assert [e["id"] for e in found.json()] == [room["id"]]
    assert pg_client.get(ENTITIES, params={"type": "Room", "q": "temperature<22"}).json() == []
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT tenant, id FROM entities").fetchall() == [("", room["id"])]


def test_tenants_are_kept_apart_on_postgresql(pg_client: TestClient) -> None:
    fundao = {**JSON, "NGSILD-Tenant": "fundao"}
    assert pg_client.post(ENTITIES, json=entity(), headers=fundao).status_code == 201
    assert pg_client.get(f"{ENTITIES}/{entity()['id']}").status_code == 404
    missing = pg_client.get(ENTITIES, params={"type": "Room"}, headers={"NGSILD-Tenant": "nowhere"})
    assert missing.status_code == 404
    assert missing.json()["type"].endswith("NonexistentTenant")
    assert pg_client.get(f"{ENTITIES}/{entity()['id']}", headers=fundao).status_code == 200


def test_history_is_kept_on_postgresql_partitioned_by_month(
    pg_client: TestClient, database: str
) -> None:
    room = entity(
        temperature={"type": "Property", "value": 20, "observedAt": "2024-05-01T10:00:00Z"}
    )
    assert pg_client.post(ENTITIES, json=room, headers=JSON).status_code == 201
    patch = {
        "temperature": {"type": "Property", "value": 21.5, "observedAt": "2024-06-01T10:00:00Z"}
    }
    response = pg_client.patch(f"{ENTITIES}/{room['id']}/attrs", json=patch, headers=JSON)
    assert response.status_code == 204
    history = pg_client.get(f"{TEMPORAL}/{room['id']}", params={"options": "temporalValues"})
    assert history.status_code == 200, history.text
    assert history.json()["temperature"]["values"] == [
        [20, "2024-05-01T10:00:00.000Z"], [21.5, "2024-06-01T10:00:00.000Z"],
    ]  # fmt: skip
    with psycopg.connect(database) as conn:
        months = conn.execute(
            "SELECT c.relname, (SELECT count(*) FROM history) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'history'::regclass"
        ).fetchall()
    assert {"history_202405", "history_202406"} <= {name for name, _ in months}
    text = pg_client.get("/metrics").text
    assert "burgo_history_bytes " in text
    assert "burgo_history_instances " in text


def test_entities_stored_before_history_get_one(database: str, pg_settings: Settings) -> None:
    created = "2024-05-01T08:00:00.000Z"
    stored = Entity(ROOM_ID, (ROOM_IRI,), MappingProxyType({}), created_at=created,
                    modified_at=created)  # fmt: skip

    async def at_version_3() -> None:
        conn = await psycopg.AsyncConnection.connect(database)
        await migrate(conn, available_migrations()[:3])
        await conn.execute(
            "INSERT INTO entities VALUES ('', %s, %s, %s, %s, %s::json)",
            (ROOM_ID, [ROOM_IRI], created, created, entity_doc(stored)),
        )
        await conn.commit()
        await conn.close()

    asyncio.run(at_version_3())
    with TestClient(create_app(pg_settings)) as client:
        patch = {"temperature": {"type": "Property", "value": 19}}
        response = client.post(f"{ENTITIES}/{ROOM_ID}/attrs", json=patch, headers=JSON)
        assert response.status_code == 204, response.text
        history = client.get(f"{TEMPORAL}/{ROOM_ID}", params={"options": "sysAttrs"}).json()
    assert history["createdAt"] == "2024-05-01T08:00:00.000Z"
    assert [i["value"] for i in history["temperature"]] == [19]


def test_metrics_report_the_connection_pool(pg_client: TestClient) -> None:
    text = pg_client.get("/metrics").text
    assert "burgo_store_connections " in text
    assert f'burgo_process{{pid="{os.getpid()}"}} 1.0' in text


def test_db_migrate_creates_the_schema_by_url(database: str, tmp_path: Path) -> None:
    runner = CliRunner()
    latest = available_migrations()[-1].version
    result = runner.invoke(cli_app, ["db", "migrate", "--db", database])
    assert result.exit_code == 0, result.output
    assert f"schema version {latest}, upgraded" in result.stdout
    again = runner.invoke(cli_app, ["db", "migrate", "--db", database])
    assert f"schema version {latest}, already up to date" in again.stdout
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT count(*) FROM entities").fetchone() == (0,)
