"""Dashboard benchmark: how fast the map page and an entity page load with a demo-sized town.

Run from the repository root::

    .venv/bin/python bench/bench_dashboard.py                   # 400 things, 30 days of history
    .venv/bin/python bench/bench_dashboard.py --things 100 --days 7   # a quicker run

It starts ``burgo serve`` (defaults, synchronous FULL) on a new database and seeds, through the
public API: ``--things`` located entities spread over the five verticals (batch upsert), and
``--days`` of history for each (its main attribute every 15 minutes, ``POST /temporal/entities``),
with one classroom holding CO2, temperature and humidity every 5 minutes. Then it times:

1. on the server, over one keep-alive connection: ``GET /`` (the map page, HTML), the classroom's
   page, ``/devices`` and the chart data of each period; p50 and p95 of 30 requests after 5 untimed
   ones, and the server's CPU time per request;
2. in real Chromium (Playwright, ``/usr/bin/chromium``): from navigation to every marker drawn
   (``#map.ready``), and from navigation to every chart drawn on the entity page (day and month),
   5 loads each in new tabs after one untimed load.

Every answer is checked (status; the map's marker count; each chart drawn with data).
"""

from __future__ import annotations

import argparse
import http.client
import math
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlencode

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_entities import HOST, cpu_seconds, running_server

CENTRE = (-7.5003, 40.1372)
CLASSROOM = "urn:ngsi-ld:IndoorEnvironmentObserved:school-bench-5b"
CO2 = "https://uri.etsi.org/ngsi-ld/default-context/co2"
# (type, main attribute, unit, base value) per vertical; the id words pick the vertical.
KINDS = [
    ("AirQualityObserved", "NO2", "GQ", 25.0, "city"),
    ("NoiseLevelObserved", "LAeq", "2N", 55.0, "city"),
    ("ParkingSpot", "occupancy", "P1", 40.0, "city"),
    ("WasteContainer", "fillingLevel", "C62", 0.4, "city"),
    ("IndoorEnvironmentObserved", "temperature", "CEL", 19.0, "care-home"),
    ("AgriParcelRecord", "soilMoistureVwc", "C62", 0.3, "farm"),
    ("WeatherObserved", "temperature", "CEL", 14.0, "farm"),
    ("SmartMeteringObservation", "powerFactor", "C62", 0.9, "hub"),
    ("IndoorEnvironmentObserved", "co2", "59", 700.0, "school"),
]


def stamp(moment: datetime) -> str:
    """A DateTime as clients send it."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def call(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None,
         accept: str = "application/json") -> tuple[int, bytes, float]:  # fmt: skip
    """One request on a keep-alive connection: status, body and seconds taken."""
    headers = {"Accept": accept}
    if body is not None:
        headers["Content-Type"] = "application/json"
    began = time.perf_counter()
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    return response.status, data, time.perf_counter() - began


def thing(number: int, now: datetime) -> tuple[dict[str, object], str, float, str]:
    """The ``number``th thing: its entity, main attribute, base value and unit."""
    kind, attr, unit, base, word = KINDS[number % len(KINDS)]
    ring = 0.002 + 0.0004 * (number // len(KINDS))
    angle = number * 2.399963

    lon = CENTRE[0] + ring * math.cos(angle) * 1.3
    lat = CENTRE[1] + ring * math.sin(angle)
    body = {
        "id": f"urn:ngsi-ld:{kind}:{word}-{number}",
        "type": kind,
        "name": {"type": "Property", "value": f"{kind} {number}"},
        attr: {"type": "Property", "value": base, "unitCode": unit, "observedAt": stamp(now)},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}},
    }
    return body, attr, base, unit


def seed(port: int, count: int, days: int, now: datetime) -> int:
    """Create the things and their history; the number of history instances written."""
    conn = http.client.HTTPConnection(HOST, port, timeout=600)
    things = [thing(n, now) for n in range(count)]
    for first in range(0, count, 200):
        batch = orjson.dumps([t[0] for t in things[first : first + 200]])
        status, data, _ = call(conn, "POST", "/ngsi-ld/v1/entityOperations/upsert", batch)
        if status not in (201, 204):
            sys.exit(f"bench: upsert answered {status}: {data[:300]!r}")
    written = 0
    steps = days * 96
    for body, attr, base, unit in things:
        instances = [
            {"type": "Property", "unitCode": unit,
             "value": round(base * (1 + 0.2 * ((s % 96) / 96 - 0.5)), 3),
             "observedAt": stamp(now - timedelta(minutes=15 * (steps - s)))}
            for s in range(steps)
        ]  # fmt: skip
        history = orjson.dumps({"id": body["id"], "type": body["type"], attr: instances})
        status, data, _ = call(conn, "POST", "/ngsi-ld/v1/temporal/entities", history)
        if status not in (201, 204):
            sys.exit(f"bench: history answered {status}: {data[:300]!r}")
        written += steps
    classroom = {
        "id": CLASSROOM,
        "type": "IndoorEnvironmentObserved",
        "name": {"type": "Property", "value": "Escola, sala 5B"},
        "location": {"type": "GeoProperty",
                     "value": {"type": "Point", "coordinates": [CENTRE[0], CENTRE[1] + 0.001]}},
    }  # fmt: skip
    fine = days * 288
    attrs: dict[str, object] = {}
    for attr, unit, base in (("co2", "59", 800.0), ("temperature", "CEL", 21.0),
                             ("relativeHumidity", "C62", 0.5)):  # fmt: skip
        values = [
            {"type": "Property", "unitCode": unit,
             "value": round(base * (1 + 0.3 * ((s % 288) / 288)), 3),
             "observedAt": stamp(now - timedelta(minutes=5 * (fine - s)))}
            for s in range(fine)
        ]  # fmt: skip
        attrs[attr] = values
        classroom[attr] = {**values[-1]}
        written += fine
    status, data, _ = call(
        conn, "POST", "/ngsi-ld/v1/entityOperations/upsert", orjson.dumps([classroom])
    )
    if status not in (201, 204):
        sys.exit(f"bench: classroom answered {status}: {data[:300]!r}")
    history = orjson.dumps({"id": CLASSROOM, "type": "IndoorEnvironmentObserved", **attrs})
    status, data, _ = call(conn, "POST", "/ngsi-ld/v1/temporal/entities", history)
    if status not in (201, 204):
        sys.exit(f"bench: classroom history answered {status}: {data[:300]!r}")
    conn.close()
    return written


def server_figures(port: int, pid: int, things: int) -> list[tuple[str, float, float, float]]:
    """(page, p50 ms, p95 ms, server CPU ms per request) of each dashboard read."""
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    chart = "/dashboard/history.json?" + urlencode({"entity": CLASSROOM, "attr": CO2})
    pages = [
        ("GET / (map page)", "/", "text/html"),
        ("GET /entity/{id} (classroom)", f"/entity/{quote(CLASSROOM, safe=':')}", "text/html"),
        ("GET /devices", "/devices", "text/html"),
        ("chart data, day (raw, 288 points)", chart + "&period=day", "application/json"),
        ("chart data, week (hourly)", chart + "&period=week", "application/json"),
        ("chart data, month (6-hourly)", chart + "&period=month", "application/json"),
    ]
    results = []
    for name, path, accept in pages:
        for _ in range(5):
            status, data, _ = call(conn, "GET", path, accept=accept)
            if status != 200:
                sys.exit(f"bench: {path} answered {status}: {data[:300]!r}")
        if path == "/" and data.count(b'"lon":') != things + 1:
            sys.exit(f"bench: the map page holds {data.count(b'lon')} things, not {things + 1}")
        times = []
        cpu_before = cpu_seconds(pid)
        for _ in range(30):
            status, _, seconds = call(conn, "GET", path, accept=accept)
            if status != 200:
                sys.exit(f"bench: {path} answered {status}")
            times.append(seconds * 1000)
        cpu = (cpu_seconds(pid) - cpu_before) / 30 * 1000
        times.sort()
        results.append((name, statistics.median(times), times[int(len(times) * 0.95) - 1], cpu))
    conn.close()
    return results


def browser_figures(port: int, things: int) -> list[tuple[str, float, float]]:
    """(page, median ms, max ms) from navigation to fully drawn, in Chromium."""
    from playwright.sync_api import sync_playwright

    base = f"http://{HOST}:{port}"
    results = []
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path="/usr/bin/chromium", headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )  # fmt: skip
        entity = f"{base}/entity/{quote(CLASSROOM, safe=':')}"
        loads = [
            ("map page: navigation to every marker drawn", base + "/", "#map.ready"),
            ("entity page, day: navigation to 3 charts drawn", entity,
             "figure.chart[data-drawn='true'] >> nth=2"),
            ("entity page, month: navigation to 3 charts drawn", entity + "?period=month",
             "figure.chart[data-drawn='true'] >> nth=2"),
        ]  # fmt: skip
        for name, url, ready in loads:
            times = []
            for attempt in range(6):
                tab = context.new_page()
                began = time.perf_counter()
                tab.goto(url)
                tab.wait_for_selector(ready, state="attached", timeout=30_000)
                spent = (time.perf_counter() - began) * 1000
                if "#map" in ready and tab.locator(".burgo-marker").count() != things + 1:
                    sys.exit("bench: the map does not show every thing")
                if "chart" in ready:
                    points = tab.eval_on_selector_all(
                        "figure.chart", "els => els.map(e => Number(e.dataset.points))"
                    )
                    if not all(points):
                        sys.exit(f"bench: a chart drew no data: {points}")
                tab.close()
                if attempt:
                    times.append(spent)
            results.append((name, statistics.median(times), max(times)))
        context.close()
    return results


def main(argv: list[str] | None = None) -> int:
    """Seed, measure, print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--things", type=int, default=400)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args(argv)
    now = datetime.now(UTC).replace(microsecond=0)
    with (
        tempfile.TemporaryDirectory() as workdir,
        running_server("FULL", Path(workdir)) as (process, port, _),
    ):
        began = time.perf_counter()
        written = seed(port, args.things, args.days, now)
        print(f"seeded {args.things + 1} things, {written:,} history instances "
              f"in {time.perf_counter() - began:.1f} s", flush=True)  # fmt: skip
        served = server_figures(port, process.pid, args.things)
        drawn = browser_figures(port, args.things)
    load = os.getloadavg()
    print(f"\nload average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (nproc {os.cpu_count()})")
    print("\n| server | p50 ms | p95 ms | server CPU ms/req |\n|---|---:|---:|---:|")
    for name, p50, p95, cpu in served:
        print(f"| {name} | {p50:.1f} | {p95:.1f} | {cpu:.1f} |")
    print("\n| in Chromium | median ms | max ms |\n|---|---:|---:|")
    for name, median, worst in drawn:
        print(f"| {name} | {median:.0f} | {worst:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
