"""`burgo db copy --from FILE --to postgresql://...`: a town's SQLite data moved to PostgreSQL,
served there the same, and checked table by table."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from burgo.app import create_app
from burgo.cli import app as cli_app
from burgo.config import load_settings
from burgo.ngsild.temporal import TemporalQuery
from burgo.store import copy
from burgo.store.sqlite import SqliteStore
from burgo.store.temporal import HistorySelection
from tests.conftest import JSON
from tests.services import PostgresServer

ENTITIES = "/ngsi-ld/v1/entities"
SUBS = "/ngsi-ld/v1/subscriptions"
DEVICES = "/api/v1/devices"
FUNDAO = {"NGSILD-Tenant": "fundao"}


@pytest.fixture
def database(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> str:
    """A new, empty database of the private cluster."""
    name = f"burgo_copy_{request.node.name.lower()}"[:60]
    with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return postgres_server.url(name)


def client_on(db: str) -> TestClient:
    """A Burgo app on ``db`` (a file or a URL)."""
    settings = load_settings(flags={"db": db, "db_pool_size": 2}, environ={}, config_path=None)
    return TestClient(create_app(settings))


def town(path: Path) -> None:
    """A small town on SQLite: entities in two tenants, a hosted @context, a subscription with
    a failed delivery, a device that reported."""
    with client_on(str(path)) as client:
        for n in range(30):
            body = {"id": f"urn:ngsi-ld:Room:{n}", "type": "Room",
                    "temperature": {"type": "Property", "value": 20 + n}}  # fmt: skip
            assert client.post(ENTITIES, json=body, headers=JSON).status_code == 201
        park = {
            "id": "urn:ngsi-ld:Park:1",
            "type": "Park",
            "name": {"type": "Property", "value": "x"},
        }
        assert client.post(ENTITIES, json=park, headers={**JSON, **FUNDAO}).status_code == 201
        hosted = {"@context": {"speed": "https://example.org/speed"}}
        assert client.post("/ngsi-ld/v1/jsonldContexts", json=hosted).status_code == 201
        subscription = {
            "type": "Subscription",
            "id": "urn:ngsi-ld:Subscription:rooms",
            "entities": [{"type": "Room"}],
            "notification": {"endpoint": {"uri": "http://127.0.0.1:9/nobody"}},
        }
        assert client.post(SUBS, json=subscription).status_code == 201
        created = client.post(DEVICES, json={"id": "c-1", "profile": "classroom"})
        key = created.json()["apiKey"]
        reading = {"co2": 640, "temperature": 21.0}
        sent = client.post(f"{DEVICES}/c-1/measurements", json=reading, headers={"X-Api-Key": key})
        assert sent.status_code == 202, sent.text


def views(client: TestClient) -> dict[str, Any]:
    """What a user sees of the town through the API."""
    rooms = client.get(ENTITIES, params={"type": "Room", "limit": 1000})
    counted = client.get(ENTITIES, params={"type": "Room", "count": "true", "limit": 0})
    parks = client.get(ENTITIES, params={"type": "Park"}, headers=FUNDAO)
    sub = client.get(f"{SUBS}/urn:ngsi-ld:Subscription:rooms").json()
    device = client.get(f"{DEVICES}/c-1").json()
    contexts = client.get("/ngsi-ld/v1/jsonldContexts", params={"kind": "Hosted"}).json()
    history = client.get(
        "/ngsi-ld/v1/temporal/entities",
        params={"type": "Room", "format": "temporalValues", "limit": 1000},
    )
    return {
        "history": sorted(history.json(), key=lambda e: e["id"]),
        "rooms": sorted(rooms.json(), key=lambda e: e["id"]),
        "rooms counted": counted.headers.get("NGSILD-Results-Count"),
        "parks": parks.json(),
        "subscription": {k: v for k, v in sub.items() if k != "notification"},
        "status": {k: sub["notification"].get(k) for k in ("timesSent", "lastNotification")},
        "device": device,
        "contexts": contexts,
    }


def test_db_copy_moves_a_town_to_postgresql(tmp_path: Path, database: str) -> None:
    source = tmp_path / "burgo.db"
    town(source)
    with client_on(str(source)) as client:
        before = views(client)
    runner = CliRunner()
    result = runner.invoke(cli_app, ["db", "copy", "--from", str(source), "--to", database])
    assert result.exit_code == 0, result.output
    assert "entities" in result.stdout and "DIFFERS" not in result.stdout
    assert "history (entities)" in result.stdout and "History not copied" not in result.stdout
    with client_on(database) as client:
        assert views(client) == before
        assert len(before["rooms"]) == 30 and before["device"]["status"]["state"] == "online"
        assert before["rooms counted"] == "30"
        assert len(before["history"]) == 30

    again = runner.invoke(cli_app, ["db", "copy", "--from", str(source), "--to", database])
    assert again.exit_code == 1
    assert "already holds data" in again.stderr and "--force" in again.stderr
    with client_on(database) as client:  # the region's data moves on after the copy
        rooms = client.get(ENTITIES, params={"type": "Room", "limit": 1000}).json()
        for room in rooms[:10]:
            gone = client.delete(f"{ENTITIES}/{room['id']}")
            assert gone.status_code == 204
        extra = {"id": "urn:ngsi-ld:Room:extra", "type": "Room"}
        assert client.post(ENTITIES, json=extra).status_code == 201
        assert views(client) != before
    forced = runner.invoke(
        cli_app, ["db", "copy", "--from", str(source), "--to", database, "--force"]
    )
    assert forced.exit_code == 0, forced.output
    with closing(sqlite3.connect(source)) as conn:
        in_source = conn.execute("SELECT count(*) FROM entities").fetchone()
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT count(*) FROM entities").fetchone() == in_source
    with client_on(database) as client:  # queries, counts and history: the source's again
        assert views(client) == before


def test_a_count_that_differs_fails_the_copy(tmp_path: Path, database: str) -> None:
    source = tmp_path / "burgo.db"
    town(source)
    assert CliRunner().invoke(cli_app, ["db", "migrate", "--db", database]).exit_code == 0
    with psycopg.connect(database) as conn:  # a target that silently drops hosted @contexts
        conn.execute(
            "CREATE FUNCTION drop_row() RETURNS trigger LANGUAGE plpgsql AS "
            "'BEGIN RETURN NULL; END'"
        )
        conn.execute(
            "CREATE TRIGGER drop_contexts BEFORE INSERT ON jsonld_contexts "
            "FOR EACH ROW EXECUTE FUNCTION drop_row()"
        )
    result = CliRunner().invoke(cli_app, ["db", "copy", "--from", str(source), "--to", database])
    assert result.exit_code == 1
    line = next(line for line in result.stdout.splitlines() if "jsonld_contexts" in line)
    assert "DIFFERS" in line and " 1 " in line and " 0 " in line
    assert "does not match" in result.stderr


def test_a_missing_or_outdated_source_is_refused(tmp_path: Path, database: str) -> None:
    missing = CliRunner().invoke(
        cli_app, ["db", "copy", "--from", str(tmp_path / "none.db"), "--to", database]
    )
    assert missing.exit_code == 1 and "No SQLite database" in missing.stderr
    not_pg = CliRunner().invoke(
        cli_app, ["db", "copy", "--from", str(tmp_path / "x.db"), "--to", str(tmp_path / "y.db")]
    )
    assert not_pg.exit_code == 2 and "postgresql://" in not_pg.output


@pytest.mark.anyio
async def test_the_history_step_copies_every_instance(tmp_path: Path) -> None:
    """The history step between two stores that keep history (two SQLite files here; on
    PostgreSQL once its schema keeps history)."""
    source = tmp_path / "burgo.db"
    town(source)
    with client_on(str(source)) as client:
        for value in (30.5, 31.5):
            at = f"2024-05-01T10:0{int(value) - 30}:00Z"
            patch = {"temperature": {"type": "Property", "value": value, "observedAt": at}}
            answer = client.patch(f"{ENTITIES}/urn:ngsi-ld:Room:0/attrs", json=patch, headers=JSON)
            assert answer.status_code == 204
    from_store, to_store = SqliteStore(source), SqliteStore(tmp_path / "copy.db")
    await from_store.open()
    await to_store.open()
    try:
        assert await copy.keeps_history(to_store)
        tenants = await from_store.list_tenants()
        count = await copy.copy_history(from_store, to_store, tenants, page=7)
        assert count.matches and count.source == 33  # 30 rooms, the park, the device, its room
        selection = HistorySelection(ids=("urn:ngsi-ld:Room:0",))
        pages = [
            await store.query_history("", selection, TemporalQuery(), max_instances=100)
            for store in (from_store, to_store)
        ]
    finally:
        await to_store.close()
        await from_store.close()

    def values(page: Any) -> list[Any]:
        (room,) = page.entities
        return [
            (i.attribute.value, i.attribute.observed_at)
            for name, instances in room.attrs.items()
            if name.endswith("temperature")
            for i in instances
        ]

    assert values(pages[1]) == values(pages[0])
    assert len(values(pages[0])) == 3
