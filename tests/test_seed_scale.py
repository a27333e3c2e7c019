"""bench/seed_scale.py writes what Burgo writes: a town seeded by the tool and the same town
created through the API (batch create, then a temporal import per station) hold the same rows,
and Burgo answers the same from both."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from burgo.app import create_app
from burgo.config import load_settings
from tests.conftest import JSON
from tests.services import PostgresServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import bench_temporal
import seed_scale
from bench_queries import MAKERS

ENTITIES, STATIONS, DAYS = 31, 2, 2
# Every table the tool fills, each row in a stable order; PostGIS shapes as their hex EWKB.
TABLES = {
    "tenants": "SELECT * FROM tenants ORDER BY 1",
    "entities": "SELECT * FROM entities ORDER BY 1, 2",
    "entity_attr_values": "SELECT * FROM entity_attr_values ORDER BY 1, 2, 3, 4, 5, 6",
    "entity_geo": "SELECT tenant, entity_id, name, geometry::text, bounds::text, lon, lat, "
    "to_jsonb(g) ->> 'shape' FROM entity_geo g ORDER BY 1, 2, 3",
    "entity_type_ids": "SELECT * FROM entity_type_ids ORDER BY 1, 2, 3",
    # Counted in rows of each writing session's own; what a count reads is their sum.
    "entity_type_counts": "SELECT tenant, types, sum(n) FROM entity_type_counts GROUP BY 1, 2 "
    "HAVING sum(n) <> 0 ORDER BY 1, 2",
    "history_entities": "SELECT * FROM history_entities ORDER BY 1, 2",
    "history_series": "SELECT * FROM history_series ORDER BY 1, 2",
    "history_shapes": "SELECT * FROM history_shapes ORDER BY 1",
    "history": "SELECT * FROM history ORDER BY 1, 2, 3, 4",
    "history_rollups": "SELECT * FROM history_rollups ORDER BY 1, 2, 3, 4",
}


class Clock:
    """A clock the test sets."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self) -> datetime:
        return self.moment


def _database(server: PostgresServer, name: str) -> str:
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return server.url(name)


def _client(url: str, clock: Clock) -> TestClient:
    settings = load_settings(flags={"db": url, "db_pool_size": 2}, environ={}, config_path=None)
    return TestClient(create_app(settings, clock=clock))


def _rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        return {table: conn.execute(query).fetchall() for table, query in TABLES.items()}


@pytest.fixture(scope="module")
def towns(postgres_server: PostgresServer) -> Iterator[tuple[str, str]]:
    """(seeded by the tool, created through the API): the same town in two databases."""
    seeded = _database(postgres_server, "burgo_seed_tool")
    seed_scale.seed(seeded, ENTITIES, STATIONS, DAYS, chunk=10)
    through_api = _database(postgres_server, "burgo_seed_api")
    clock = Clock(datetime.fromisoformat(seed_scale.CREATED))
    town = seed_scale.Town()
    bodies = [MAKERS[n % 3](n, town.rng) for n in range(ENTITIES)]
    with _client(through_api, clock) as client:
        created = client.post("/ngsi-ld/v1/entityOperations/create", json=bodies, headers=JSON)
        assert created.status_code == 201, created.text
        clock.moment = seed_scale.IMPORTED
        stations = [b["id"] for b in bodies if b["type"] == "AirQualityObserved"][:STATIONS]
        for station in stations:
            body = bench_temporal.week_body(0, DAYS * 1440, str(station))
            imported = client.post(bench_temporal.TEMPORAL, content=body, headers=JSON)
            assert imported.status_code == 204, imported.text
    yield seeded, through_api


def test_the_tool_writes_the_rows_the_api_writes(towns: tuple[str, str]) -> None:
    seeded, through_api = _rows(towns[0]), _rows(towns[1])
    assert len(seeded["entities"]) == ENTITIES
    assert len(seeded["history"]) == 6 * 11 + 7 * 10 + 6 * 10 + STATIONS * DAYS * 1440
    assert any(row[-1] for row in seeded["entity_geo"]), "PostGIS shapes are compared too"
    assert len(seeded["entity_type_counts"]) == 3
    for table in TABLES:
        assert seeded[table] == through_api[table], table


def test_burgo_answers_the_same_from_both(towns: tuple[str, str]) -> None:
    clock = Clock(seed_scale.IMPORTED)
    station = "urn:ngsi-ld:AirQualityObserved:fundao-000003"
    requests = [
        ("/ngsi-ld/v1/entities/urn:ngsi-ld:ParkingSpot:fundao-000001", {}),
        ("/ngsi-ld/v1/entities", {"type": "WasteContainer", "q": 'fillingLevel>0.3;status=="ok"'}),
        ("/ngsi-ld/v1/entities", {"georel": "near;maxDistance==3000", "geometry": "Point",
                                  "coordinates": "[-7.5012,40.1397]", "count": "true"}),
        (f"{bench_temporal.TEMPORAL}/{station}", {"attrs": "no2", "timerel": "between",
                                                  "timeAt": "2023-01-01T12:00:00Z",
                                                  "endTimeAt": "2023-01-01T13:00:00Z"}),
        (f"{bench_temporal.TEMPORAL}/{station}", {"attrs": "no2", "format": "aggregatedValues",
                                                  "aggrMethods": "avg,max,sum",
                                                  "aggrPeriodDuration": "PT1H",
                                                  "timerel": "between",
                                                  "timeAt": "2023-01-01T00:00:00Z",
                                                  "endTimeAt": "2023-01-03T00:00:00Z"}),
    ]  # fmt: skip
    answers = []
    for url in towns:
        with _client(url, clock) as client:
            got = [client.get(path, params=params) for path, params in requests]
        assert all(r.status_code == 200 for r in got), [r.text for r in got]
        answers.append([(r.json(), r.headers.get("NGSILD-Results-Count")) for r in got])
    assert answers[0] == answers[1]
    hourly = answers[0][4][0]["no2"]["avg"]
    assert len(hourly) == DAYS * 24
    assert len(answers[0][3][0]["no2"]) == 60  # the end of between is not included
