"""A real local HTTP receiver of notifications, on a free port, for the tests and benchmarks."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


@dataclass(frozen=True)
class Received:
    """One notification as the receiver got it."""

    path: str
    headers: dict[str, str]
    body: Any
    at: float


class Receiver:
    """Collects POSTed notifications; answers ``status`` (200 unless told otherwise)."""

    def __init__(self, port: int = 0) -> None:
        self.received: list[Received] = []
        self.status = 200
        self._changed = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()
        self.port = port

    @property
    def url(self) -> str:
        """Where to send notifications."""
        return f"http://127.0.0.1:{self.port}/notify"

    def start(self) -> None:
        """Listen (again, on the same port once it had one)."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                receiver._connections.add(self.connection)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                status = receiver.status
                if status < 300:
                    item = Received(
                        self.path,
                        {k.lower(): v for k, v in self.headers.items()},
                        orjson.loads(raw),
                        time.monotonic(),
                    )
                    with receiver._changed:
                        receiver.received.append(item)
                        receiver._changed.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Stop listening: deliveries now fail with connection refused."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for connection in list(self._connections):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()
        self._connections.clear()

    def wait_for(
        self, predicate: Callable[[list[Received]], bool], timeout: float = 10.0
    ) -> list[Received]:
        """Wait until the notifications received satisfy ``predicate``; fail after ``timeout``."""
        with self._changed:
            done = self._changed.wait_for(lambda: predicate(self.received), timeout)
            assert done, f"after {timeout} s the receiver has {len(self.received)}: {self.received}"
            return list(self.received)

    def wait_count(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Wait for at least ``count`` notifications."""
        return self.wait_for(lambda got: len(got) >= count, timeout)

    def wait_items(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Wait for at least ``count`` entities in the notifications' data (changes already
        queued together arrive as one notification)."""
        return self.wait_for(lambda got: sum(len(r.body["data"]) for r in got) >= count, timeout)

    def clear(self) -> None:
        """Forget what was received."""
        with self._changed:
            self.received.clear()


@contextmanager
def receiver() -> Iterator[Receiver]:
    """A receiver listening on a free port until the block ends."""
    found = Receiver()
    found.start()
    try:
        yield found
    finally:
        found.stop()
