"""Group commit for PostgreSQL writes: the writes a process receives while its transactions are
under way are written together in the next one.

A write costs two round trips to the database and a flush of its log whatever its size, so
concurrent small writes (PATCH after PATCH) share them. Each caller is answered only once the
group's transaction has committed. A write that fails on its own (its entity is missing, its
change refuses) fails alone; when the group's transaction fails (a value the database refuses,
a conflict with another transaction), every write of the group is run again alone, so that one
bad write never fails the others and each caller gets the answer its own write deserves.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

J = TypeVar("J")

# What the group's writer answers for a job: its result, the exception it raised alone, or
# ALONE: run it again by itself.
ALONE: Any = object()
GroupWriter = Callable[[Sequence[J]], Awaitable[list[Any]]]


class GroupCommit(Generic[J]):
    """Jobs queued while groups are being written go together into the next group; at most
    ``writers`` groups are written at once (while one waits for the database to flush its log,
    the next is sent).

    >>> groups = GroupCommit(write_group)  # then: outcome = await groups.submit(job)
    """

    def __init__(self, write: GroupWriter[J], *, writers: int = 2, max_group: int = 64) -> None:
        self._write = write
        self._max_writers = writers
        self._max_group = max_group
        self._queued: list[tuple[J, asyncio.Future[Any]]] = []
        self._writers: set[asyncio.Task[None]] = set()
        self.groups = 0

    async def submit(self, job: J) -> Any:
        """The outcome of ``job`` once its group has committed: its result, or ALONE (its group
        failed: run it by itself); raises what the job raised alone."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queued.append((job, future))
        if len(self._writers) < self._max_writers:
            writer = asyncio.create_task(self._drain(), name="burgo-group-commit")
            self._writers.add(writer)
        return await future

    async def close(self) -> None:
        """Wait for the groups being written."""
        for writer in list(self._writers):
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def _drain(self) -> None:
        me = asyncio.current_task()
        try:
            while self._queued:
                group = [(job, f) for job, f in self._queued[: self._max_group] if not f.done()]
                del self._queued[: self._max_group]
                if group:
                    await self._write_group(group)
        finally:
            # Leaves the set the moment it sees nothing queued: a job queued after that starts
            # a writer of its own.
            self._writers.discard(me)
            if not self._writers:  # cancelled, the last writer: the callers go on alone
                for _, future in self._queued:
                    if not future.done():
                        future.set_result(ALONE)
                self._queued = []

    async def _write_group(self, group: list[tuple[J, asyncio.Future[Any]]]) -> None:
        self.groups += 1
        try:
            outcomes = await self._write([job for job, _ in group])
        except Exception:  # noqa: BLE001 - each job gets its own answer when run alone
            outcomes = [ALONE] * len(group)
        except BaseException:  # cancelled: the callers go on alone
            for _, future in group:
                if not future.done():
                    future.set_result(ALONE)
            raise
        for (_, future), outcome in zip(group, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
