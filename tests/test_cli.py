"""The ``burgo`` command line, as a user runs it."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from burgo import __version__
from burgo.cli import app
from burgo.store.sqlite.migrations import available_migrations

LATEST = available_migrations()[-1].version
BURGO = Path(sys.executable).with_name("burgo")


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """Runs commands in an empty directory (no burgo.toml) with no BURGO_* variables."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("BURGO_")]:
        monkeypatch.delenv(name)
    return CliRunner()


def user_version(path: Path) -> int:
    """The schema version recorded in the database file at ``path``."""
    with closing(sqlite3.connect(path)) as conn:
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        return version


def test_help_lists_the_commands(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "version", "db"):
        assert command in result.stdout


def test_no_arguments_shows_the_help(runner: CliRunner) -> None:
    result = runner.invoke(app, [])
    assert "serve" in result.output
    assert "Usage" in result.output


def test_version_prints_the_package_version(runner: CliRunner) -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == __version__


@pytest.mark.parametrize(
    ("args", "env", "key"),
    [
        (["serve"], {"BURGO_PORT": "abc"}, "BURGO_PORT"),
        (["serve", "--port", "0"], {}, "'port' from command line"),
        (["serve", "--log-level", "chatty"], {}, "'log_level' from command line"),
        (["serve"], {"BURGO_LOG_JSON": "maybe"}, "BURGO_LOG_JSON"),
        (["db", "migrate"], {"BURGO_DB": " "}, "'db'"),
    ],
)
def test_a_bad_setting_exits_2_naming_the_key(
    runner: CliRunner, args: list[str], env: dict[str, str], key: str
) -> None:
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 2
    assert key in result.stderr
    assert result.stderr.startswith("burgo: Invalid settings")


def test_a_bad_key_in_burgo_toml_exits_2_naming_it(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "burgo.toml").write_text("[burgo]\nprot = 8080\n", encoding="utf-8")
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 2
    assert "'prot' from burgo.toml" in result.stderr


def test_db_migrate_upgrades_a_database_in_place(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE notes (text)")
        conn.execute("INSERT INTO notes VALUES ('kept')")
    result = runner.invoke(app, ["db", "migrate", "--db", str(path)])
    assert result.exit_code == 0, result.output
    assert f"schema version {LATEST}" in result.stdout
    assert user_version(path) == LATEST
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT text FROM notes").fetchall() == [("kept",)]
        assert conn.execute("SELECT count(*) FROM entities").fetchone() == (0,)

    again = runner.invoke(app, ["db", "migrate", "--db", str(path)])
    assert again.exit_code == 0
    assert f"schema version {LATEST}, already up to date" in again.stdout


def test_db_migrate_takes_the_database_from_the_settings(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "from-env.db"
    sqlite3.connect(path).close()
    result = runner.invoke(app, ["db", "migrate"], env={"BURGO_DB": str(path)})
    assert result.exit_code == 0, result.output
    assert user_version(path) == LATEST


def test_db_migrate_refuses_a_missing_database(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "typo.db"
    result = runner.invoke(app, ["db", "migrate", "--db", str(path)])
    assert result.exit_code == 1
    assert f"no database at {path}" in result.stderr
    assert not path.exists()


def test_db_migrate_refuses_a_database_newer_than_burgo(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    result = runner.invoke(app, ["db", "migrate", "--db", str(path)])
    assert result.exit_code == 1
    assert "newer than this Burgo knows" in result.stderr
    assert str(path) in result.stderr
    assert user_version(path) == LATEST + 1


# -- a real server, in its own process ----------------------------------------------------------


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`burgo serve` started as a user would, and its base URL; stopped at the end."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BURGO_")}
    process = subprocess.Popen(
        [str(BURGO), "serve", "--port", str(port), "--db", str(tmp_path / "data" / "burgo.db")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        assert process.stdout is not None
        process.stdout.close()


def wait_until_ready(base: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> float:
    """Poll /version until the server answers; the seconds it took to start. The limit only
    catches a server that never comes up (start-up time is a benchmark figure, not a test)."""
    started = time.monotonic()
    while True:
        assert process.poll() is None, "burgo serve exited early"
        try:
            if httpx.get(f"{base}/version", timeout=1).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            time.sleep(0.02)  # the polling interval, so the poll leaves the CPU to the server
        assert time.monotonic() - started < timeout, "burgo serve did not answer in time"


@pytest.mark.slow
def test_serve_answers_version_and_metrics_as_a_real_process(
    server: tuple[str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    """Runs the installed console script in a subprocess on a free port."""
    base, process = server
    wait_until_ready(base, process)

    version = httpx.get(f"{base}/version").json()
    assert (version["name"], version["version"]) == ("Burgo", __version__)
    metrics = httpx.get(f"{base}/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "burgo_store_write_queue_depth" in metrics.text
    assert 'burgo_http_requests_total{method="GET",route="/version",status="200"}' in metrics.text
    assert (tmp_path / "data" / "burgo.db").is_file()

    process.terminate()
    # uvicorn re-raises the signal once its graceful shutdown is complete.
    assert process.wait(timeout=10) in (0, -signal.SIGTERM)
    assert process.stdout is not None
    assert "Application shutdown complete" in process.stdout.read().decode()
    assert not (tmp_path / "data" / "burgo.db-wal").exists(), "the store was not closed cleanly"


def test_serve_refuses_several_workers_on_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "burgo.db"
    result = CliRunner().invoke(app, ["serve", "--db", str(db), "--workers", "2"], env={})
    assert result.exit_code == 2
    assert "setting 'workers' is 2" in result.stderr
    assert "SQLite" in result.stderr and "postgresql://" in result.stderr
    assert not db.exists()
