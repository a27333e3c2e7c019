"""The server killed with SIGKILL in the middle of a stream of changes, then restarted: every
change it acknowledged reaches the receiver (at-least-once; duplicates are allowed). The receiver
is down for the second half of the stream, so at the kill many notifications are still queued."""

from __future__ import annotations

import http.client
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from tests.notify.receiver import receiver
from tests.services import burgo_serve, free_port

# Retries come quickly: a receiver that was down gets its notifications soon after.
RETRIES = {"notification_retry_min": "0.05", "notification_retry_max": "0.2"}
ENTITY = "urn:ngsi-ld:Counter:1"


def call(port: int, method: str, path: str, body: object) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, orjson.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _stream(port: int, acknowledged: list[int], sink_down: Callable[[], None]) -> None:
    """PATCH n = 1, 2, ... until the server dies; record each update it acknowledged (204)."""
    for n in range(1, 100_000):
        body = {"n": {"type": "Property", "value": n}}
        try:
            status = call(port, "PATCH", f"/ngsi-ld/v1/entities/{ENTITY}/attrs", body)
        except (OSError, http.client.HTTPException):
            return  # killed: this update was never acknowledged
        assert status == 204
        acknowledged.append(n)
        if n == 100:
            sink_down()  # from here on notifications pile up in the outbox


def test_sigkill_mid_stream_loses_no_acknowledged_notification(tmp_path: Path) -> None:
    db, port = tmp_path / "burgo.db", free_port()
    acknowledged: list[int] = []
    with receiver() as sink:
        with burgo_serve(db, port, **RETRIES) as process:
            subscription = {
                "type": "Subscription",
                "entities": [{"type": "Counter"}],
                "notification": {"endpoint": {"uri": sink.url}, "format": "keyValues"},
            }
            assert call(port, "POST", "/ngsi-ld/v1/subscriptions", subscription) == 201
            entity = {"id": ENTITY, "type": "Counter", "n": {"type": "Property", "value": 0}}
            assert call(port, "POST", "/ngsi-ld/v1/entities", entity) == 201
            acknowledged.append(0)
            writer = threading.Thread(target=_stream, args=(port, acknowledged, sink.stop))
            writer.start()
            until = time.monotonic() + 60
            while len(acknowledged) < 200 and writer.is_alive() and time.monotonic() < until:
                time.sleep(0.005)
            mid_stream = writer.is_alive()
            process.send_signal(signal.SIGKILL)  # while the writer is still sending updates
            process.wait(10)
            writer.join(10)
            assert mid_stream and len(acknowledged) >= 200, "the stream ended before the kill"
        sink.start()
        with burgo_serve(db, port, **RETRIES):
            got = sink.wait_for(
                lambda items: {d["n"] for r in items for d in r.body["data"]} >= set(acknowledged),
                timeout=30,
            )
    values = [d["n"] for r in got for d in r.body["data"]]
    missing = set(acknowledged) - set(values)
    assert not missing, f"lost notifications for {sorted(missing)}"
    first_seen = list(dict.fromkeys(values))
    assert first_seen == sorted(first_seen), "notifications of one subscription came out of order"
