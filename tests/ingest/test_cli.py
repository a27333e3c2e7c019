"""``burgo devices``: the CLI against a real Burgo server listening on a local port."""

from __future__ import annotations

import csv
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from typer.testing import CliRunner

from burgo.app import create_app
from burgo.cli import app as cli_app
from burgo.config import load_settings
from tests.services import free_port, wait_for_port

CSV = """id,name,profile,protocol,devEUI,latitude,longitude,interval,attr:address
aq-01,Praça,air-quality,lorawan,70B3D57ED0040001,40.1390,-7.5010,,Praça do Município
aq-02,Escola,air-quality,lorawan,70B3D57ED0040002,40.1402,-7.4990,600,
bad-profile,,toaster,http,,,,,
aq-03,Dup EUI,air-quality,lorawan,70B3D57ED0040001,,,,
class-5b,Sala 5B,classroom,http,,,,,
lat-only,,noise,http,,north,,,
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Burgo server on a free port, in a thread of the test process."""
    workdir = tmp_path_factory.mktemp("cli")
    port = free_port()
    settings = load_settings(
        flags={"db": str(workdir / "burgo.db"), "sqlite_synchronous": "NORMAL", "port": port},
        environ={},
        config_path=None,
    )
    config = uvicorn.Config(create_app(settings), port=port, log_config=None, lifespan="on")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    wait_for_port(port)
    while not uv.started:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(10)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli_app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_import_registers_good_rows_and_names_bad_lines(server: str, tmp_path: Path) -> None:
    devices_csv = tmp_path / "devices.csv"
    devices_csv.write_text(CSV, encoding="utf-8")
    keys = tmp_path / "keys.csv"
    code, out, err = run(
        "devices", "import", str(devices_csv), "--keys", str(keys), "--url", server
    )
    assert code == 1
    assert "Imported 3 devices, 3 rows refused" in out
    assert "line 4: 400 Unknown profile 'toaster'" in err
    assert "line 5: 409 A device with DevEUI 70B3D57ED0040001 is already registered" in err
    assert "line 7: could not convert string to float: 'north'" in err
    with keys.open(encoding="utf-8") as saved:
        rows = list(csv.DictReader(saved))
    assert [r["id"] for r in rows] == ["aq-01", "aq-02", "class-5b"]
    key = rows[2]["apiKey"]
    sent = httpx.post(
        f"{server}/api/v1/devices/class-5b/measurements",
        json={"co2": 640},
        headers={"X-Api-Key": key},
    )
    assert sent.status_code == 202
    shown = httpx.get(f"{server}/api/v1/devices/aq-01").json()
    assert shown["staticAttributes"] == {"address": "Praça do Município"}
    assert shown["location"] == {"type": "Point", "coordinates": [-7.501, 40.139]}

    code, out, _ = run("devices", "list", "--url", server)
    assert code == 0
    assert "3 devices" in out
    line = next(line for line in out.splitlines() if "class-5b" in line)
    assert "online" in line and "classroom" in line

    code, out, _ = run("devices", "show", "aq-02", "--url", server)
    assert code == 0 and '"interval": 600' in out
    code, out, _ = run("devices", "remove", "aq-02", "--url", server)
    assert (code, out.strip()) == (0, "Removed aq-02")
    code, _, err = run("devices", "show", "aq-02", "--url", server)
    assert code == 1 and "404 No device 'aq-02' is registered" in err


def test_add_prints_the_key_once(server: str) -> None:
    code, out, _ = run(
        "devices", "add", "w-1", "--profile", "weather",
        "--latitude", "40.1", "--longitude", "-7.5", "--url", server,
    )  # fmt: skip
    assert code == 0
    assert "Registered w-1 -> urn:ngsi-ld:WeatherObserved:w-1" in out
    assert "API key (shown once, keep it): bgk_" in out
    code, _, err = run("devices", "add", "w-1", "--profile", "weather", "--url", server)
    assert code == 1 and "409 A device with id w-1 is already registered" in err


def test_an_unreachable_server_is_named(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, _, err = run("devices", "list", "--url", url)
    assert code == 1 and f"cannot reach Burgo at {url}" in err
