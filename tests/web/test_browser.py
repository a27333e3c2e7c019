"""The dashboard in real Chromium: the map, an entity's charts, the device list, the language
switch, the tenant switcher and the downloads, against a real `burgo serve` with a small town."""

from __future__ import annotations

import csv
import io
import json
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect

from tests.web.conftest import screenshot
from tests.web.town import SCHOOL_TENANT, Town

pytestmark = pytest.mark.slow
CO2 = "https://smartdatamodels.org/dataModel.Environment/co2"


def open_map(page: Page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#map.ready")


def marker_ids(page: Page) -> list[str]:
    ids: list[str] = page.eval_on_selector_all(
        "#map .burgo-marker", "els => els.map(e => e.dataset.id)"
    )
    return ids


def test_the_map_shows_one_marker_per_located_thing(page: Page, server: str, town: Town) -> None:
    seen_hosts: set[str] = set()
    page.on("request", lambda request: seen_hosts.add(urlsplit(request.url).hostname or ""))
    open_map(page, server + "/")
    assert sorted(marker_ids(page)) == sorted(town.located)
    # Coloured by state: the full container and the stuffy classroom alert, the parking is busy.
    marker = "#map .burgo-marker[data-id='{}']"
    classes = page.get_attribute(marker.format("urn:ngsi-ld:WasteContainer:eco-17"), "class") or ""
    assert "state-alert" in classes.split() and "vertical-city" in classes.split()
    classes = page.get_attribute(marker.format(town.classroom), "class") or ""
    assert "state-alert" in classes and "vertical-education" in classes
    classes = page.get_attribute(marker.format("urn:ngsi-ld:ParkingSpot:parque-7"), "class") or ""
    assert "state-busy" in classes
    # One layer per vertical, with its count, in the layer control.
    control = page.locator(".leaflet-control-layers-overlays").inner_text()
    for label, count in (("City", 5), ("Care", 1), ("Agriculture", 2), ("Enterprise", 1),
                         ("Education", 1)):  # fmt: skip
        assert f"{label} ({count})" in control
    # Without a tile server set, nothing is asked of the internet and nothing fails.
    assert seen_hosts == {"127.0.0.1"}
    assert page.errors == []  # type: ignore[attr-defined]
    screenshot(page, "map")


def test_a_layer_can_be_hidden(page: Page, server: str, town: Town) -> None:
    open_map(page, server + "/")
    page.locator(".leaflet-control-layers").hover()
    page.get_by_label("City (5)").uncheck()
    remaining = sorted(i for i, vertical in town.located.items() if vertical != "city")
    assert sorted(marker_ids(page)) == remaining


def test_a_marker_leads_to_the_entity_page_with_a_chart(
    page: Page, server: str, town: Town
) -> None:
    open_map(page, server + "/")
    page.locator(f"#map .burgo-marker[data-id='{town.classroom}']").click()
    page.get_by_role("link", name="Open Escola Secundária, sala 5B").click()
    page.wait_for_url(f"**/entity/{town.classroom}")
    figure = page.locator(f"figure.chart[data-attr='{CO2}']")
    expect(figure).to_have_attribute("data-drawn", "true")
    # The day's chart holds the readings of the last day, the latest one included.
    points = int(figure.get_attribute("data-points") or "0")
    in_last_day = len(town.co2) - 1  # the first reading is exactly one day old when seeded
    assert in_last_day <= points <= len(town.co2)
    canvas = figure.locator("canvas")
    expect(canvas).to_have_count(1)
    box = canvas.bounding_box()
    assert box is not None and box["width"] > 200 and box["height"] > 100
    assert "1720 ppm" in page.locator("table.values").inner_text()
    screenshot(page, "entity-day", full_page=True)
    # A week is aggregated per hour: average, min and max.
    page.get_by_role("button", name="Week").click()
    expect(figure).to_have_attribute("data-drawn", "true")
    legend = figure.locator(".u-legend").inner_text()
    assert "average" in legend and "max" in legend
    assert page.errors == []  # type: ignore[attr-defined]
    screenshot(page, "entity-week", full_page=True)


def test_the_device_list_shows_health(page: Page, server: str, town: Town) -> None:
    page.goto(server + "/devices")
    rows = page.locator("table.device-list tbody tr.device")
    expect(rows).to_have_count(len(town.devices))
    text = page.locator("table.device-list").inner_text()
    for device_id in town.devices:
        assert device_id in text
    assert page.locator("tr.device .badge.state-online").count() == len(town.devices)
    # Battery from the classroom's readings; radio signal from the LoRaWAN uplink's gateway.
    expect(page.locator("tr.device", has_text="sala-5b")).to_contain_text("87 %")
    expect(page.locator("tr.device", has_text="eco-17")).to_contain_text("-35 dBm / 5 dB")
    screenshot(page, "devices", full_page=True)


def test_the_language_switch_speaks_portuguese_and_remembers_it(
    page: Page, server: str, town: Town
) -> None:
    open_map(page, server + "/")
    expect(page.locator("header nav").first).to_contain_text("Devices")
    page.locator("header .languages a[hreflang='pt']").click()
    page.wait_for_selector("#map.ready")
    assert page.get_attribute("html", "lang") == "pt"
    expect(page.locator("header nav").first).to_contain_text("Dispositivos")
    expect(page.locator("aside.feed h2")).to_have_text("Alterações recentes")
    assert "Agricultura (2)" in page.locator(".leaflet-control-layers-overlays").inner_text()
    screenshot(page, "map-pt")
    page.get_by_role("link", name="Dispositivos").click()  # remembered across pages
    expect(page.locator("h1")).to_have_text("Dispositivos")
    expect(page.locator("thead")).to_contain_text("Visto pela última vez")
    page.locator("header .languages a[hreflang='en']").click()
    expect(page.locator("h1")).to_have_text("Devices")


def test_the_tenant_switcher_shows_another_tenants_town(
    page: Page, server: str, town: Town
) -> None:
    open_map(page, server + "/")
    page.select_option("select#tenant", SCHOOL_TENANT)
    page.wait_for_url(f"**/?tenant={SCHOOL_TENANT}")
    page.wait_for_selector("#map.ready")
    assert marker_ids(page) == town.school_tenant_things
    # Links keep the tenant.
    page.get_by_role("link", name="Devices").click()
    expect(page.locator("table.device-list tbody tr.device")).to_have_count(1)


def test_the_list_downloads_hold_every_thing(page: Page, server: str, town: Town) -> None:
    open_map(page, server + "/")
    with page.expect_download() as csv_download:
        page.locator(".downloads a", has_text="CSV").click()
    rows = list(csv.DictReader(io.StringIO(csv_download.value.path().read_text("utf-8"))))
    assert sorted(r["id"] for r in rows) == sorted([*town.located, *town.unlocated])
    classroom = next(r for r in rows if r["id"] == town.classroom)
    assert (classroom["vertical"], classroom["state"], classroom["co2"]) == (
        "education", "alert", "1720"
    )  # fmt: skip
    with page.expect_download() as geo_download:
        page.locator(".downloads a", has_text="GeoJSON").click()
    collection = json.loads(geo_download.value.path().read_text("utf-8"))
    located = {f["id"]: f for f in collection["features"] if f["geometry"] is not None}
    assert sorted(located) == sorted(town.located)
    assert located[town.classroom]["geometry"]["coordinates"] == [-7.4983, 40.1412]


def test_the_history_download_holds_the_readings(page: Page, server: str, town: Town) -> None:
    page.goto(f"{server}/entity/{town.classroom}")
    figure = page.locator(f"figure.chart[data-attr='{CO2}']")
    expect(figure).to_have_attribute("data-drawn", "true")
    with page.expect_download() as download:
        figure.locator("a[data-download='csv']").click()
    rows = list(csv.DictReader(io.StringIO(download.value.path().read_text("utf-8"))))
    got = {r["time"][:19]: float(r["value"]) for r in rows}
    expected = {at[:19]: value for at, value in town.co2}
    assert got.items() <= expected.items()
    assert len(got) >= len(expected) - 1 and got[max(expected)] == 1720.0


def test_the_dashboard_fits_a_phone(page: Page, server: str, town: Town) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    open_map(page, server + "/")
    assert len(marker_ids(page)) == len(town.located)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    screenshot(page, "map-phone", full_page=True)
    page.goto(f"{server}/entity/{town.classroom}")
    expect(page.locator(f"figure.chart[data-attr='{CO2}']")).to_have_attribute("data-drawn", "true")
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    screenshot(page, "entity-phone", full_page=True)
