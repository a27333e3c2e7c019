"""Ingestion benchmark: HTTP measurement batches, The Things Stack uplinks and MQTT, end to end.

Starts a private Mosquitto and ``burgo serve`` (TTS webhook and MQTT ingestion on), registers
devices through the device API, then drives it with wrk (needs ``apt-get install wrk``) and a
lean MQTT publisher (``mqtt_publish.py``, QoS 1)::

    .venv/bin/python bench/bench_ingest.py                  # FULL, 15 s per load
    .venv/bin/python bench/bench_ingest.py --modes FULL NORMAL --repeat 2 --loads http mqtt
    .venv/bin/python bench/bench_ingest.py --modes FULL POSTGRES --postgres private

Every device sends one reading first (outside the timed runs), so its API key is verified
before the runs as on a server that has been up for a while. Loads:

- ``http``: ``POST /api/v1/devices/{id}/measurements`` with 100 measurements a request (25
  timestamped readings of 4 values, each reading one entity update, so current state and history
  both take it);
- ``tts``: ``POST /api/v1/lorawan/tts`` with one uplink a request (a distinct ``as:up`` id each);
- ``mqtt``: ``rate * duration`` messages (one reading of 4 values each, spread over the devices'
  ``burgo/default/{device}/attrs`` topics) published with QoS 1 at ``--mqtt-rate`` a second
  (``--mqtt-window`` unacknowledged at most); timed from the first publish until the server has
  stored the last one. Every message the broker acknowledged must be stored exactly once: the
  server's counters and the devices' stored status must both count each one.

``--modes POSTGRES`` runs the loads on a new database of the PostgreSQL server ``--postgres URL``
(``private``: a private durable cluster, see ``databases.py``), with ``--workers`` server
processes (one unless said). On PostgreSQL the database's CPU (every process of a server on this
machine) is reported beside Burgo's.

Every run is checked against the server's own counters: every answer 202, and every measurement,
uplink and message written (``burgo_device_measurements_total``,
``burgo_device_messages_total``) exactly once: none lost, no duplicate.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import orjson
from bench_entities import (
    HOST,
    Load,
    WrkResult,
    burgo_executable,
    cpu_seconds,
    database_cpu_seconds,
    database_pid,
    free_port,
    parse_wrk,
    request,
    status_counts,
    wait_until_ready,
    worker_pids,
)
from databases import add_store_options, fresh_database, postgres_server
from mqtt_publish import packet_id, publish, publish_packet

SECRET = "bench-secret"
READINGS_PER_REQUEST = 25
VALUES_PER_READING = 4
HTTP_LOAD = Load(
    "HTTP batch (100 measurements)", "", "POST", "/api/v1/devices/{device_id}/measurements", "202"
)
TTS_LOAD = Load("TTS uplink", "", "POST", "/api/v1/lorawan/tts", "202")
MQTT_LOAD = "MQTT message (QoS 1)"
MQTT_BASE = 1_714_521_600  # 2024-05-01T00:00:00Z

MEASUREMENTS_LUA = """
local keys = {%(keys)s}
local counter = 0
local threads = 0
local n = 0
function setup(thread) thread:set("tid", threads); threads = threads + 1 end
function init(args) n = tid * 1000003 end
local base = os.time({year=2024, month=5, day=1, hour=0})
function request()
   n = n + 1
   local d = n %% #keys
   local parts = {}
   for i = 1, %(readings)d do
      local t = os.date("!%%Y-%%m-%%dT%%H:%%M:%%SZ", base + (n * %(readings)d + i) %% 31000000)
      parts[i] = string.format('{"pm25":%%d,"pm10":%%d,"no2":%%d,"o3":%%d,"observedAt":"%%s"}',
         (n + i) %% 80, (n + i) %% 120, (n + i) %% 200, (n + i) %% 150, t)
   end
   return wrk.format("POST", "/api/v1/devices/bench-" .. string.format("%%04d", d) ..
      "/measurements", {["Content-Type"] = "application/json", ["X-Api-Key"] = keys[d + 1]},
      "[" .. table.concat(parts, ",") .. "]")
end
"""

TTS_LUA = """
local devices = %(devices)d
local run = "%(run)s"
local threads = 0
local n = 0
function setup(thread) thread:set("tid", threads); threads = threads + 1 end
function init(args) n = 0 end
function request()
   n = n + 1
   local d = n %% devices
   local body = string.format(
      '{"end_device_ids":{"device_id":"bench-%%04d","dev_eui":"70B3D57ED%%07X"},' ..
      '"correlation_ids":["as:up:%%s-%%d-%%d"],"received_at":"2024-05-01T10:00:00Z",' ..
      '"uplink_message":{"f_port":1,"f_cnt":%%d,"frm_payload":"AQ==",' ..
      '"decoded_payload":{"pm25":%%d,"pm10":%%d,"no2":%%d,"o3":%%d},' ..
      '"rx_metadata":[{"gateway_ids":{"gateway_id":"gw-1"},"rssi":-%%d,"snr":7.5}],' ..
      '"received_at":"2024-05-01T10:%%02d:%%02dZ"}}',
      d, d, run, tid, n, n, n %% 80, n %% 120, n %% 200, n %% 150, 60 + n %% 60,
      math.floor(n / 60) %% 60, n %% 60)
   return wrk.format("POST", "/api/v1/lorawan/tts",
      {["Content-Type"] = "application/json", ["X-Burgo-Secret"] = "%(secret)s"}, body)
end
"""

_COUNTER = re.compile(r'^(burgo_device_[a-z_]+_total)(\{source="(\w+)"\})? ([\d.e+]+)$', re.M)


@dataclass
class Run:
    """One wrk run and what the server says it stored."""

    load: str
    wrk: WrkResult
    stored_ok: bool
    detail: str
    items_per_s: float


@contextmanager
def server(
    synchronous: str, workdir: Path, db: str, mqtt_port: int | None = None, workers: int = 1
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``burgo serve`` (``workers`` processes) with the TTS webhook (and MQTT ingestion from
    ``mqtt_port``) on, on a free port and the new database ``db``."""
    port = free_port()
    env = {
        **os.environ,
        "BURGO_SQLITE_SYNCHRONOUS": synchronous,
        "BURGO_LOG_LEVEL": "warning",
        "BURGO_LORAWAN_TTS_SECRET": SECRET,
    }
    if mqtt_port is not None:
        env["BURGO_MQTT_URL"] = f"mqtt://{HOST}:{mqtt_port}"
    command = [burgo_executable(), "serve", "--host", HOST, "--port", str(port)]
    command += ["--db", db, "--config", str(workdir / "none.toml"), "--workers", str(workers)]
    process = subprocess.Popen(command, cwd=workdir, env=env)
    try:
        wait_until_ready(port, process)
        while len(worker_pids(port, workers)) < workers:
            time.sleep(0.1)
        yield process, port
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def mosquitto(workdir: Path) -> Iterator[int]:
    """A private Mosquitto on a free loopback port (as tests/services.py runs one); its port."""
    program = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(program).exists():
        sys.exit("bench: the MQTT load needs Mosquitto (apt-get install mosquitto)")
    port = free_port()
    config = workdir / "mosquitto.conf"
    # Queue without limit: the broker must not drop what the server has not taken yet.
    config.write_text(
        f"listener {port} {HOST}\nallow_anonymous true\npersistence false\nlog_dest none\n"
        "max_queued_messages 10000000\nmax_inflight_messages 0\n"
    )
    process = subprocess.Popen([program, "-c", str(config)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((HOST, port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit("bench: Mosquitto did not start")
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def seed(port: int, count: int) -> list[str]:
    """Register ``count`` air-quality devices (LoRaWAN, with DevEUIs); their API keys."""
    keys = []
    for n in range(count):
        body = {
            "id": f"bench-{n:04d}",
            "profile": "air-quality",
            "protocol": "lorawan",
            "devEUI": f"70B3D57ED{n:07X}",
        }
        status, answer = request(port, "POST", "/api/v1/devices", orjson.dumps(body))
        if status != 201:
            sys.exit(f"bench: registering a device answered {status}: {answer[:300]!r}")
        keys.append(orjson.loads(answer)["apiKey"])
    return keys


def warm_up(port: int, keys: list[str]) -> None:
    """One reading from every device before the timed runs: the server verifies each API key
    (scrypt) once per process, and a long-running server has done so long before."""
    for n, key in enumerate(keys):
        conn = http.client.HTTPConnection(HOST, port, timeout=10)
        try:
            conn.request(
                "POST",
                f"/api/v1/devices/bench-{n:04d}/measurements",
                body=orjson.dumps({"pm25": 1, "observedAt": "2024-04-30T00:00:00Z"}),
                headers={"Content-Type": "application/json", "X-Api-Key": key},
            )
            response = conn.getresponse()
            if response.status != 202:
                sys.exit(f"bench: a warm-up reading answered {response.status}")
            response.read()
        finally:
            conn.close()


def counters(port: int, workers: int = 1) -> dict[str, float]:
    """The ingestion counters of /metrics, summed over the workers."""
    pages = worker_pids(port, workers)
    if len(pages) < workers:
        sys.exit(f"bench: only {len(pages)} of {workers} workers answered /metrics")
    total: dict[str, float] = {}
    for text in pages.values():
        for m in _COUNTER.finditer(text):
            key = f"{m[1]}:{m[3] or ''}"
            total[key] = total.get(key, 0.0) + float(m[4])
    return total


class CpuMeter:
    """CPU used since the last reading by Burgo (the server and its workers) and by the local
    PostgreSQL server behind ``db`` (None for SQLite or a remote server)."""

    def __init__(self, pid: int, db: str | None) -> None:
        self.pid = pid
        self.db_pid = database_pid(db) if db and db.startswith("postgresql") else None
        self.start()

    def start(self) -> None:
        self.burgo = cpu_seconds(self.pid)
        self.database = database_cpu_seconds(self.db_pid) if self.db_pid else 0.0

    def used(self) -> tuple[float, float | None]:
        burgo = cpu_seconds(self.pid) - self.burgo
        if self.db_pid is None:
            return burgo, None
        return burgo, database_cpu_seconds(self.db_pid) - self.database


def wrk(port: int, script: Path, args: argparse.Namespace) -> str:
    command = [
        "wrk", "--latency", "--timeout", "10s", "-t", str(args.threads),
        "-c", str(args.connections), "-d", f"{args.duration}s", "-s", str(script), f"http://{HOST}:{port}",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"bench: wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    if args.verbose:
        print(done.stdout, file=sys.stderr)
    return done.stdout


def drive(port: int, meter: CpuMeter, load: Load, script: Path, args: argparse.Namespace) -> Run:
    """One load; checked against the server's answer counts and ingestion counters."""
    workers = args.workers
    answers_before, before = status_counts(port, load, workers), counters(port, workers)
    meter.start()
    output = wrk(port, script, args)
    time.sleep(1.0)  # requests still in flight when wrk stopped are answered and counted
    cpu, db_cpu = meter.used()
    answers_after, after = status_counts(port, load, workers), counters(port, workers)
    answers = {s: answers_after.get(s, 0) - answers_before.get(s, 0) for s in answers_after}
    unexpected = {s: n for s, n in answers.items() if s != load.expected_status and n}
    result = parse_wrk(output, unexpected)
    accepted = answers.get(load.expected_status, 0)

    def delta(key: str) -> float:
        return after.get(key, 0) - before.get(key, 0)

    if load is HTTP_LOAD:
        stored = delta("burgo_device_measurements_total:")
        expected = accepted * READINGS_PER_REQUEST * VALUES_PER_READING
        ok = stored == expected and accepted >= result.requests
        detail = f"{stored:.0f} measurements stored of {expected:.0f} accepted"
    else:
        stored = delta("burgo_device_messages_total:lorawan")
        duplicates = delta("burgo_device_messages_duplicate_total:")
        ok = stored == accepted and duplicates == 0 and accepted >= result.requests
        detail = f"{stored:.0f} uplinks stored of {accepted:.0f} accepted, {duplicates:.0f} dup"
    if not (ok and result.clean):
        detail += (
            f" (wrk: {result.requests} requests, {result.socket_errors} socket errors, "
            f"{result.non_2xx} not 2xx; the server: {accepted:.0f} answered "
            f"{load.expected_status}, others {unexpected})"
        )
    seconds = args.duration
    requests = max(result.requests, 1)
    result = replace(
        result,
        server_cpu_us=1e6 * cpu / requests,
        database_cpu_us=None if db_cpu is None else 1e6 * db_cpu / requests,
    )
    return Run(load.name, result, ok and result.clean, detail, stored / seconds)


def mqtt_payload(n: int) -> tuple[str, bytes]:
    """The ``n``-th message: one reading of 4 values from device ``n mod 200``, its own time."""
    device = f"bench-{n % 200:04d}"
    t = MQTT_BASE + n  # seconds: every message of a device at its own time
    observed = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    body = {"pm25": n % 80, "pm10": n % 120, "no2": n % 200, "o3": n % 150, "observedAt": observed}
    return f"burgo/default/{device}/attrs", orjson.dumps(body)


def stored_messages(port: int) -> int:
    """Messages counted in the devices' stored status (the database, not the process's
    counters)."""
    status, body = request(port, "GET", "/api/v1/devices")
    if status != 200:
        sys.exit(f"bench: listing the devices answered {status}")
    return sum(d.get("status", {}).get("messages", 0) for d in orjson.loads(body))


def drive_mqtt(
    port: int, meter: CpuMeter, mqtt_port: int, args: argparse.Namespace, first: int
) -> Run:
    """Publish ``rate * duration`` messages at ``rate``; timed until the server stored the last
    of them. Every message the broker acknowledged must be stored exactly once."""
    count = args.mqtt_rate * args.duration
    packets = []
    for n in range(first, first + count):
        topic, payload = mqtt_payload(n)
        packets.append(publish_packet(topic, payload, packet_id(n)))
    before, in_store = counters(port, args.workers), stored_messages(port)
    meter.start()
    started = time.monotonic()
    published = publish(
        (HOST, mqtt_port), packets, rate=args.mqtt_rate, window=args.mqtt_window, first=first
    )
    if published.acknowledged != count:
        sys.exit(f"bench: the broker acknowledged {published.acknowledged} of {count} messages")
    publishing = time.monotonic() - started
    deadline = started + max(120.0, 10.0 * args.duration)
    stored = 0.0
    while time.monotonic() < deadline:
        now = counters(port, args.workers)
        stored = now.get("burgo_device_messages_total:mqtt", 0) - before.get(
            "burgo_device_messages_total:mqtt", 0
        )
        if stored >= count:
            break
        # Each look at /metrics costs the server CPU (it reads every device's status): a few a
        # second keep the timing within 0.25 s without slowing what is measured.
        time.sleep(0.25)
    seconds = time.monotonic() - started
    time.sleep(1.0)  # anything stored twice would show now
    cpu, db_cpu = meter.used()
    after = counters(port, args.workers)
    in_store = stored_messages(port) - in_store

    def delta(key: str) -> float:
        return after.get(key, 0) - before.get(key, 0)

    stored = delta("burgo_device_messages_total:mqtt")
    measurements = delta("burgo_device_measurements_total:")
    rejected = delta("burgo_device_messages_rejected_total:mqtt")
    ok = (
        stored == count
        and in_store == count
        and measurements == count * VALUES_PER_READING
        and rejected == 0
    )
    detail = (
        f"{stored:.0f} messages stored of {count} acknowledged by the broker ({in_store} in the "
        f"devices' stored status, {measurements:.0f} measurements, {rejected:.0f} refused); "
        f"offered {published.offered_per_s:,.0f}/s, the last stored {seconds - publishing:.2f} s "
        f"after the broker acknowledged it, publisher CPU "
        f"{1e6 * published.cpu_seconds / count:.1f} µs/msg"
    )
    result = WrkResult(
        requests_per_s=count / seconds,
        requests=count,
        p50_ms=0.0,
        p99_ms=0.0,
        socket_errors=0,
        non_2xx=0,
        unexpected_status={},
        server_cpu_us=1e6 * cpu / count,
        database_cpu_us=None if db_cpu is None else 1e6 * db_cpu / count,
    )
    return Run(MQTT_LOAD, result, ok, detail, count / seconds)


def bench_mode(synchronous: str, args: argparse.Namespace, postgres: str | None) -> list[Run]:
    """Every load against a new server in one mode (a SQLite synchronous mode, or POSTGRES on
    a new database of the server ``postgres``)."""
    runs = []
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="burgo-bench-ingest-"))
        mqtt_port = stack.enter_context(mosquitto(Path(tmp))) if "mqtt" in args.loads else None
        server_url = postgres if synchronous == "POSTGRES" else None
        db = stack.enter_context(fresh_database(server_url, Path(tmp), "ingest"))
        mode = "FULL" if server_url else synchronous
        process, port = stack.enter_context(server(mode, Path(tmp), db, mqtt_port, args.workers))
        meter = CpuMeter(process.pid, db)
        keys = seed(port, args.devices)
        warm_up(port, keys)
        measurements = Path(tmp) / "measurements.lua"
        quoted = ",".join(f'"{k}"' for k in keys)
        measurements.write_text(
            MEASUREMENTS_LUA % {"keys": quoted, "readings": READINGS_PER_REQUEST}
        )
        for attempt in range(args.repeat):
            for name in args.loads:
                if name == "mqtt":
                    assert mqtt_port is not None
                    first = attempt * args.mqtt_rate * args.duration
                    run = drive_mqtt(port, meter, mqtt_port, args, first)
                else:
                    load = HTTP_LOAD if name == "http" else TTS_LOAD
                    script = measurements
                    if load is TTS_LOAD:
                        script = Path(tmp) / f"tts{attempt}.lua"
                        run_id = f"{synchronous}{attempt}{time.time_ns()}"
                        script.write_text(
                            TTS_LUA % {"devices": args.devices, "run": run_id, "secret": SECRET}
                        )
                    run = drive(port, meter, load, script, args)
                runs.append(run)
                print(
                    f"{synchronous} {run.load}: {run.items_per_s:,.0f}/s, "
                    f"{run.wrk.requests_per_s:,.0f} req/s, p99 {run.wrk.p99_ms:.1f} ms, "
                    f"server CPU {run.wrk.server_cpu_us:,.0f} µs/req, {_database_cpu(run)}"
                    f"{run.detail}, {'ok' if run.stored_ok else 'FAILED'}",
                    file=sys.stderr,
                )
    return runs


def _database_cpu(run: Run) -> str:
    if run.wrk.database_cpu_us is None:
        return ""
    return f"database CPU {run.wrk.database_cpu_us:,.0f} µs/req, "


def markdown(results: dict[str, list[Run]], args: argparse.Namespace) -> str:
    """The results as a Markdown table (best run of each load)."""
    lines = [
        f"{args.devices} devices, wrk -t{args.threads} -c{args.connections} -d{args.duration}s, "
        f"{args.workers} server worker(s), best of {args.repeat}.",
        "",
        "| mode | load | stored per s | requests/s | p50 ms | p99 ms | server CPU µs/req "
        "| database CPU µs/req | check |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    units = {HTTP_LOAD.name: "measurements", TTS_LOAD.name: "uplinks", MQTT_LOAD: "messages"}
    for mode, runs in results.items():
        for name in units:
            if not any(r.load == name for r in runs):
                continue
            best = max((r for r in runs if r.load == name), key=lambda r: r.items_per_s)
            unit = units[name]
            db_cpu = best.wrk.database_cpu_us
            lines.append(
                f"| {mode} | {name} | {best.items_per_s:,.0f} {unit} | "
                f"{best.wrk.requests_per_s:,.0f} | {best.wrk.p50_ms:.1f} | {best.wrk.p99_ms:.1f} | "
                f"{best.wrk.server_cpu_us:,.0f} | "
                f"{'' if db_cpu is None else f'{db_cpu:,.0f}'} | "
                f"{best.detail} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_store_options(parser)
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--loads", nargs="+", default=["http", "tts", "mqtt"], choices=["http", "tts", "mqtt"]
    )
    parser.add_argument(
        "--mqtt-rate", type=int, default=5000, help="MQTT messages per second of --duration"
    )
    parser.add_argument(
        "--mqtt-window", type=int, default=1000, help="QoS 1 messages unacknowledged at most"
    )
    parser.add_argument("--workers", type=int, default=1,
                        help="burgo serve --workers (above 1: POSTGRES only)")  # fmt: skip
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if "POSTGRES" in args.modes and not args.postgres:
        parser.error("--modes POSTGRES needs --postgres URL (or 'private')")
    with postgres_server(args.postgres) as postgres:
        results = {mode: bench_mode(mode, args, postgres) for mode in args.modes}
    print(markdown(results, args))
    failed = [r for runs in results.values() for r in runs if not r.stored_ok]
    if failed:
        print(f"bench: {len(failed)} runs lost or refused data", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
