"""The server killed with SIGKILL while uplinks stream in from several senders at once (so they
are stored in shared transactions), then restarted: every uplink it acknowledged is in the
history. Network servers do not retry an answered webhook, so an acknowledged uplink that was not
yet on disk would be lost for good."""

from __future__ import annotations

import http.client
import signal
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from tests.api.device_checks import ENVIRONMENT
from tests.services import burgo_serve, free_port

SECRET = "crash-test-secret"
DEV_EUI = "70B3D57ED0000001"
TARGET = "urn:ngsi-ld:AirQualityObserved:aq-1"
SENDERS = 4
BASE = 1_714_521_600  # 2024-05-01T00:00:00Z


def call(
    port: int, method: str, path: str, body: object = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        data = None if body is None else orjson.dumps(body)
        conn.request(method, path, data, {"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        return response.status, orjson.loads(response.read() or b"null")
    finally:
        conn.close()


def uplink(n: int) -> dict[str, Any]:
    """The ``n``-th uplink: pm25 = n, at its own second."""
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(BASE + n))
    return {
        "end_device_ids": {"device_id": "aq-1", "dev_eui": DEV_EUI},
        "correlation_ids": [f"as:up:crash-{n}"],
        "uplink_message": {"f_port": 1, "f_cnt": n, "decoded_payload": {"pm25": n},
                           "received_at": at},
    }  # fmt: skip


def _stream(port: int, first: int, acknowledged: list[int]) -> None:
    """Send uplinks first, first + 1, ... until the server dies; record each one stored."""
    for n in range(first, first + 100_000):
        try:
            status, body = call(
                port, "POST", "/api/v1/lorawan/tts", uplink(n), {"X-Burgo-Secret": SECRET}
            )
        except (OSError, http.client.HTTPException):
            return  # killed: this uplink was never acknowledged
        assert (status, body) == (202, {"result": "stored"})
        acknowledged.append(n)


def test_sigkill_loses_no_acknowledged_uplink(tmp_path: Path) -> None:
    db, port = tmp_path / "burgo.db", free_port()
    acknowledged: list[int] = []
    with burgo_serve(db, port, lorawan_tts_secret=SECRET) as process:
        device = {"id": "aq-1", "profile": "air-quality", "protocol": "lorawan", "devEUI": DEV_EUI}
        assert call(port, "POST", "/api/v1/devices", device)[0] == 201
        senders = [
            threading.Thread(target=_stream, args=(port, 1 + s * 100_000, acknowledged))
            for s in range(SENDERS)
        ]
        for sender in senders:
            sender.start()
        until = time.monotonic() + 60
        while len(acknowledged) < 300 and time.monotonic() < until:
            time.sleep(0.005)
        mid_stream = all(sender.is_alive() for sender in senders)
        process.send_signal(signal.SIGKILL)  # while every sender is still sending
        process.wait(10)
        for sender in senders:
            sender.join(10)
        assert mid_stream and len(acknowledged) >= 300, "the stream ended before the kill"
    with burgo_serve(db, port, lorawan_tts_secret=SECRET):
        link = f'<{ENVIRONMENT}>; rel="http://www.w3.org/ns/json-ld#context"'
        status, history = call(
            port,
            "GET",
            f"/ngsi-ld/v1/temporal/entities/{TARGET}?attrs=pm25&lastN=100000",
            headers={"Link": link},
        )
        assert status == 200, history
        _, device = call(port, "GET", "/api/v1/devices/aq-1")
    stored = {instance["value"] for instance in history.get("pm25", [])}
    missing = set(acknowledged) - stored
    assert not missing, f"lost acknowledged uplinks {sorted(missing)[:20]}"
    assert device["status"]["messages"] >= len(acknowledged)
