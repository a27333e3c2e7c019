"""The single SQLite writer: one thread, fed by a queue, committing jobs in groups.

Each job runs inside its own SAVEPOINT, so one failing job never spoils the others of its group;
the group commits once, and only then are the callers told their writes succeeded.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)

Job = Callable[[sqlite3.Connection], T]


@dataclass(slots=True)
class _Pending(Generic[T]):
    job: Job[T]
    future: asyncio.Future[T]
    loop: asyncio.AbstractEventLoop


_STOP = object()


class SqliteWriter:
    """Runs write jobs on one connection in one thread, committing them in groups."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], *, max_group: int = 512) -> None:
        self._connect = connect
        self._max_group = max_group
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.commits = 0
        self.jobs = 0

    def start(self) -> None:
        """Start the writer thread."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                conn = self._connect()
            except BaseException as exc:  # noqa: BLE001 - handed to start()'s caller
                failure.append(exc)
                ready.set()
                return
            ready.set()
            try:
                self._loop(conn)
            finally:
                conn.close()

        self._thread = threading.Thread(target=run, name="burgo-sqlite-writer", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]

    def stop(self) -> None:
        """Finish the queued jobs, then stop the thread."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None

    @property
    def depth(self) -> int:
        """Jobs waiting to be written."""
        return self._queue.qsize()

    def submit(self, job: Job[T]) -> asyncio.Future[T]:
        """Queue a job; the future resolves once its group is committed."""
        if self._thread is None:
            raise RuntimeError("the SQLite writer is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Pending(job, future, loop))
        return future

    def _loop(self, conn: sqlite3.Connection) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            group = [first]
            stop = False
            while len(group) < self._max_group:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                group.append(item)
            self._write_group(conn, group)
            if stop:
                return

    def _write_group(self, conn: sqlite3.Connection, group: list[_Pending[Any]]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for pending in group:
                conn.execute("SAVEPOINT job")
                try:
                    result = pending.job(conn)
                except Exception as exc:  # noqa: BLE001 - the job's own error, given back to it
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    outcomes.append((False, exc))
                else:
                    conn.execute("RELEASE job")
                    outcomes.append((True, result))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            log.error("SQLite write group of %d failed: %s", len(group), exc)
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            outcomes = [(False, exc)] * len(group)
        self.commits += 1
        self.jobs += len(group)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for pending, (ok, value) in zip(group, outcomes, strict=True):
            by_loop.setdefault(pending.loop, []).append((pending.future, ok, value))
        for loop, results in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, results)
            except RuntimeError:
                log.warning("A write finished after its event loop closed")


def _deliver(results: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in results:
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
