"""Background work that lives as long as the application (notification delivery, MQTT, jobs)."""

from __future__ import annotations

from typing import Protocol


class Worker(Protocol):
    """Something the application's lifespan starts after the store opens and stops before it
    closes."""

    async def start(self) -> None:
        """Begin working; return once running."""

    async def stop(self) -> None:
        """Finish or hand back in-flight work, then return."""
