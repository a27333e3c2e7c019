"""The dashboard's pages and downloads in process (real app, real SQLite): what they read, and
how they answer bad requests."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from burgo.app import create_app
from burgo.config import load_settings
from tests.web.town import SCHOOL_TENANT, TTS_SECRET, Town, seed_town

HTML = {"Accept": "text/html"}
CO2 = "https://smartdatamodels.org/dataModel.Environment/co2"


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[tuple[TestClient, Town]]:
    settings = load_settings(
        flags={"db": str(tmp_path / "burgo.db"), "sqlite_synchronous": "NORMAL",
               "lorawan_tts_secret": TTS_SECRET},
        environ={},
        config_path=None,
    )  # fmt: skip
    with TestClient(create_app(settings)) as client:
        yield client, seed_town(client)


def test_a_browser_gets_the_map_and_an_api_client_the_index(
    seeded: tuple[TestClient, Town],
) -> None:
    client, town = seeded
    page = client.get("/", headers=HTML)
    assert page.headers["content-type"].startswith("text/html")
    for entity_id in town.located:
        assert entity_id in page.text
    assert client.get("/").json()["dashboard"] == "/"


def test_the_feed_lists_the_latest_reports_first(seeded: tuple[TestClient, Town]) -> None:
    client, _ = seeded
    feed = client.get("/dashboard/changes").text
    # Devices report 5 minutes ago, the street light 10: every device's thing comes first.
    assert feed.index("Ecoponto 17") < feed.index("Candeeiro Rua Direita 3")
    assert "status defectiveLamp" in feed


def test_week_and_month_histories_are_aggregated(seeded: tuple[TestClient, Town]) -> None:
    client, town = seeded
    params = {"entity": town.classroom, "attr": CO2}
    day = client.get("/dashboard/history.json", params={**params, "period": "day"}).json()
    week = client.get("/dashboard/history.json", params={**params, "period": "week"}).json()
    assert not day["aggregated"] and 1720 in day["v"]
    assert week["aggregated"] and max(week["max"]) == 1720 and min(week["min"]) == 450
    rows = list(
        csv.DictReader(
            io.StringIO(
                client.get("/dashboard/history.csv", params={**params, "period": "month"}).text
            )
        )
    )
    assert set(rows[0]) == {"time", "avg", "min", "max"}
    assert sum(1 for _ in rows) <= 30 * 4  # six-hour periods


def test_another_tenant_sees_only_its_own(seeded: tuple[TestClient, Town]) -> None:
    client, town = seeded
    rows = list(
        csv.DictReader(
            io.StringIO(client.get(f"/dashboard/entities.csv?tenant={SCHOOL_TENANT}").text)
        )
    )
    assert [r["id"] for r in rows] == town.school_tenant_things
    devices = client.get(f"/dashboard/devices.geojson?tenant={SCHOOL_TENANT}").json()
    assert [f["id"] for f in devices["features"]] == ["kit-1"]
    assert devices["features"][0]["geometry"]["coordinates"] == [-7.49, 40.14]


@pytest.mark.parametrize(
    ("url", "status", "problem"),
    [
        ("/?tenant=nowhere", 404, "NonexistentTenant"),
        ("/devices?tenant=bad%20name", 400, "BadRequestData"),
        ("/entity/urn:ngsi-ld:Thing:missing", 404, "ResourceNotFound"),
        ("/entity/urn:ngsi-ld:WasteContainer:eco-17?period=year", 400, "BadRequestData"),
        ("/dashboard/history.json?entity=urn:ngsi-ld:WasteContainer:eco-17", 400, "BadRequestData"),
        (f"/dashboard/history.csv?entity=urn:ngsi-ld:X:1&attr={CO2}", 404, "ResourceNotFound"),
        ("/dashboard/entities.geojson?tenant=nowhere", 404, "NonexistentTenant"),
    ],
)
def test_bad_requests_get_a_clear_problem(
    seeded: tuple[TestClient, Town], url: str, status: int, problem: str
) -> None:
    client, _ = seeded
    answer = client.get(url, headers=HTML)
    assert answer.status_code == status
    assert answer.json()["type"].endswith(problem)


def test_the_language_comes_from_the_browser_unless_chosen(
    seeded: tuple[TestClient, Town],
) -> None:
    client, _ = seeded
    portuguese = client.get("/devices", headers={**HTML, "Accept-Language": "pt-PT,en;q=0.5"})
    assert "<h1>Dispositivos</h1>" in portuguese.text
    chosen = client.get("/devices?lang=en", headers={**HTML, "Accept-Language": "pt-PT"})
    assert "<h1>Devices</h1>" in chosen.text
    assert chosen.cookies.get("burgo_lang") == "en"
