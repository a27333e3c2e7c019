"""Store tests run on asyncio, through the anyio pytest plugin."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """Burgo serves on asyncio (uvloop), so its stores are tested there."""
    return "asyncio"
