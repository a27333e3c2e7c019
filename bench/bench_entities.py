"""Entity API benchmark: starts ``burgo serve``, seeds entities, drives it with wrk, prints a table.

Run from the repository root (needs wrk: ``apt-get install wrk``)::

    .venv/bin/python bench/bench_entities.py              # FULL and NORMAL, 15 s per load
    .venv/bin/python bench/bench_entities.py --repeat 2 --modes FULL
    .venv/bin/python bench/bench_entities.py --modes FULL POSTGRES --postgres postgresql://...
    .venv/bin/python bench/bench_entities.py --modes POSTGRES --workers 2 --postgres postgresql://...

Every load is checked: any socket error, any non-2xx answer, or any answer other than the one the
operation should give (PATCH /attrs 204, GET 200, POST 201, counted by the server's own /metrics)
fails the run, so the figures never measure error responses.
"""

from __future__ import annotations

import argparse
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
from dataclasses import dataclass, field, replace
from pathlib import Path

import orjson

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
ENTITY_PREFIX = "urn:ngsi-ld:AirQualityObserved:bench-"
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Load:
    """One wrk load: its Lua script and the status every one of its answers must have."""

    name: str
    script: str
    method: str
    route: str
    expected_status: str


LOADS = (
    Load("PATCH /entities/{id}/attrs", "patch_attrs.lua", "PATCH",
         "/ngsi-ld/v1/entities/{entity_id}/attrs", "204"),
    Load("GET /entities/{id}", "get_entity.lua", "GET",
         "/ngsi-ld/v1/entities/{entity_id}", "200"),
    Load("POST /entities", "post_entity.lua", "POST", "/ngsi-ld/v1/entities", "201"),
)  # fmt: skip


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured."""

    requests_per_s: float
    requests: int
    p50_ms: float
    p99_ms: float
    socket_errors: int
    non_2xx: int
    unexpected_status: dict[str, float]
    server_cpu_us: float = 0.0
    database_cpu_us: float | None = None

    @property
    def clean(self) -> bool:
        """Whether every request got the answer it should have."""
        return self.socket_errors == 0 and self.non_2xx == 0 and not self.unexpected_status


@dataclass
class ModeResult:
    """The figures of one server configuration."""

    synchronous: str
    startup_s: float = 0.0
    rss_idle_mb: float = 0.0
    rss_after_mb: float = 0.0
    runs: dict[str, list[WrkResult]] = field(default_factory=dict)

    def best(self, load: str) -> WrkResult:
        """The run of ``load`` with the most requests per second."""
        return max(self.runs[load], key=lambda r: r.requests_per_s)


# -- the server ---------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def burgo_executable() -> str:
    """The ``burgo`` console script next to this Python, else the one on PATH."""
    candidate = Path(sys.executable).parent / "burgo"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("burgo")
    if found is None:
        sys.exit("bench: cannot find the burgo command; install Burgo first (make demo)")
    return found


def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    """One HTTP request on a new connection; the status and the body."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_until_ready(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Poll /version until it answers 200 (or the process dies, or time runs out)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"bench: burgo serve exited with {process.returncode} before answering")
        try:
            status, _ = request(port, "GET", "/version")
        except OSError:
            time.sleep(0.005)
            continue
        if status == 200:
            return
    sys.exit("bench: burgo serve did not answer /version in time")


@contextmanager
def running_server(
    synchronous: str, workdir: Path, db: str | None = None, workers: int = 1
) -> Iterator[tuple[subprocess.Popen[bytes], int, float]]:
    """``burgo serve`` (with ``workers`` processes) on a free port and a new SQLite database (or
    the empty PostgreSQL database ``db``); yields process, port, start-up time."""
    port = free_port()
    env = {**os.environ, "BURGO_SQLITE_SYNCHRONOUS": synchronous, "BURGO_LOG_LEVEL": "warning"}
    if db is not None:
        env["BURGO_DB"] = db
    command = [burgo_executable(), "serve", "--host", HOST, "--port", str(port)]
    command += ["--workers", str(workers)]
    command += ["--config", str(workdir / "none.toml")]
    if db is None:
        command += ["--db", str(workdir / "burgo.db")]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=workdir, env=env)
    try:
        wait_until_ready(port, process)
        while len(worker_pids(port, workers)) < workers:
            time.sleep(0.1)
        yield process, port, time.perf_counter() - started
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def processes(pid: int) -> list[int]:
    """A process and its children (the worker processes of ``burgo serve --workers``)."""
    found = [pid]
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            children = (task / "children").read_text().split()
            found += [child for text in children for child in processes(int(text))]
    except OSError:  # it ended meanwhile (a database backend whose client left)
        pass
    return found


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time used so far by a process and its children (all threads)."""
    total = 0.0
    for each in processes(pid):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile: its time is now its parent's (children's time)
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def database_pid(url: str) -> int | None:
    """The PostgreSQL server process (postmaster) behind ``url`` when it runs on this machine,
    else None: the parent of the backend that answers a connection."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        try:  # while the connection is open: its backend ends with it
            stat = Path(f"/proc/{row[0]}/stat").read_text()
        except OSError:
            return None  # another machine's backend
    return int(stat.rsplit(")", 1)[1].split()[1])


def database_cpu_seconds(pid: int) -> float:
    """CPU time of a PostgreSQL server: its processes now plus the backends that have ended."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ended = (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
    return cpu_seconds(pid) + ended


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (VmRSS), in MB."""
    total = 0.0
    for each in processes(pid):
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
    return total


# -- seeding ------------------------------------------------------------------------------------


def entity(number: int) -> dict[str, object]:
    """A Smart Data Models-like AirQualityObserved entity."""
    observed = "2024-05-01T10:00:00Z"
    return {
        "id": f"{ENTITY_PREFIX}{number:04d}",
        "type": "AirQualityObserved",
        "no2": {"type": "Property", "value": 40 + number % 50, "unitCode": "GQ",
                "observedAt": observed},
        "pm10": {"type": "Property", "value": 12.5, "unitCode": "GQ", "observedAt": observed},
        "pm25": {"type": "Property", "value": 7.25, "unitCode": "GQ", "observedAt": observed},
        "temperature": {"type": "Property", "value": 17.5, "unitCode": "CEL"},
        "relativeHumidity": {"type": "Property", "value": 0.54},
        "airQualityLevel": {"type": "Property", "value": "moderate"},
        "dateObserved": {"type": "Property", "value": {"@type": "DateTime", "@value": observed}},
        "location": {"type": "GeoProperty", "value": {
            "type": "Point", "coordinates": [-7.5 + number / 10000, 40.1 + number / 10000]}},
        "refDevice": {"type": "Relationship", "object": f"urn:ngsi-ld:Device:aq-{number:04d}"},
    }  # fmt: skip


def seed(port: int, count: int) -> None:
    """Create ``count`` entities over one keep-alive connection."""
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        for number in range(count):
            body = orjson.dumps(entity(number))
            conn.request("POST", "/ngsi-ld/v1/entities", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            text = response.read()
            if response.status != 201:
                sys.exit(f"bench: seeding entity {number} got {response.status}: {text!r}")
    finally:
        conn.close()


# -- wrk ----------------------------------------------------------------------------------------

_METRIC = re.compile(
    r'^burgo_http_requests_total\{method="(?P<method>[^"]*)",route="(?P<route>[^"]*)",'
    r'status="(?P<status>[^"]*)"\} (?P<value>\S+)$',
    re.MULTILINE,
)


_PROCESS = re.compile(r'^burgo_process\{pid="(\d+)"\} 1\.0$', re.MULTILINE)


def worker_pids(port: int, workers: int) -> dict[str, str]:
    """Each worker's /metrics by its pid: asked on new connections until every worker answered
    (the kernel hands each connection to one of them)."""
    seen: dict[str, str] = {}
    for _ in range(50 * workers):
        try:
            status, body = request(port, "GET", "/metrics")
        except OSError:
            continue
        if status != 200:
            sys.exit(f"bench: /metrics answered {status}")
        text = body.decode()
        pid = _PROCESS.search(text)
        seen[pid[1] if pid else "?"] = text
        if len(seen) >= workers:
            break
    return seen


def status_counts(port: int, load: Load, workers: int = 1) -> dict[str, float]:
    """The server's own count of answers to ``load``'s route, by status, over every worker."""
    answers = worker_pids(port, workers)
    if len(answers) < workers:
        sys.exit(f"bench: only {len(answers)} of {workers} workers answered /metrics")
    counts: dict[str, float] = {}
    for text in answers.values():
        for match in _METRIC.finditer(text):
            if match["method"] == load.method and match["route"] == load.route:
                counts[match["status"]] = counts.get(match["status"], 0) + float(match["value"])
    return counts


def _answers(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    diff = {s: after.get(s, 0.0) - before.get(s, 0.0) for s in after}
    return {s: n for s, n in diff.items() if n}


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def parse_wrk(output: str, unexpected: dict[str, float]) -> WrkResult:
    """The figures in wrk's report."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    if not (rps and total and p50 and p99):
        raise ValueError(f"cannot read wrk's report:\n{output}")
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return WrkResult(
        requests_per_s=float(rps[1]),
        requests=int(total[1]),
        p50_ms=_ms(p50[1]),
        p99_ms=_ms(p99[1]),
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        unexpected_status=unexpected,
    )


def run_wrk(
    port: int, pid: int, load: Load, args: argparse.Namespace, run_name: str, db_pid: int | None
) -> WrkResult:
    """Drive one load with wrk and check every answer was the expected one."""
    before = status_counts(port, load, args.workers)
    cpu_before = cpu_seconds(pid)
    db_before = database_cpu_seconds(db_pid) if db_pid is not None else 0.0
    script_arg = run_name if load.script == "post_entity.lua" else str(args.entities)
    command = [
        "wrk", "--latency", "-t", str(args.threads), "-c", str(args.connections),
        "-d", f"{args.duration}s", "-s", str(BENCH_DIR / load.script),
        f"http://{HOST}:{port}", "--", script_arg,
    ]  # fmt: skip
    env = {**os.environ, "BURGO_BENCH_DIR": str(BENCH_DIR)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    cpu_used = cpu_seconds(pid) - cpu_before
    db_used = database_cpu_seconds(db_pid) - db_before if db_pid is not None else None
    if done.returncode != 0:
        sys.exit(f"bench: wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    answers = _answers(before, status_counts(port, load, args.workers))
    unexpected = {s: n for s, n in answers.items() if s != load.expected_status}
    result = parse_wrk(done.stdout, unexpected)
    if answers.get(load.expected_status, 0) < result.requests:
        # wrk counted answers the server does not know it gave: the check itself is broken.
        unexpected["server counted fewer answers than wrk"] = answers.get(load.expected_status, 0)
        result = parse_wrk(done.stdout, unexpected)
    result = replace(result, server_cpu_us=1e6 * cpu_used / max(result.requests, 1))
    if db_used is not None:
        result = replace(result, database_cpu_us=1e6 * db_used / max(result.requests, 1))
    if args.verbose:
        print(done.stdout, file=sys.stderr)
    return result


# -- the whole benchmark ------------------------------------------------------------------------


def bench_mode(synchronous: str, args: argparse.Namespace) -> ModeResult:
    """Every load against a new server in one mode (a SQLite synchronous mode, or POSTGRES)."""
    result = ModeResult(synchronous)
    db = args.postgres if synchronous == "POSTGRES" else None
    db_pid = database_pid(db) if db is not None else None
    with (
        tempfile.TemporaryDirectory(prefix="burgo-bench-") as tmp,
        running_server(synchronous if db is None else "FULL", Path(tmp), db, args.workers) as (
            process,
            port,
            startup,
        ),
    ):
        result.startup_s = startup
        time.sleep(args.settle)
        result.rss_idle_mb = rss_mb(process.pid)
        seed(port, args.entities)
        for load in chosen_loads(args):
            runs = result.runs.setdefault(load.name, [])
            for attempt in range(args.repeat):
                run = run_wrk(
                    port, process.pid, load, args, f"{synchronous}{attempt}{time.time_ns()}", db_pid
                )
                runs.append(run)
                _progress(synchronous, load, run)
        time.sleep(args.settle)
        result.rss_after_mb = rss_mb(process.pid)
    return result


def _database_cpu(run: WrkResult) -> str:
    if run.database_cpu_us is None:
        return ""
    return f"database CPU {run.database_cpu_us:.0f} us/req "


def _progress(synchronous: str, load: Load, run: WrkResult) -> None:
    verdict = "ok" if run.clean else "ERRORS"
    print(
        f"  [{synchronous}] {load.name}: {run.requests_per_s:,.0f}/s "
        f"p50 {run.p50_ms:.2f} ms p99 {run.p99_ms:.2f} ms, "
        f"server CPU {run.server_cpu_us:.0f} us/req "
        f"{_database_cpu(run)}"
        f"({run.requests} requests, {verdict})",
        file=sys.stderr,
    )


def markdown(results: list[ModeResult], args: argparse.Namespace) -> str:
    """The figures as a Markdown table (best of the repeated runs)."""
    lines = [
        f"{args.connections} connections, {args.threads} wrk threads, {args.duration} s per load, "
        f"{args.entities} entities, {args.workers} server worker(s), best of {args.repeat} run(s).",
        "",
        "| store (sqlite synchronous) | figure | req/s | p50 ms | p99 ms | server CPU µs/req "
        "| database CPU µs/req | requests | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mode in results:
        for load in chosen_loads(args):
            best = mode.best(load.name)
            errors = best.socket_errors + best.non_2xx + int(sum(best.unexpected_status.values()))
            lines.append(
                f"| {mode.synchronous} | {load.name} | {best.requests_per_s:,.0f} | "
                f"{best.p50_ms:.2f} | {best.p99_ms:.2f} | {best.server_cpu_us:.0f} | "
                f"{'' if best.database_cpu_us is None else f'{best.database_cpu_us:.0f}'} | "
                f"{best.requests:,} | {errors} |"
            )
    lines += ["", "| store (sqlite synchronous) | start-up s | idle RSS MB | RSS after load MB |",
              "|---|---:|---:|---:|"]  # fmt: skip
    for mode in results:
        lines.append(
            f"| {mode.synchronous} | {mode.startup_s:.2f} | {mode.rss_idle_mb:.1f} | "
            f"{mode.rss_after_mb:.1f} |"
        )
    return "\n".join(lines)


def chosen_loads(args: argparse.Namespace) -> list[Load]:
    """The loads to run, in their usual order."""
    return [load for load in LOADS if load.method in args.loads]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line of the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds per load")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--entities", type=int, default=1000, help="entities seeded")
    parser.add_argument("--repeat", type=int, default=1, help="runs per load; the best is shown")
    parser.add_argument("--modes", nargs="+", default=["FULL", "NORMAL"],
                        choices=["FULL", "NORMAL", "POSTGRES"],
                        help="sqlite synchronous modes, or POSTGRES")  # fmt: skip
    parser.add_argument("--postgres", metavar="URL",
                        help="an empty PostgreSQL database for the POSTGRES mode")  # fmt: skip
    parser.add_argument("--workers", type=int, default=1,
                        help="burgo serve --workers (above 1: POSTGRES only)")  # fmt: skip
    parser.add_argument("--loads", nargs="+", default=["PATCH", "GET", "POST"],
                        choices=["PATCH", "GET", "POST"], help="the loads to run")  # fmt: skip
    parser.add_argument("--settle", type=float, default=2.0, help="idle seconds before RSS")
    parser.add_argument("--verbose", action="store_true", help="print wrk's reports")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit status 1 when any request got a wrong answer."""
    args = parse_args(argv)
    if "POSTGRES" in args.modes and not args.postgres:
        sys.exit("bench: the POSTGRES mode needs --postgres URL (an empty database)")
    if shutil.which("wrk") is None:
        sys.exit("bench: wrk is not installed (apt-get install wrk)")
    results = [bench_mode(mode, args) for mode in args.modes]
    print(markdown(results, args))
    dirty = [
        f"{mode.synchronous} {name}: {run}"
        for mode in results
        for name, runs in mode.runs.items()
        for run in runs
        if not run.clean
    ]
    for line in dirty:
        print(f"bench: errors in {line}", file=sys.stderr)
    return 1 if dirty else 0


if __name__ == "__main__":
    sys.exit(main())
