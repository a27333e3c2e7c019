"""The MQTT client id of an ingestion listener: the same after a restart, so the broker hands the
restarted process the session its predecessor left (the messages it had sent but not had
acknowledged, and those queued since), and never that of another running process.

The id is ``<base>-<slot>``. The base is the setting ``mqtt_client_id``, by default
``burgo-<host>-<digest of the database>``, so Burgos with different databases never share a
session. The slot is the lowest number whose lock file (``slot-<n>.lock`` in a runtime folder
named after the base) this process could lock: each of ``burgo serve --workers N`` holds one of
0..N-1 while it lives, the kernel frees it when the process dies, however it dies, and the next
process takes it again. A base already held on this host by a running process leaves the
next slot, not an error: a second ``burgo serve`` on the same database, or a new one started
before the old one stopped, gets a session of its own.

>>> default_client_id("postgresql://burgo:secret@db:5432/burgo", host="edge-1")
'burgo-edge-1-69c626fe'
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import socket
import stat
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

MAX_SLOTS = 1024  # processes on one host with one client id, at most
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class ClientIdError(Exception):
    """No client slot can be taken (the runtime folder is unusable, or every slot is held)."""


def default_client_id(db: str, *, host: str | None = None) -> str:
    """``burgo-<host>-<8 hex digits>`` of the database a server uses: a SQLite file by its
    absolute path, a PostgreSQL database by its URL without the password."""
    if db.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(db)
        netloc = parts.hostname or ""
        if parts.username:
            netloc = f"{parts.username}@{netloc}"
        if parts.port:
            netloc = f"{netloc}:{parts.port}"
        where = urlunsplit(("postgresql", netloc, parts.path, parts.query, ""))
    else:
        where = str(Path(db).expanduser().resolve())
    digest = hashlib.sha256(where.encode()).hexdigest()[:8]
    name = _UNSAFE.sub("-", host if host is not None else socket.gethostname())[:40]
    return f"burgo-{name}-{digest}"


def runtime_folder() -> Path:
    """Where the slot locks live: ``$XDG_RUNTIME_DIR/burgo``, else ``<tmp>/burgo-<uid>``; a
    folder only this user may enter."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "burgo"
    return Path(tempfile.gettempdir()) / f"burgo-{os.geteuid()}"


class ClientSlot:
    """A slot of a client id, held (by an open, locked file) until :meth:`release` or death."""

    def __init__(self, base: str, slot: int, fd: int) -> None:
        self.base = base
        self.slot = slot
        self._fd: int | None = fd

    @property
    def client_id(self) -> str:
        """The MQTT client id: the base and the slot."""
        return f"{self.base}-{self.slot}"

    @classmethod
    def claim(cls, base: str, folder: Path | None = None) -> ClientSlot:
        """Hold the lowest free slot of ``base`` (0, 1, ...); ClientIdError when none can be."""
        where = _private_folder(folder or runtime_folder()) / f"mqtt-{_UNSAFE.sub('_', base)}"
        _private_folder(where)
        for slot in range(MAX_SLOTS):
            path = where / f"slot-{slot}.lock"
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            except OSError as exc:
                raise ClientIdError(f"cannot open the MQTT client slot {path}: {exc}") from exc
            try:
                # Per open file: another listener of this very process cannot take it either.
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            except OSError as exc:
                os.close(fd)
                raise ClientIdError(f"cannot lock the MQTT client slot {path}: {exc}") from exc
            return cls(base, slot, fd)
        raise ClientIdError(
            f"all {MAX_SLOTS} MQTT client slots of {base!r} are held by running processes "
            f"(locks in {where})"
        )

    def release(self) -> None:
        """Give the slot back (closing the file unlocks it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _private_folder(path: Path) -> Path:
    """``path``, created if need be, checked to be a folder of this user's that nobody else may
    write in (lock files in a shared folder could be held by anyone)."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(path)
    except OSError as exc:
        raise ClientIdError(f"cannot create the MQTT client slot folder {path}: {exc}") from exc
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise ClientIdError(f"{path} is not a folder of this user's")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ClientIdError(f"{path} is writable by other users")
    return path
