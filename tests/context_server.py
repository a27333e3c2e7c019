"""A real HTTP server on 127.0.0.1 that serves JSON-LD @context documents and counts its hits."""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


@dataclass
class Route:
    """What the server answers on one path."""

    body: bytes
    status: int = 200
    content_type: str = "application/ld+json"
    delay: float = 0.0


class ContextServer:
    """Serves routes set by the test; ``hits[path]`` counts the requests for each path."""

    def __init__(self, server: ThreadingHTTPServer) -> None:
        self._server = server
        self.routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        self.stopping = threading.Event()

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def url(self, path: str) -> str:
        """The full URL of ``path`` on this server."""
        return self.base + path

    def serve_context(self, path: str, context: Any, **route: Any) -> str:
        """Serve ``{"@context": context}`` at ``path``; return its URL."""
        return self.serve(path, orjson.dumps({"@context": context}), **route)

    def serve(self, path: str, body: bytes, **route: Any) -> str:
        """Serve raw ``body`` at ``path``; return its URL."""
        self.routes[path] = Route(body=body, **route)
        return self.url(path)


def _handler(state: ContextServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits[self.path] += 1
            route = state.routes.get(self.path)
            if route is None:
                self.send_error(404)
                return
            if route.delay and state.stopping.wait(route.delay):
                return
            self.send_response(route.status)
            self.send_header("Content-Type", route.content_type)
            self.send_header("Content-Length", str(len(route.body)))
            self.end_headers()
            self.wfile.write(route.body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


@contextmanager
def context_server() -> Iterator[ContextServer]:
    """Run a :class:`ContextServer` on a free port for the duration of the block."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    server.daemon_threads = True
    state = ContextServer(server)
    server.RequestHandlerClass = _handler(state)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join()


def closed_port_url(path: str = "/context.jsonld") -> str:
    """A URL on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"
