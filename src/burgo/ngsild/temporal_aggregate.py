"""Aggregation of attribute instances over periods (ETSI GS CIM 009, 4.5.19), pure.

Values are aggregated per period ``[start, end)`` of ``aggrPeriodDuration`` counted from an
origin. ``totalCount`` and ``distinctCount`` count every value; ``sum``, ``avg``, ``min``, ``max``,
``stddev`` (sample standard deviation; 0 for a single value) and ``sumsq`` use the numeric values
(booleans are not numbers here) and give null in a period without any. Numeric methods are computed
from a :class:`Summary` (count, sum, min, max, sum of squares), which is also what the store's
hourly and daily rollups keep, so both paths share one definition.

>>> aggregate([(0, 1.0), (1000, 3.0)], ("avg", "max"), Duration(), 0, 2000)
{'avg': [(2.0, 0, 2000)], 'max': [(3.0, 0, 2000)]}
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from burgo.ngsild.duration import Duration

AGGR_METHODS = ("totalCount", "distinctCount", "sum", "avg", "min", "max", "stddev", "sumsq")
# The methods a numeric rollup (count, sum, min, max, sum of squares) can answer.
ROLLUP_METHODS = frozenset(AGGR_METHODS) - {"distinctCount"}
# No more periods than this in one answer (a year of minutes is 525,600).
MAX_PERIODS = 600_000

Triple = tuple[Any, int, int]


@dataclass(frozen=True, slots=True)
class Summary:
    """What numeric aggregation needs of a set of values: count, sum, min, max, sum of squares."""

    count: int = 0
    total: float = 0.0
    low: float | None = None
    high: float | None = None
    sumsq: float = 0.0

    def merge(self, other: Summary) -> Summary:
        """The summary of both sets together."""
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        assert self.low is not None and self.high is not None
        assert other.low is not None and other.high is not None
        return Summary(
            self.count + other.count,
            self.total + other.total,
            min(self.low, other.low),
            max(self.high, other.high),
            self.sumsq + other.sumsq,
        )


def is_number(value: Any) -> bool:
    """Whether ``value`` is aggregated as a number (int or finite float, never a boolean)."""
    return (type(value) is int and -(2**63) <= value < 2**63) or (
        type(value) is float and math.isfinite(value)
    )


def summarize(values: Iterable[Any]) -> Summary:
    """The summary of the numeric values among ``values``, added in order."""
    count, total, sumsq = 0, 0.0, 0.0
    low: float | None = None
    high: float | None = None
    for value in values:
        if not is_number(value):
            continue
        count += 1
        total += value
        sumsq += value * value
        low = value if low is None or value < low else low
        high = value if high is None or value > high else high
    return Summary(count, total, low, high, sumsq)


def from_summary(method: str, summary: Summary) -> Any:
    """The value of a numeric method (or totalCount of a numeric series) from its summary."""
    n = summary.count
    if method == "totalCount":
        return n
    if n == 0:
        return None
    if method == "sum":
        return summary.total
    if method == "avg":
        return summary.total / n
    if method == "min":
        return summary.low
    if method == "max":
        return summary.high
    if method == "sumsq":
        return summary.sumsq
    if method == "stddev":
        if n < 2:
            return 0.0
        return math.sqrt(max(0.0, (summary.sumsq - summary.total * summary.total / n) / (n - 1)))
    raise ValueError(f"not a numeric aggregation method: {method}")


def _distinct_key(value: Any) -> Any:
    if is_number(value):
        return float(value)
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def aggregate_values(method: str, values: Sequence[Any]) -> Any:
    """The result of one method over the values of one period."""
    if method == "totalCount":
        return len(values)
    if method == "distinctCount":
        return len({_distinct_key(v) for v in values})
    return from_summary(method, summarize(values))


def period_starts(origin: int, end: int, duration: Duration) -> list[int]:
    """Start instants of the periods from ``origin`` covering up to ``end`` (exclusive), and the
    end of the last one; a zero duration gives one period ``[origin, end)``."""
    if duration.is_zero or end <= origin:
        return [origin, max(end, origin + 1)]
    bounds = [origin]
    while bounds[-1] < end:
        nxt = duration.after(bounds[-1])
        if len(bounds) > MAX_PERIODS or nxt <= bounds[-1]:
            raise OverflowError("too many aggregation periods")
        bounds.append(nxt)
    return bounds


def aggregate(
    points: Sequence[tuple[int, Any]],
    methods: Sequence[str],
    duration: Duration,
    origin: int,
    end: int,
) -> dict[str, list[Triple]]:
    """Aggregate ``(time, value)`` points (times in ``[origin, end)``, ascending) per period:
    for each method, ``(value, period start, period end)`` for each period holding a point."""
    bounds = period_starts(origin, end, duration)
    groups: dict[int, list[Any]] = {}
    for time, value in points:
        index = bisect_right(bounds, time) - 1
        if 0 <= index < len(bounds) - 1:
            groups.setdefault(index, []).append(value)
    return {
        method: [
            (aggregate_values(method, groups[i]), bounds[i], bounds[i + 1]) for i in sorted(groups)
        ]
        for method in methods
    }
