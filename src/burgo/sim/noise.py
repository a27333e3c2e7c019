"""Deterministic randomness: the same seed, key and step always give the same number.

>>> unit(7, "aq-01", 3) == unit(7, "aq-01", 3), 0.0 <= unit(7, "aq-01", 3) < 1.0
(True, True)
"""

from __future__ import annotations

import math
import zlib
from functools import lru_cache

_MASK = (1 << 64) - 1


@lru_cache(maxsize=4096)
def key_of(text: str) -> int:
    """A stable integer for a name (Python's own ``hash`` changes between runs)."""
    return zlib.crc32(text.encode())


def _mix(value: int) -> int:
    # splitmix64's finaliser: a cheap, well-spread integer hash.
    value = (value + 0x9E3779B97F4A7C15) & _MASK
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK
    return value ^ (value >> 31)


def unit(seed: int, key: str | int, step: int) -> float:
    """A uniform number in [0, 1) for (seed, key, step)."""
    k = key if isinstance(key, int) else key_of(key)
    return _mix((seed * 0x100000001B3) ^ (k << 20) ^ _mix(step & _MASK)) / 2.0**64


def signed(seed: int, key: str | int, step: int) -> float:
    """A uniform number in [-1, 1) for (seed, key, step)."""
    return 2.0 * unit(seed, key, step) - 1.0


def smooth(seed: int, key: str | int, x: float) -> float:
    """Smooth value noise in [-1, 1]: random at whole ``x``, eased in between."""
    i = math.floor(x)
    f = x - i
    ease = f * f * (3.0 - 2.0 * f)
    a = signed(seed, key, i)
    b = signed(seed, key, i + 1)
    return a + (b - a) * ease
