"""The MQTT client id of the ingestion listener: derived from the database (the same for the
same one, different for another), with a slot that each running process holds and that a dead
process's successor takes again."""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from burgo.ingest.mqtt_identity import ClientIdError, ClientSlot, default_client_id
from tests.api.device_checks import device_app
from tests.ingest.test_mqtt import listener, wait_for
from tests.services import Broker

HOLDER = """
import sys, time
from pathlib import Path
from burgo.ingest.mqtt_identity import ClientSlot
slot = ClientSlot.claim(sys.argv[1], Path(sys.argv[2]))
print(slot.slot, flush=True)
time.sleep(60)
"""


def test_the_default_id_follows_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = tmp_path / "a" / "burgo.db", tmp_path / "b" / "burgo.db"
    assert default_client_id(str(a)) == default_client_id(str(a))
    assert default_client_id(str(a)) != default_client_id(str(b))
    # The same file, however it is named.
    monkeypatch.chdir(tmp_path)
    assert default_client_id("a/burgo.db") == default_client_id(str(a))
    pg = "postgresql://burgo:{}@db.example:5432/{}"
    assert default_client_id(pg.format("old", "burgo")) == default_client_id(
        pg.format("new", "burgo")
    )
    assert default_client_id(pg.format("pw", "burgo")) != default_client_id(pg.format("pw", "b2"))
    assert default_client_id(str(a), host="edge-1").startswith("burgo-edge-1-")


def hold_in_another_process(base: str, folder: Path) -> tuple[subprocess.Popen[str], int]:
    """A process holding a slot of ``base``; its slot number."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, base, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    return process, int(process.stdout.readline())


def test_live_holders_get_different_slots_and_a_dead_ones_slot_is_taken_again(
    tmp_path: Path,
) -> None:
    held = [ClientSlot.claim("burgo-x", tmp_path)]
    process, theirs = hold_in_another_process("burgo-x", tmp_path)
    try:
        held.append(ClientSlot.claim("burgo-x", tmp_path))
        assert (held[0].slot, theirs, held[1].slot) == (0, 1, 2)
        assert held[1].client_id == "burgo-x-2"
        held.append(ClientSlot.claim("burgo-y", tmp_path))
        assert held[-1].slot == 0  # another id: slots of its own
        process.send_signal(signal.SIGKILL)  # dies without a word: the kernel frees its lock
        process.wait(10)
        held.append(ClientSlot.claim("burgo-x", tmp_path))
        assert held[-1].client_id == "burgo-x-1"
        held[0].release()
        held.append(ClientSlot.claim("burgo-x", tmp_path))
        assert held[-1].slot == 0
    finally:
        for slot in held:
            slot.release()
        if process.poll() is None:
            process.kill()
            process.wait(10)
        assert process.stdout is not None
        process.stdout.close()


def test_a_slot_folder_others_may_write_in_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    with pytest.raises(ClientIdError, match="writable by other users"):
        ClientSlot.claim("burgo-x", shared)


def test_two_listeners_with_one_configured_id_take_two_sessions(
    tmp_path: Path, mqtt_broker: Broker
) -> None:
    client_id = f"burgo-test-{secrets.token_hex(4)}"
    flags = {"mqtt_url": mqtt_broker.url, "mqtt_client_id": client_id}
    first = device_app(tmp_path, **flags)
    second = device_app(tmp_path, **flags)
    one, _ = next(first)
    try:
        wait_for(listener(one).subscribed.is_set, "the first subscription")
        other, _ = next(second)
        try:
            wait_for(listener(other).subscribed.is_set, "the second subscription")
            ids = {listener(one).identifier, listener(other).identifier}
            assert ids == {f"{client_id}-0", f"{client_id}-1"}
        finally:
            next(second, None)
    finally:
        next(first, None)
    again = device_app(tmp_path, **flags)  # both stopped: slot 0 is free again
    client, _ = next(again)
    try:
        assert listener(client).identifier == f"{client_id}-0"
    finally:
        next(again, None)
