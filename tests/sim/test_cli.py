"""``burgo simulate`` against a real ``burgo serve`` on a loopback port, and ``burgo demo``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from burgo.cli import app as cli_app
from burgo.sim.town import build_town
from tests.services import free_port, wait_for_port

SMALL = build_town(seed=42, size="small")
SECRET = "tts-secret-of-the-cli-test"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``burgo serve`` in its own process, with The Things Stack webhook on."""
    workdir = tmp_path_factory.mktemp("serve")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BURGO_")}
    env["BURGO_LORAWAN_TTS_SECRET"] = SECRET
    env["BURGO_SQLITE_SYNCHRONOUS"] = "NORMAL"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "burgo",
            "serve",
            "--port",
            str(port),
            "--db",
            str(workdir / "burgo.db"),
            "--config",
            str(workdir / "none.toml"),
            "--log-level",
            "warning",
        ],
        env=env,
    )
    try:
        wait_for_port(port, 30.0)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def simulate(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli_app, ["simulate", *args])
    return result.exit_code, result.stdout, result.stderr


def test_simulate_registers_the_town_and_imports_its_history(server: str, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    run_options = ("--target", server, "--size", "small", "--history", "3h", "--interval", "0",
                   "--tts-secret", SECRET, "--state", str(state))  # fmt: skip
    code, out, err = simulate(*run_options)
    assert code == 0, (out, err)
    assert f"Ready: Fundão, {len(SMALL.devices)} devices" in out
    devices = httpx.get(f"{server}/api/v1/devices").json()
    assert {d["id"] for d in devices} >= {d.id for d in SMALL.devices}
    assert all(d["status"]["state"] == "online" for d in devices)
    # The Things Stack devices went through its webhook; ChirpStack ones had no secret: HTTP.
    tts = next(d for d in devices if d["id"] == "aq-01")
    assert tts["status"]["gateway"].startswith("fundao-")
    noise = next(d for d in devices if d["id"] == "noise-01")
    assert "gateway" not in noise["status"]
    link = {"Link": f'<{tts["context"]}>; rel="http://www.w3.org/ns/json-ld#context"'}
    history = httpx.get(
        f"{server}/ngsi-ld/v1/temporal/entities/urn:ngsi-ld:AirQualityObserved:aq-01",
        params={"attrs": "NO2"},
        headers=link,
    ).json()
    assert len(history["NO2"]) >= 12  # 3 hours every 15 minutes, and the live reading
    assert state.stat().st_mode & 0o077 == 0  # it holds the keys

    code, out, err = simulate(*run_options)
    assert code == 0, (out, err)
    again = httpx.get(f"{server}/api/v1/devices/aq-01").json()
    assert again["createdAt"] == tts["createdAt"]  # the same registration, its key reused


def test_simulate_names_a_server_that_does_not_answer() -> None:
    port = free_port()
    code, _out, err = simulate("--target", f"http://127.0.0.1:{port}", "--wait", "0.5")
    assert code == 1
    assert f"No Burgo server answered at http://127.0.0.1:{port}" in err


def test_simulate_refuses_a_bad_span() -> None:
    code, _out, err = simulate("--target", "http://127.0.0.1:1", "--history", "a month")
    assert code == 2
    assert "'a month' is not a span such as 30d" in err


def test_demo_serves_a_living_town(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BURGO_")}
    env["BURGO_MAP_TILE_URL"] = "https://tiles.example-town.pt/{z}/{x}/{y}.png"
    env["BURGO_DB"] = str(tmp_path / "elsewhere.db")  # the demo keeps its own
    command = [
        sys.executable,
        "-m",
        "burgo",
        "demo",
        "--dir",
        str(tmp_path / "demo"),
        "--port",
        str(port),
        "--size",
        "small",
        "--history",
        "2h",
        "--interval",
        "0",
    ]
    process = subprocess.Popen(command, env=env, cwd=tmp_path)
    try:
        wait_for_port(port, 30.0)
        deadline = time.monotonic() + 60
        devices: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            devices = httpx.get(f"http://127.0.0.1:{port}/api/v1/devices").json()
            states = [d.get("status", {}).get("state") for d in devices]  # type: ignore[union-attr]
            if len(devices) == len(SMALL.devices) and set(states) == {"online"}:
                break
            time.sleep(0.2)
        assert len(devices) == len(SMALL.devices)
        # The demo gave the server webhook secrets and the feeder used them.
        bin_ = httpx.get(f"http://127.0.0.1:{port}/api/v1/devices/bin-02").json()
        assert bin_["status"]["gateway"].startswith("fundao-")
        noise = httpx.get(f"http://127.0.0.1:{port}/api/v1/devices/noise-01").json()
        assert noise["status"]["gateway"].startswith("fundao-")
        # The dashboard shows the town on the tiles the environment names.
        page = httpx.get(f"http://127.0.0.1:{port}/", headers={"Accept": "text/html"}).text
        assert 'data-tiles="https://tiles.example-town.pt/{z}/{x}/{y}.png"' in page
        assert f"{len(SMALL.devices)} things on the map" in page
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(20)
    assert (tmp_path / "demo" / "burgo.db").exists()
    assert (tmp_path / "demo" / "simulator.json").exists()
    assert not (tmp_path / "elsewhere.db").exists()
