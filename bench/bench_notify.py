"""Notification benchmark: starts ``burgo serve``, subscribes a local HTTP receiver, drives updates
and measures what arrives. Run from the repository root::

    .venv/bin/python bench/bench_notify.py                  # every scenario
    .venv/bin/python bench/bench_notify.py --only latency --seconds 10
    .venv/bin/python bench/bench_notify.py --postgres private --workers 2   # on PostgreSQL

Scenarios: ``latency`` (500 updates/s, one subscription: time from each update's response to
its notification's arrival), ``throughput`` (100 subscriptions on one entity type), ``down`` (the
receiver is down for --down seconds while updates go on) and ``kill`` (SIGKILL mid-stream, then
restart). ``--postgres URL`` (or ``private``, see databases.py) runs each scenario on a new
PostgreSQL database, with ``--workers N`` worker processes. Every run checks that each
acknowledged update reached the receiver (duplicates are allowed: delivery is at-least-once);
any loss fails the run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
from databases import fresh_database, postgres_server

HOST = "127.0.0.1"
TYPE = "Meter"
WORKERS = 1
SERVER: str | None = None  # the PostgreSQL server of --postgres; None: SQLite


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve(db: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """``burgo serve`` on ``db`` (with WORKERS processes) until the block ends (or the bench
    kills it)."""
    burgo = Path(sys.executable).parent / "burgo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BURGO_")}
    env.update(BURGO_NOTIFICATION_RETRY_MIN="0.2", BURGO_NOTIFICATION_RETRY_MAX="2")
    command = [str(burgo), "serve", "--db", db, "--port", str(port), "--log-level", "warning"]
    command += ["--workers", str(WORKERS)]
    process = subprocess.Popen(
        command,
        env=env,
        start_new_session=True,
    )
    until = time.monotonic() + 30
    while True:
        try:
            socket.create_connection((HOST, port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > until:
                process.kill()
                sys.exit("bench: burgo serve did not start")
            time.sleep(0.05)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(30)


class Receiver:
    """A small asyncio HTTP/1.1 receiver: records when each (entity, n) arrives."""

    def __init__(self) -> None:
        self.arrivals: dict[tuple[str, int], float] = {}
        self.per_subscription: set[tuple[str, str, int]] = set()
        self.messages = 0
        self.up = True
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self, port: int = 0) -> None:
        """Listen on ``port`` (a free one when 0)."""
        self._server = await asyncio.start_server(self._serve, HOST, port or self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and drop open connections."""
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            self._writers.clear()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = orjson.loads(await reader.readexactly(length))
                now = time.monotonic()
                self.messages += 1
                for item in body["data"]:
                    self.arrivals.setdefault((item["id"], item["n"]), now)
                    self.per_subscription.add((body["subscriptionId"], item["id"], item["n"]))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
        except asyncio.CancelledError:
            # The run is over and its loop cancels the open connections: end quietly (asyncio
            # would otherwise log each cancelled handler as an error).
            writer.close()
        finally:
            self._writers.discard(writer)


class Client:
    """Keep-alive HTTP/1.1 connections to Burgo."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def call(self, method: str, path: str, body: object, conn: list[object]) -> int:
        """One request on the connection kept in ``conn`` (opened on first use)."""
        if not conn:
            conn.extend(await asyncio.open_connection(HOST, self.port))
        reader, writer = conn  # type: ignore[misc]
        data = orjson.dumps(body)
        writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n".encode()
            + data
        )
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                await reader.readexactly(int(line.split(b":")[1]))
        return status


async def subscribe(client: Client, receiver: Receiver, count: int) -> None:
    """``count`` subscriptions to every entity of TYPE, keyValues."""
    conn: list[object] = []
    for _ in range(count):
        body = {
            "type": "Subscription",
            "entities": [{"type": TYPE}],
            "notification": {
                "endpoint": {"uri": f"http://{HOST}:{receiver.port}/n"},
                "format": "keyValues",
            },
        }
        assert await client.call("POST", "/ngsi-ld/v1/subscriptions", body, conn) == 201


async def drive(
    client: Client, rate: float, seconds: float, entities: int, acked: dict[tuple[str, int], float]
) -> None:
    """PATCH entities at ``rate`` updates/s for ``seconds``; record each acknowledgement."""
    conns: list[list[object]] = [[] for _ in range(entities)]
    for e in range(entities):
        body = {
            "id": f"urn:ngsi-ld:{TYPE}:{e}",
            "type": TYPE,
            "n": {"type": "Property", "value": 0},
        }
        assert await client.call("POST", "/ngsi-ld/v1/entities", body, conns[e]) == 201
        acked[(body["id"], 0)] = time.monotonic()
    total = int(rate * seconds)
    start = time.monotonic()

    async def one(i: int) -> None:
        e, n = i % entities, i // entities + 1
        entity_id = f"urn:ngsi-ld:{TYPE}:{e}"
        body = {"n": {"type": "Property", "value": n}}
        try:
            status = await client.call("PATCH", f"/ngsi-ld/v1/entities/{entity_id}/attrs", body,
                                       conns[e])  # fmt: skip
        except (ConnectionError, asyncio.IncompleteReadError):
            conns[e].clear()
            return
        if status == 204:
            acked[(entity_id, n)] = time.monotonic()

    tasks: dict[int, asyncio.Task[None]] = {}
    for i in range(total):
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        e = i % entities
        previous = tasks.get(e)
        if previous is not None:
            await previous  # one request at a time per connection
        tasks[e] = asyncio.create_task(one(i))
    await asyncio.gather(*tasks.values())


async def wait_all(receiver: Receiver, acked: dict[tuple[str, int], float], limit: float) -> float:
    """Wait until every acknowledged update arrived; the time it took. Exits on a loss."""
    until = time.monotonic() + limit
    while any(key not in receiver.arrivals for key in acked):
        if time.monotonic() > until:
            lost = [k for k in acked if k not in receiver.arrivals]
            sys.exit(f"bench: LOST {len(lost)} notifications, e.g. {lost[:5]}")
        await asyncio.sleep(0.05)
    return time.monotonic()


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1)]


async def latency(seconds: float) -> None:
    """500 updates/s, one subscription: update response -> receipt latency."""
    with tempfile.TemporaryDirectory() as tmp:
        port, receiver = free_port(), Receiver()
        await receiver.start()
        with fresh_database(SERVER, Path(tmp), "notify") as db, serve(db, port):
            client, acked = Client(port), {}
            await subscribe(client, receiver, 1)
            await drive(client, 500, seconds, 50, acked)
            await wait_all(receiver, acked, 60)
        await receiver.stop()
    lat = [(receiver.arrivals[k] - t) * 1000 for k, t in acked.items() if k[1] > 0]
    ordered = sorted(((t, k) for k, t in acked.items() if k[1] > 0))
    for second in range(int(seconds)):
        chunk = [
            (receiver.arrivals[k] - t) * 1000 for t, k in ordered[second * 500 : (second + 1) * 500]
        ]
        if chunk:
            print(f"  second {second}: p99 {percentile(chunk, 99):.1f} ms")
    print(f"latency: {len(lat)} updates at 500/s, 1 subscription: p50 {percentile(lat, 50):.1f} ms"
          f", p99 {percentile(lat, 99):.1f} ms, max {max(lat):.1f} ms, lost 0")  # fmt: skip


async def throughput(seconds: float, subs: int, rate: float) -> None:
    """``subs`` subscriptions on the same entities: notifications delivered per second."""
    with tempfile.TemporaryDirectory() as tmp:
        port, receiver = free_port(), Receiver()
        await receiver.start()
        with fresh_database(SERVER, Path(tmp), "notify") as db, serve(db, port):
            client, acked = Client(port), {}
            await subscribe(client, receiver, subs)
            start = time.monotonic()
            await drive(client, rate, seconds, 20, acked)
            end = await wait_all(receiver, acked, 120)
            expected = len(acked) * subs
            while len(receiver.per_subscription) < expected and time.monotonic() < end + 60:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            end = time.monotonic()
        await receiver.stop()
    delivered = len(receiver.per_subscription)
    print(f"throughput: {subs} subscriptions, {len(acked)} updates at {rate:g}/s -> "
          f"{delivered} entity notifications (expected {expected}) in {end - start:.1f} s = "
          f"{delivered / (end - start):.0f}/s, in {receiver.messages} HTTP POSTs "
          f"({receiver.messages / (end - start):.0f}/s)")  # fmt: skip
    if delivered < expected:
        sys.exit("bench: LOST notifications in the throughput run")


async def down(seconds: float) -> None:
    """The receiver is down for ``seconds`` while 50 updates/s go on; then back."""
    with tempfile.TemporaryDirectory() as tmp:
        port, receiver = free_port(), Receiver()
        await receiver.start()
        with fresh_database(SERVER, Path(tmp), "notify") as db, serve(db, port):
            client, acked = Client(port), {}
            await subscribe(client, receiver, 1)
            await receiver.stop()
            await drive(client, 50, seconds, 10, acked)
            back = time.monotonic()
            await receiver.start(receiver.port)
            end = await wait_all(receiver, acked, 120)
        await receiver.stop()
    print(f"down: receiver down {seconds:g} s during {len(acked)} updates; all delivered "
          f"{end - back:.1f} s after it came back; lost 0")  # fmt: skip


async def kill(seconds: float) -> None:
    """SIGKILL the server mid-stream (receiver up), restart it, count every notification."""
    with tempfile.TemporaryDirectory() as tmp:
        port, receiver = free_port(), Receiver()
        await receiver.start()
        client, acked = Client(port), {}
        with fresh_database(SERVER, Path(tmp), "notify") as db:
            with serve(db, port) as process:
                await subscribe(client, receiver, 1)
                driving = asyncio.create_task(drive(client, 200, seconds, 10, acked))
                await asyncio.sleep(seconds / 2)
                os.killpg(process.pid, signal.SIGKILL)  # the workers too
                process.wait(10)
                await driving
            pending = sum(1 for k in acked if k not in receiver.arrivals)
            with serve(db, port):
                await wait_all(receiver, acked, 120)
        await receiver.stop()
    print(
        f"kill: SIGKILL after {seconds / 2:g} s at 200 updates/s; {len(acked)} acknowledged, "
        f"{pending} not yet delivered at the kill; all delivered after restart; lost 0"
    )


def main() -> None:
    """Parse the arguments and run the scenarios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--only", choices=("latency", "throughput", "down", "kill"))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--down", type=float, default=60.0, help="receiver-down seconds")
    parser.add_argument("--subscriptions", type=int, default=100)
    parser.add_argument("--rate", type=float, default=25.0, help="updates/s (throughput)")
    parser.add_argument("--postgres", metavar="URL",
                        help="a PostgreSQL server (each scenario makes a new database in it), or "
                        "'private' for a private durable cluster; default: SQLite")  # fmt: skip
    parser.add_argument("--workers", type=int, default=1, help="burgo serve --workers")
    args = parser.parse_args()
    global WORKERS, SERVER
    WORKERS = args.workers
    runs = {
        "latency": lambda: latency(args.seconds),
        "throughput": lambda: throughput(args.seconds, args.subscriptions, args.rate),
        "down": lambda: down(args.down),
        "kill": lambda: kill(args.seconds),
    }
    with postgres_server(args.postgres) as SERVER:
        for name, run in runs.items():
            if args.only in (None, name):
                asyncio.run(run())


if __name__ == "__main__":
    main()
