"""A client that closes its connection halfway through a request body is its own failure: the
server counts a 400 for it, never an unexpected error (500), stores nothing, and serves on."""

from __future__ import annotations

import http.client
import socket
import time
from pathlib import Path

from tests.services import burgo_serve, free_port

ENTITY = b'{"id": "urn:ngsi-ld:Room:half", "type": "Room", "temperature": {"type": "Prop'


def metrics(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def entity_status(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:half")
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def counted(port: int, status: int) -> bool:
    labels = f'method="POST",route="/ngsi-ld/v1/entities",status="{status}"'
    line = "burgo_http_requests_total{" + labels + "}"
    return any(row.startswith(line) for row in metrics(port).splitlines())


def test_a_body_cut_short_counts_as_the_clients_error(tmp_path: Path) -> None:
    port = free_port()
    with burgo_serve(tmp_path / "burgo.db", port):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(
                b"POST /ngsi-ld/v1/entities HTTP/1.1\r\nHost: burgo\r\n"
                b"Content-Type: application/json\r\nContent-Length: 4000\r\n\r\n" + ENTITY
            )
            time.sleep(0.2)  # the server is reading the body when the connection closes
        deadline = time.monotonic() + 10
        while not counted(port, 400) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert counted(port, 400)
        assert not counted(port, 500)
        assert entity_status(port) == 404
