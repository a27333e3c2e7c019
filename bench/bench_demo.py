"""The demo's figure: from a fresh clone (no .venv) to `make demo` serving 30 days of history.

Clones the repository's HEAD into a temporary folder, runs ``make demo`` there on a free port and
times each step from the lines it prints: the virtual environment made and Burgo installed, the
server up, the devices registered and the history imported ("Ready"). Then it checks the answer
(every device online, an entity with 30 days of history), times the dashboard with the demo town in
real Chromium (Playwright, ``/usr/bin/chromium``: from navigation to every marker drawn on the map,
and to every chart drawn on a classroom's page, for a day and a month; 5 loads each in new tabs
after one untimed load) and stops the demo::

    .venv/bin/python bench/bench_demo.py            # pip may use its download cache
    .venv/bin/python bench/bench_demo.py --cold     # no pip cache: every package downloaded

Prints the times and the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import re
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

CLASSROOM = "urn:ngsi-ld:IndoorEnvironmentObserved:class-1-2a"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

ROOT = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
MARKS = {
    "installed": "Burgo demo town: open",
    "registered": "Registering devices",
    "ready": "Ready:",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def browser_figures(base: str, located: int) -> list[tuple[str, float, float]]:
    """(page, median ms, max ms) from navigation to fully drawn, in Chromium, each load checked."""
    from playwright.sync_api import sync_playwright

    entity = f"{base}/entity/{CLASSROOM}"
    charts = "figure.chart[data-drawn='true'] >> nth=2"
    loads = [
        ("map page: navigation to every marker drawn", base + "/", "#map.ready"),
        ("classroom page, day: navigation to its 3 charts drawn", entity, charts),
        ("classroom page, month: navigation to its 3 charts drawn", entity + "?period=month",
         charts),
    ]  # fmt: skip
    results = []
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        for name, url, ready in loads:
            times = []
            for attempt in range(6):
                tab = context.new_page()
                began = time.perf_counter()
                tab.goto(url)
                tab.wait_for_selector(ready, state="attached", timeout=30_000)
                spent = (time.perf_counter() - began) * 1000
                if "#map" in ready and tab.locator(".burgo-marker").count() != located:
                    raise SystemExit("the map does not show every device's entity")
                if "chart" in ready:
                    points = tab.eval_on_selector_all(
                        "figure.chart", "els => els.map(e => Number(e.dataset.points))"
                    )
                    if not all(points):
                        raise SystemExit(f"a chart drew no data: {points}")
                tab.close()
                if attempt:
                    times.append(spent)
            results.append((name, statistics.median(times), max(times)))
        context.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="disable pip's download cache")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="burgo-demo-bench-") as tmp:
        clone = Path(tmp) / "burgo"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BURGO_", "VIRTUAL_ENV"))}
        if args.cold:
            env["PIP_NO_CACHE_DIR"] = "1"
        env["COLUMNS"] = "100"
        print(f"load average before: {load_average()}")
        began = time.monotonic()
        process = subprocess.Popen(
            ["make", "demo", f"PORT={port}"],
            cwd=clone,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert process.stdout is not None
        seen: dict[str, float] = {}
        buffer = b""
        try:
            while "ready" not in seen:
                if time.monotonic() - began > args.timeout:
                    raise SystemExit(f"not ready after {args.timeout:.0f} s")
                if process.poll() is not None:
                    raise SystemExit(f"make demo stopped (status {process.returncode})")
                readable, _, _ = select.select([process.stdout], [], [], 0.5)
                if not readable:
                    continue
                chunk = os.read(process.stdout.fileno(), 65536)
                buffer += chunk
                text = ANSI.sub("", buffer.decode(errors="replace"))
                for name, mark in MARKS.items():
                    if name not in seen and mark in text:
                        seen[name] = time.monotonic() - began
            ready_line = next(
                line
                for line in ANSI.sub("", buffer.decode(errors="replace")).splitlines()
                if "Ready:" in line
            )
            base = f"http://127.0.0.1:{port}"
            devices = httpx.get(f"{base}/api/v1/devices", timeout=30).json()
            online = sum(1 for d in devices if d.get("status", {}).get("state") == "online")
            link = {
                "Link": "<https://raw.githubusercontent.com/smart-data-models/dataModel."
                'Environment/master/context.jsonld>; rel="http://www.w3.org/ns/json-ld#context"'
            }
            days = httpx.get(
                f"{base}/ngsi-ld/v1/temporal/entities/urn:ngsi-ld:IndoorEnvironmentObserved:class-1-1a",
                params={
                    "attrs": "co2",
                    "options": "aggregatedValues",
                    "aggrMethods": "avg",
                    "aggrPeriodDuration": "P1D",
                },
                headers=link,
                timeout=30,
            ).json()["co2"]["avg"]
            print(f"load average before the browser: {load_average()}")
            pages = browser_figures(base, len(devices))
        finally:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        print(f"load average after: {load_average()}")
        print(
            f"install (fresh .venv, {'no pip cache' if args.cold else 'pip cache allowed'}): "
            f"{seen['installed']:.1f} s"
        )
        print(f"devices registered, history import started: {seen['registered']:.1f} s")
        print(f"ready (30 days imported, first live readings sent): {seen['ready']:.1f} s")
        print(ready_line.strip())
        print(
            f"devices online: {online}/{len(devices)}; days of history on a classroom: {len(days)}"
        )
        for name, median, worst in pages:
            print(f"{name}: median {median:.0f} ms, max {worst:.0f} ms")
        return 0


if __name__ == "__main__":
    sys.exit(main())
