"""An attribute's history over a period, for the entity page's charts and the downloads, read
through the same store call as the temporal API (raw for short periods, aggregated for long).

>>> PERIODS["week"].step
'PT1H'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from burgo.ngsild.duration import parse_duration
from burgo.ngsild.errors import BadRequestData, ResourceNotFound
from burgo.ngsild.temporal import Aggregation, TemporalQuery, from_millis
from burgo.store.base import HistorySelection, Store


@dataclass(frozen=True, slots=True)
class Period:
    """A chart period: how far back, and the aggregation step (None: raw values)."""

    name: str
    span_ms: int
    step: str | None


HOUR_MS = 3_600_000
PERIODS = {
    "hour": Period("hour", HOUR_MS, None),
    "day": Period("day", 24 * HOUR_MS, None),
    "week": Period("week", 7 * 24 * HOUR_MS, "PT1H"),
    "month": Period("month", 30 * 24 * HOUR_MS, "PT6H"),
}
_METHODS = ("avg", "min", "max")


@dataclass(frozen=True, slots=True)
class Series:
    """Points of one attribute: times (epoch ms) and values; min and max when aggregated."""

    entity_id: str
    attribute: str
    period: str
    aggregated: bool
    times: list[int] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)
    low: list[Any] = field(default_factory=list)
    high: list[Any] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        """One dict per point: time (and period end), value, min and max when aggregated."""
        if not self.aggregated:
            return [
                {"time": from_millis(t), "value": v}
                for t, v in zip(self.times, self.values, strict=True)
            ]
        return [
            {"time": from_millis(t), "avg": v, "min": lo, "max": hi}
            for t, v, lo, hi in zip(self.times, self.values, self.low, self.high, strict=True)
        ]

    def chart(self) -> dict[str, Any]:
        """The series for the chart script: seconds since the epoch and values."""
        return {
            "period": self.period,
            "aggregated": self.aggregated,
            "t": [t / 1000 for t in self.times],
            "v": self.values,
            "min": self.low,
            "max": self.high,
        }


def period_named(name: str) -> Period:
    """The period called ``name``; BadRequestData naming the known ones otherwise."""
    try:
        return PERIODS[name]
    except KeyError:
        known = ", ".join(PERIODS)
        raise BadRequestData(f"Unknown period {name!r}; use one of {known}") from None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


async def read_series(
    store: Store,
    tenant: str,
    entity_id: str,
    attribute: str,
    period: Period,
    *,
    now_ms: int,
    max_instances: int,
) -> Series:
    """The history of ``attribute`` (expanded) of ``entity_id`` over the last ``period``."""
    aggregation = (
        Aggregation(_METHODS, parse_duration(period.step)) if period.step is not None else None
    )
    start = now_ms - period.span_ms
    if aggregation is not None:
        # Periods that start on the hour are answered from the hourly rollups.
        start -= start % HOUR_MS
    page = await store.query_history(
        tenant,
        HistorySelection(ids=(entity_id,), attrs=frozenset({attribute})),
        TemporalQuery(start=start, timerel="after"),
        max_instances=max_instances,
        aggregation=aggregation,
    )
    if not page.entities:
        if await store.get_entity(tenant, entity_id) is None:
            raise ResourceNotFound(f"There is no entity {entity_id}")
        return Series(entity_id, attribute, period.name, aggregation is not None)
    entity = page.entities[0]
    series = Series(entity_id, attribute, period.name, aggregation is not None)
    if aggregation is None:
        points = sorted(
            (i.time, i.attribute.value)
            for i in entity.attrs.get(attribute, ())
            if i.attribute.dataset_id is None
            and i.deleted_at is None
            and _number(i.attribute.value)
        )
        series.times.extend(t for t, _ in points)
        series.values.extend(v for _, v in points)
        return series
    for aggregated in entity.aggregated.get(attribute, ()):
        if aggregated.dataset_id is not None:
            continue
        avg, low, high = (aggregated.values.get(m, []) for m in _METHODS)
        for (value, start, _end), lo, hi in zip(avg, low, high, strict=True):
            if value is None:
                continue
            series.times.append(start)
            series.values.append(value)
            series.low.append(lo[0])
            series.high.append(hi[0])
    return series
