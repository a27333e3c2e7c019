"""The server killed with SIGKILL in the middle of a stream of changes, then restarted: every
change it acknowledged reaches the receiver (at-least-once; duplicates are allowed). The receiver
is down for the second half of the stream, so at the kill many notifications are still queued."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson

from tests.notify.receiver import receiver
from tests.services import free_port, wait_for_port

ENTITY = "urn:ngsi-ld:Counter:1"


@contextmanager
def serve(db: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """``burgo serve`` as a separate process, until the block ends (or the test kills it)."""
    burgo = Path(sys.executable).parent / "burgo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BURGO_")}
    env["BURGO_NOTIFICATION_RETRY_MIN"] = "0.05"
    env["BURGO_NOTIFICATION_RETRY_MAX"] = "0.2"
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
        with serve(db, port) as process:
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
        with serve(db, port):
            got = sink.wait_for(
                lambda items: {d["n"] for r in items for d in r.body["data"]} >= set(acknowledged),
                timeout=30,
            )
    values = [d["n"] for r in got for d in r.body["data"]]
    missing = set(acknowledged) - set(values)
    assert not missing, f"lost notifications for {sorted(missing)}"
    first_seen = list(dict.fromkeys(values))
    assert first_seen == sorted(first_seen), "notifications of one subscription came out of order"
