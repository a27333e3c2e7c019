"""Real local peers for the tests: a private Mosquitto broker, a private PostgreSQL cluster.

A test that needs one skips with the reason when run by hand on a machine without it, and fails
in CI (CI=true), where `make test` has installed it.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def require(program: str, package: str) -> str:
    """The path of ``program``; skip (by hand) or fail (in CI) when it is not installed."""
    path = shutil.which(program) or (
        f"/usr/sbin/{program}" if Path(f"/usr/sbin/{program}").exists() else None
    )
    if path is None:
        reason = (
            f"{program} is not installed (Debian package {package}; `make services` installs it)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def wait_for_port(port: int, deadline: float = 10.0) -> None:
    """Return once something accepts connections on 127.0.0.1:``port``."""
    until = time.monotonic() + deadline
    while time.monotonic() < until:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on port {port} after {deadline} s")


@dataclass(frozen=True)
class Broker:
    """A running MQTT broker."""

    host: str
    port: int

    @property
    def url(self) -> str:
        """Its address as an mqtt:// URL."""
        return f"mqtt://{self.host}:{self.port}"


@contextmanager
def mosquitto(
    workdir: Path, port: int | None = None, *, persistent: bool = False
) -> Iterator[Broker]:
    """Run a private Mosquitto (MQTT 3.1.1 and 5, anonymous, loopback only) until the block ends;
    on ``port`` when given (to restart a broker where its clients expect it); ``persistent`` keeps
    its clients' sessions in ``workdir`` across a restart."""
    program = require("mosquitto", "mosquitto")
    port = port or free_port()
    config = workdir / "mosquitto.conf"
    persistence = "false"
    if persistent:
        # As root, Mosquitto would switch to its own user, who cannot write in a test's folder.
        user = pwd.getpwuid(os.geteuid()).pw_name
        persistence = f"true\npersistence_location {workdir}/\nuser {user}"
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence {persistence}\n"
        "log_dest none\nmax_queued_messages 100000\n"
    )
    process = subprocess.Popen(
        [program, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port)
        yield Broker("127.0.0.1", port)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(frozen=True)
class PostgresServer:
    """A running PostgreSQL cluster that trusts local connections."""

    host: str
    port: int
    user: str = "postgres"
    # pg_ctl with its data directory, and the server's options: to stop and start it again.
    control: tuple[str, ...] = ()
    options: str = ""

    def url(self, dbname: str = "postgres") -> str:
        """The postgresql:// URL of one of its databases."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def stop(self) -> None:
        """Stop the server (its clients' connections break; what was committed stays)."""
        subprocess.run([*self.control, "-m", "fast", "-w", "stop"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip

    def start(self) -> None:
        """Start the stopped server again, on the same port and data."""
        subprocess.run([*self.control, "-o", self.options, "-w", "-t", "60", "start"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        wait_for_port(self.port)


def _postgres_bin(program: str) -> str:
    """The newest installed PostgreSQL server program; skip or fail when there is none."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{program}"))
    if not found:
        return require(program, "postgresql")
    return found[-1]


@contextmanager
def postgresql(*, durable: bool = False) -> Iterator[PostgresServer]:
    """Run a private PostgreSQL cluster (new data directory, loopback only, a free port) until
    the block ends; without ``durable``, fsync is off (fast, for tests). As root it runs as the
    ``postgres`` user."""
    initdb, pg_ctl = _postgres_bin("initdb"), _postgres_bin("pg_ctl")
    as_user: list[str] = []
    datadir = Path(tempfile.mkdtemp(prefix="burgo-pg-"))
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(datadir, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories='' "
        "-c max_connections=200"
    )
    if not durable:
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}
    try:
        subprocess.run(
            [*as_user, initdb, "-D", str(datadir / "data"), "-U", "postgres", "--auth=trust",
             "-E", "UTF8", "--no-locale", "--no-sync"],
            check=True, **quiet,
        )  # fmt: skip
        control = (*as_user, pg_ctl, "-D", str(datadir / "data"), "-l", str(datadir / "server.log"))
        server = PostgresServer("127.0.0.1", port, control=control, options=options)
        server.start()
        try:
            yield server
        finally:
            subprocess.run(
                [*as_user, pg_ctl, "-D", str(datadir / "data"), "-m", "immediate", "-w", "stop"],
                check=False, **quiet,
            )  # fmt: skip
    finally:
        shutil.rmtree(datadir, ignore_errors=True)


@contextmanager
def burgo_serve(db: Path, port: int, **settings: str) -> Iterator[subprocess.Popen[bytes]]:
    """``burgo serve`` on ``db`` as a separate process (its settings from ``BURGO_*`` variables
    named in ``settings``, none inherited) until the block ends, or the test kills it."""
    burgo = Path(sys.executable).parent / "burgo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BURGO_")}
    env.update({f"BURGO_{name.upper()}": value for name, value in settings.items()})
    process = subprocess.Popen(
        [str(burgo), "serve", "--db", str(db), "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, 20)
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(10)
