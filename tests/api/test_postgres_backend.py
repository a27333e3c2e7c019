"""Burgo served on PostgreSQL (`--db postgresql://...`): the API on the real database, and
`burgo db migrate` on it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from burgo.app import create_app
from burgo.cli import app as cli_app
from burgo.config import Settings, load_settings
from burgo.store.postgres.migrations import available_migrations
from tests.conftest import JSON, entity
from tests.services import PostgresServer

ENTITIES = "/ngsi-ld/v1/entities"


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


def test_the_temporal_api_says_it_is_not_there_yet(pg_client: TestClient) -> None:
    pg_client.post(ENTITIES, json=entity(), headers=JSON)
    response = pg_client.get(f"/ngsi-ld/v1/temporal/entities/{entity()['id']}")
    assert response.status_code == 422
    assert response.json()["type"].endswith("OperationNotSupported")
    assert "PostgreSQL" in response.json()["detail"]


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
