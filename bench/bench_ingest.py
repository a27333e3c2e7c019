"""Ingestion benchmark: HTTP measurement batches and The Things Stack uplinks, end to end.

Starts ``burgo serve`` (with the TTS webhook enabled), registers devices through the device API,
then drives it with wrk (needs ``apt-get install wrk``)::

    .venv/bin/python bench/bench_ingest.py                  # FULL, 15 s per load
    .venv/bin/python bench/bench_ingest.py --modes FULL NORMAL --repeat 2

Every device sends one reading first (outside the timed runs), so its API key is verified
before the runs as on a server that has been up for a while. Loads: ``POST /api/v1/devices/{id}/measurements`` with 100 measurements a request (25 timestamped
readings of 4 values, each reading one entity update, so current state and history both take it)
and ``POST /api/v1/lorawan/tts`` with one uplink a request (a distinct ``as:up`` id each). Every run
is checked against the server's own counters: every answer 202, and every measurement and uplink
written (``burgo_device_measurements_total``, ``burgo_device_messages_total``) with no duplicate.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
from bench_entities import (
    HOST,
    Load,
    WrkResult,
    burgo_executable,
    cpu_seconds,
    free_port,
    parse_wrk,
    request,
    status_counts,
    wait_until_ready,
)

SECRET = "bench-secret"
READINGS_PER_REQUEST = 25
VALUES_PER_READING = 4
HTTP_LOAD = Load(
    "HTTP batch (100 measurements)", "", "POST", "/api/v1/devices/{device_id}/measurements", "202"
)
TTS_LOAD = Load("TTS uplink", "", "POST", "/api/v1/lorawan/tts", "202")

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
def server(synchronous: str, workdir: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``burgo serve`` with the TTS webhook on, on a free port and a new database."""
    port = free_port()
    env = {
        **os.environ,
        "BURGO_SQLITE_SYNCHRONOUS": synchronous,
        "BURGO_LOG_LEVEL": "warning",
        "BURGO_LORAWAN_TTS_SECRET": SECRET,
    }
    command = [burgo_executable(), "serve", "--host", HOST, "--port", str(port)]
    command += ["--db", str(workdir / "burgo.db"), "--config", str(workdir / "none.toml")]
    process = subprocess.Popen(command, cwd=workdir, env=env)
    try:
        wait_until_ready(port, process)
        yield process, port
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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


def counters(port: int) -> dict[str, float]:
    """The ingestion counters of /metrics."""
    status, body = request(port, "GET", "/metrics")
    if status != 200:
        sys.exit(f"bench: /metrics answered {status}")
    return {f"{m[1]}:{m[3] or ''}": float(m[4]) for m in _COUNTER.finditer(body.decode())}


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


def drive(port: int, pid: int, load: Load, script: Path, args: argparse.Namespace) -> Run:
    """One load; checked against the server's answer counts and ingestion counters."""
    answers_before, before = status_counts(port, load), counters(port)
    cpu = cpu_seconds(pid)
    output = wrk(port, script, args)
    time.sleep(1.0)  # requests still in flight when wrk stopped are answered and counted
    cpu = cpu_seconds(pid) - cpu
    answers_after, after = status_counts(port, load), counters(port)
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
    seconds = args.duration
    result = WrkResult(**{**result.__dict__, "server_cpu_us": 1e6 * cpu / max(result.requests, 1)})
    return Run(load.name, result, ok and result.clean, detail, stored / seconds)


def bench_mode(synchronous: str, args: argparse.Namespace) -> list[Run]:
    """Both loads against a new server in one synchronous mode."""
    runs = []
    with (
        tempfile.TemporaryDirectory(prefix="burgo-bench-ingest-") as tmp,
        server(synchronous, Path(tmp)) as (process, port),
    ):
        keys = seed(port, args.devices)
        warm_up(port, keys)
        measurements = Path(tmp) / "measurements.lua"
        quoted = ",".join(f'"{k}"' for k in keys)
        measurements.write_text(
            MEASUREMENTS_LUA % {"keys": quoted, "readings": READINGS_PER_REQUEST}
        )
        for attempt in range(args.repeat):
            for load in (HTTP_LOAD, TTS_LOAD):
                script = measurements
                if load is TTS_LOAD:
                    script = Path(tmp) / f"tts{attempt}.lua"
                    run_id = f"{synchronous}{attempt}{time.time_ns()}"
                    script.write_text(
                        TTS_LUA % {"devices": args.devices, "run": run_id, "secret": SECRET}
                    )
                run = drive(port, process.pid, load, script, args)
                runs.append(run)
                print(
                    f"{synchronous} {load.name}: {run.items_per_s:,.0f}/s, "
                    f"{run.wrk.requests_per_s:,.0f} req/s, p99 {run.wrk.p99_ms:.1f} ms, "
                    f"{run.detail}, {'ok' if run.stored_ok else 'FAILED'}",
                    file=sys.stderr,
                )
    return runs


def markdown(results: dict[str, list[Run]], args: argparse.Namespace) -> str:
    """The results as a Markdown table (best run of each load)."""
    lines = [
        f"{args.devices} devices, wrk -t{args.threads} -c{args.connections} -d{args.duration}s, "
        f"best of {args.repeat}.",
        "",
        "| mode | load | stored per s | requests/s | p50 ms | p99 ms | server CPU µs/req | check |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for mode, runs in results.items():
        for name in (HTTP_LOAD.name, TTS_LOAD.name):
            best = max((r for r in runs if r.load == name), key=lambda r: r.items_per_s)
            unit = "measurements" if best.load == HTTP_LOAD.name else "uplinks"
            lines.append(
                f"| {mode} | {name} | {best.items_per_s:,.0f} {unit} | "
                f"{best.wrk.requests_per_s:,.0f} | {best.wrk.p50_ms:.1f} | {best.wrk.p99_ms:.1f} | "
                f"{best.wrk.server_cpu_us:,.0f} | {best.detail} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", nargs="+", default=["FULL"], choices=["FULL", "NORMAL"])
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    results = {mode: bench_mode(mode, args) for mode in args.modes}
    print(markdown(results, args))
    failed = [r for runs in results.values() for r in runs if not r.stored_ok]
    if failed:
        print(f"bench: {len(failed)} runs lost or refused data", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
