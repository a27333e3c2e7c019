"""The dashboard with the demo town, in real Chromium: what someone who runs `make demo` sees.

The simulator's small town is fed to a real `burgo serve` as `burgo demo` feeds it (registration,
three days of history, a live round over HTTP and the LoRaWAN webhooks); the map, an entity's
charts, the device list, the feed, the languages and the downloads are checked against what the
simulated sensors read. Screenshots go to test-artifacts/dashboard/demo-*.png."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from datetime import datetime

import pytest
from playwright.sync_api import Page, expect

from burgo.sim.wire import iso
from tests.web.conftest import screenshot
from tests.web.demo import DemoTown, seed_demo

pytestmark = pytest.mark.slow
MARKER = "#map .burgo-marker[data-id='{}']"
LAYERS = {"city": "City", "care": "Care", "agro": "Agriculture", "enterprise": "Enterprise",
          "education": "Education"}  # fmt: skip
LAYERS_PT = {"city": "Cidade", "care": "Cuidados", "agro": "Agricultura",
             "enterprise": "Empresas", "education": "Educação"}  # fmt: skip


@pytest.fixture(scope="module")
def demo(server: str) -> DemoTown:
    """The small demo town, fed to the server through its public APIs."""
    return seed_demo(server)


def open_map(page: Page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#map.ready")


def marker_ids(page: Page) -> list[str]:
    ids: list[str] = page.eval_on_selector_all(
        "#map .burgo-marker", "els => els.map(e => e.dataset.id)"
    )
    return ids


def marker_classes(page: Page, entity_id: str) -> set[str]:
    return set((page.get_attribute(MARKER.format(entity_id), "class") or "").split())


def co2_state(ppm: float) -> str:
    """The state a classroom's CO2 puts it in (Portuguese and WHO guidance: 1000, 1500 ppm)."""
    return "alert" if ppm >= 1500 else "warn" if ppm >= 1000 else "ok"


def test_every_sensor_of_the_town_is_on_its_verticals_layer(page: Page, server: str,
                                                            demo: DemoTown) -> None:  # fmt: skip
    open_map(page, server + "/")
    expected = demo.verticals
    assert sorted(marker_ids(page)) == sorted(expected)
    for entity_id, vertical in expected.items():
        assert f"vertical-{vertical}" in marker_classes(page, entity_id), entity_id
    control = page.locator(".leaflet-control-layers-overlays").inner_text()
    counts = Counter(expected.values())
    assert set(counts) == set(LAYERS)
    for vertical, label in LAYERS.items():
        assert f"{label} ({counts[vertical]})" in control
    # Nothing is left without a vertical, and each summary tile counts its layer.
    assert "Other" not in control
    for vertical, count in counts.items():
        tile = page.locator(f".summary .tile.vertical-{vertical} strong")
        expect(tile).to_have_text(str(count))
    assert page.errors == []  # type: ignore[attr-defined]
    screenshot(page, "demo-map")


def test_the_planted_anomalies_stand_out_and_the_rest_is_calm(page: Page, server: str,
                                                              demo: DemoTown) -> None:  # fmt: skip
    open_map(page, server + "/")
    full, dry, dark = demo.planted("full"), demo.planted("dry"), demo.planted("lamp-fault")
    for device in (full, dry, dark):
        assert "state-alert" in marker_classes(page, demo.entity(device.id)), device.id
    quiet = demo.planted("no-motion")
    assert marker_classes(page, demo.entity(quiet.id)) & {"state-warn", "state-alert"}
    stuffy = demo.planted("stuffy")
    ppm = float(demo.reading(stuffy.id)["co2"])
    assert f"state-{co2_state(ppm)}" in marker_classes(page, demo.entity(stuffy.id))
    # Their neighbours of the same kind are not alarmed.
    for device in demo.feeder.town.devices:
        if device.anomaly is None and device.kind in (
            "waste-fill", "soil-moisture", "streetlight", "care-motion", "classroom"
        ):  # fmt: skip
            assert "state-alert" not in marker_classes(page, demo.entity(device.id)), device.id
        if device.anomaly is None and device.kind == "care-motion":
            assert "state-ok" in marker_classes(page, demo.entity(device.id)), device.id
    # Problems are drawn above the calm markers, however crowded the town centre.
    layers = page.eval_on_selector_all(
        "#map .burgo-marker",
        "els => els.map(e => [e.className, Number(e.style.zIndex)])",
    )
    calm = max(z for cls, z in layers if "state-ok" in cls or "state-busy" in cls)
    assert all(z > calm for cls, z in layers if "state-alert" in cls or "state-warn" in cls)
    # The summary counts the alerts of each vertical (a noisy rush hour may add one in the city).
    for vertical, least in (("city", 2), ("care", 1), ("agro", 1)):
        alerts = page.locator(f"#map .burgo-marker.vertical-{vertical}.state-alert").count()
        assert alerts >= least
        badge = page.locator(f".summary .tile.vertical-{vertical} .badge.state-alert")
        expect(badge).to_have_text(f"{alerts} alert" + ("s" if alerts > 1 else ""))
    # The popup of the full container leads to its page, where the level is shown.
    page.locator(MARKER.format(demo.entity(full.id))).click()
    page.get_by_role("link", name=f"Open {full.name}").click()
    page.wait_for_url(f"**/entity/{demo.entity(full.id)}")
    fill = float(demo.reading(full.id)["fill"])
    expect(page.locator("h1 .dot")).to_have_class("dot state-alert")
    row = page.locator("table.values tr", has_text="fillingLevel")
    expect(row).to_contain_text(f"{fill:g} %")


def test_an_entity_page_charts_its_history_for_every_period(page: Page, server: str,
                                                            demo: DemoTown) -> None:  # fmt: skip
    room = demo.planted("stuffy")
    entity_id = demo.entity(room.id)
    open_map(page, server + "/")
    page.locator(MARKER.format(entity_id)).click()
    page.get_by_role("link", name=f"Open {room.name}").click()
    page.wait_for_url(f"**/entity/{entity_id}")
    figure = page.locator("figure.chart[data-attr$='/co2']")
    expect(figure).to_have_attribute("data-drawn", "true")
    # A reading every 15 minutes for the last day, and the live one.
    points = int(figure.get_attribute("data-points") or "0")
    assert 96 <= points <= 98
    box = figure.locator("canvas").bounding_box()
    assert box is not None and box["width"] > 200 and box["height"] > 100
    latest = demo.reading(room.id)["co2"]
    expect(page.locator("table.values tr", has_text="co2")).to_contain_text(f"{latest} ppm")
    screenshot(page, "demo-entity-day", full_page=True)
    page.get_by_role("button", name="Last hour").click()
    expect(figure).to_have_attribute("data-drawn", "true")
    assert 4 <= int(figure.get_attribute("data-points") or "0") <= 6
    for period in ("Week", "Month"):
        page.get_by_role("button", name=period).click()
        expect(figure).to_have_attribute("data-drawn", "true")
        legend = figure.locator(".u-legend").inner_text()
        assert "average" in legend and "max" in legend
        # Aggregated per hour or per day, over the three days imported.
        assert int(figure.get_attribute("data-points") or "0") >= 3
    assert page.errors == []  # type: ignore[attr-defined]
    screenshot(page, "demo-entity-month", full_page=True)


def test_the_history_download_holds_what_the_sensor_read(page: Page, server: str,
                                                         demo: DemoTown) -> None:  # fmt: skip
    room = demo.planted("stuffy")
    page.goto(f"{server}/entity/{demo.entity(room.id)}")
    figure = page.locator("figure.chart[data-attr$='/co2']")
    expect(figure).to_have_attribute("data-drawn", "true")
    with page.expect_download() as download:
        figure.locator("a[data-download='csv']").click()
    rows = list(csv.DictReader(io.StringIO(download.value.path().read_text("utf-8"))))
    assert len(rows) >= 96
    device = demo.device(room.id)
    for row in rows[:: len(rows) // 10]:  # what the simulated sensor read at that moment
        at = datetime.fromisoformat(row["time"].replace("Z", "+00:00")).timestamp()
        assert float(row["value"]) == demo.feeder.sensors.read(device, at)["co2"], row


def test_the_device_list_shows_each_devices_health(page: Page, server: str,
                                                   demo: DemoTown) -> None:  # fmt: skip
    page.goto(server + "/devices")
    devices = demo.feeder.town.devices
    expect(page.locator("table.device-list tbody tr.device")).to_have_count(len(devices))
    assert page.locator("tr.device .badge.state-online").count() == len(devices)
    room = demo.planted("stuffy")
    battery = demo.reading(room.id)["battery"]
    expect(page.locator("tr.device", has_text=room.id)).to_contain_text(f"{battery} %")
    for device in devices:
        row = page.locator("tr.device", has_text=f"{device.id} ·")
        if device.network != "http":  # LoRaWAN: the gateway's signal
            expect(row).to_contain_text("dBm")
        if device.kind == "streetlight":  # on the mains: no battery
            expect(row.locator("td").nth(2)).to_have_text("\u2013")  # a dash
    screenshot(page, "demo-devices", full_page=True)
    with page.expect_download() as download:
        page.locator(".downloads a", has_text="CSV").click()
    listed = {r["id"]: r for r in csv.DictReader(io.StringIO(download.value.path().read_text()))}
    assert set(listed) == {d.id for d in devices}
    assert {r["state"] for r in listed.values()} == {"online"}
    assert float(listed[room.id]["battery"]) == battery
    assert all(float(listed[d.id]["rssi"]) < 0 for d in devices if d.network != "http")


def test_the_feed_shows_the_latest_readings(page: Page, server: str, demo: DemoTown) -> None:
    open_map(page, server + "/")
    items = page.locator("aside.feed ol.changes li")
    expect(items).to_have_count(15)
    entities = set(demo.verticals)
    live = iso(demo.now)[:16]  # to the minute
    for item in items.all():
        href = item.locator("a").get_attribute("href") or ""
        assert href.removeprefix("/entity/") in entities, href
        assert (item.locator("time").get_attribute("datetime") or "")[:16] == live
    # Refreshing the feed (as the page does every 30 s) gives the same list.
    first = page.locator("aside.feed ol.changes").inner_text()
    again = page.request.get(server + "/dashboard/changes")
    assert again.ok and first.split("\n")[1] in again.text()


def test_the_language_switch_speaks_portuguese(page: Page, server: str, demo: DemoTown) -> None:
    open_map(page, server + "/")
    page.locator("header .languages a[hreflang='pt']").click()
    page.wait_for_selector("#map.ready")
    assert page.get_attribute("html", "lang") == "pt"
    control = page.locator(".leaflet-control-layers-overlays").inner_text()
    counts = Counter(demo.verticals.values())
    for vertical, label in LAYERS_PT.items():
        assert f"{label} ({counts[vertical]})" in control
    expect(page.locator("aside.feed h2")).to_have_text("Alterações recentes")
    screenshot(page, "demo-map-pt")
    page.goto(f"{server}/entity/{demo.entity(demo.planted('stuffy').id)}")
    expect(page.get_by_role("button", name="Semana")).to_be_visible()


def test_the_list_downloads_hold_the_town(page: Page, server: str, demo: DemoTown) -> None:
    open_map(page, server + "/")
    with page.expect_download() as csv_download:
        page.locator(".downloads a", has_text="CSV").click()
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(csv_download.value.path().read_text()))}
    assert {k: r["vertical"] for k, r in rows.items()} == demo.verticals
    full = demo.planted("full")
    row = rows[demo.entity(full.id)]
    assert row["state"] == "alert"
    assert float(row["fillingLevel"]) == pytest.approx(float(demo.reading(full.id)["fill"]) / 100)
    with page.expect_download() as geo_download:
        page.locator(".downloads a", has_text="GeoJSON").click()
    collection = json.loads(geo_download.value.path().read_text("utf-8"))
    where = {f["id"]: f["geometry"]["coordinates"] for f in collection["features"]}
    for device in demo.feeder.town.devices:
        assert where[demo.entity(device.id)] == [device.longitude, device.latitude]


def test_on_a_phone_the_map_and_the_menu_work_by_touch(phone: Page, server: str,
                                                       demo: DemoTown) -> None:  # fmt: skip
    open_map(phone, server + "/")
    assert phone.get_attribute("html", "lang") == "pt"  # the phone asks for Portuguese
    assert sorted(marker_ids(phone)) == sorted(demo.verticals)
    assert phone.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    # Most of the map is on the first screen, under the menu and the verticals' tiles.
    box = phone.locator("#map").bounding_box()
    assert box is not None and box["width"] >= 350
    assert 844 - box["y"] >= 0.6 * box["height"], box
    screenshot(phone, "demo-phone-map")
    # The layer control opens with a tap and hides a layer.
    counts = Counter(demo.verticals.values())
    phone.locator(".leaflet-control-layers-toggle").tap()
    city = phone.get_by_label(f"Cidade ({counts['city']})")
    expect(city).to_be_visible()
    city.tap()
    expect(phone.locator("#map .burgo-marker")).to_have_count(len(demo.verticals) - counts["city"])
    screenshot(phone, "demo-phone-layers")
    # A marker's popup leads to its page, with its charts within the screen.
    room = demo.planted("stuffy")
    phone.locator(MARKER.format(demo.entity(room.id))).tap()
    phone.get_by_role("link", name=f"Abrir {room.name}").tap()
    phone.wait_for_url(f"**/entity/{demo.entity(room.id)}")
    figure = phone.locator("figure.chart[data-attr$='/co2']")
    expect(figure).to_have_attribute("data-drawn", "true")
    box = figure.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert phone.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    screenshot(phone, "demo-phone-entity", full_page=True)
    # The menu's links are within reach and work by touch.
    devices = phone.get_by_role("link", name="Dispositivos")
    box = devices.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 390 and box["height"] >= 20
    devices.tap()
    expect(phone.locator("h1")).to_have_text("Dispositivos")
    expect(phone.locator("table.device-list tbody tr.device")).to_have_count(
        len(demo.feeder.town.devices)
    )
    assert phone.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    assert phone.errors == []  # type: ignore[attr-defined]
    screenshot(phone, "demo-phone-devices", full_page=True)
