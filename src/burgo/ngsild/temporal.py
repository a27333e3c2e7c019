"""The temporal evolution of entities (ETSI GS CIM 009, 4.5.7, 4.5.9, 4.5.19, 4.11): queries
over time and the three temporal representations, pure.

Times are epoch milliseconds inside Burgo and canonical NGSI-LD DateTimes at the edges. Every time
range is half-open: ``before`` is ``t < timeAt``, ``after`` is ``t >= timeAt`` and ``between`` is
``timeAt <= t < endTimeAt``.

>>> q = parse_temporal_query({"timerel": "before", "timeAt": "2024-01-01T00:00:00Z"})
>>> q.end
1704067200000
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any

from burgo.ngsild.context import Context
from burgo.ngsild.duration import Duration, parse_duration
from burgo.ngsild.errors import BadRequestData
from burgo.ngsild.geoquery import GeoQuery, geo_matches
from burgo.ngsild.model import Attribute, AttrKind, Entity, JsonValue
from burgo.ngsild.qmatch import And, Or, QExpr, evaluate
from burgo.ngsild.render import Format, RenderOptions, render_attribute
from burgo.ngsild.temporal_aggregate import AGGR_METHODS, Triple
from burgo.ngsild.times import format_datetime, parse_datetime

NGSI_LD_NULL = "urn:ngsi-ld:null"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The key of the value list of each kind in the simplified temporal representation (4.5.9).
TEMPORAL_VALUES_KEYS = {
    AttrKind.PROPERTY: "values",
    AttrKind.GEO_PROPERTY: "values",
    AttrKind.RELATIONSHIP: "objects",
    AttrKind.LANGUAGE_PROPERTY: "languageMaps",
    AttrKind.VOCAB_PROPERTY: "vocabs",
    AttrKind.JSON_PROPERTY: "jsons",
    AttrKind.LIST_PROPERTY: "valueLists",
    AttrKind.LIST_RELATIONSHIP: "objectLists",
}


class TimeProperty(StrEnum):
    """Which time of an instance a temporal query looks at."""

    OBSERVED_AT = "observedAt"
    CREATED_AT = "createdAt"
    MODIFIED_AT = "modifiedAt"
    DELETED_AT = "deletedAt"


class TemporalFormat(StrEnum):
    """The temporal representations."""

    NORMALIZED = "normalized"
    TEMPORAL_VALUES = "temporalValues"
    AGGREGATED_VALUES = "aggregatedValues"


def to_millis(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def from_millis(epoch_ms: int) -> str:
    """The canonical NGSI-LD DateTime of epoch milliseconds."""
    # Arithmetic on the time of day and a cached date: several times faster than datetime, and
    # history answers format thousands of these.
    day, rest = divmod(epoch_ms, 86_400_000)
    seconds, millis = divmod(rest, 1000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{_date(day)}T{hour:02d}:{minute:02d}:{second:02d}.{millis:03d}Z"


@lru_cache(maxsize=4096)
def _date(day: int) -> str:
    return format_datetime(_EPOCH + timedelta(days=day))[:10]


def millis_of(text: str, what: str = "DateTime") -> int:
    """Epoch milliseconds of a client's DateTime (BadRequestData naming ``what``)."""
    return to_millis(parse_datetime(text, what))


@dataclass(frozen=True, slots=True)
class TemporalQuery:
    """Which instances: a time range ``[start, end)`` (None = open) on ``timeproperty``, and
    ``last_n`` (only the most recent N per attribute instance series)."""

    start: int | None = None
    end: int | None = None
    timeproperty: TimeProperty = TimeProperty.OBSERVED_AT
    last_n: int | None = None
    timerel: str | None = None


@dataclass(frozen=True, slots=True)
class Aggregation:
    """The aggregated representation asked for: methods and period duration."""

    methods: tuple[str, ...]
    duration: Duration = field(default_factory=Duration)


def _positive_int(raw: Any, name: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise BadRequestData(f"{name} must be a positive integer, got {raw!r}")
    text = str(raw)
    if not text.isdigit() or int(text) < 1:
        raise BadRequestData(f"{name} must be a positive integer, got {raw!r}")
    return int(text)


def parse_temporal_query(params: Mapping[str, Any]) -> TemporalQuery:
    """The temporal query of parameters: timerel, timeAt, endTimeAt, timeproperty, lastN."""
    timerel = params.get("timerel")
    raw_at, raw_end = params.get("timeAt"), params.get("endTimeAt")
    prop = params.get("timeproperty", "observedAt")
    try:
        timeproperty = TimeProperty(prop)
    except ValueError:
        known = ", ".join(t.value for t in TimeProperty)
        raise BadRequestData(f"Unknown timeproperty {prop!r}; use one of {known}") from None
    last_n = _positive_int(params["lastN"], "lastN") if params.get("lastN") is not None else None
    if timerel is None:
        if raw_at is not None or raw_end is not None:
            raise BadRequestData("timeAt and endTimeAt need timerel (before, after or between)")
        return TemporalQuery(timeproperty=timeproperty, last_n=last_n)
    if timerel not in ("before", "after", "between"):
        raise BadRequestData(f"Unknown timerel {timerel!r}; use before, after or between")
    if raw_at is None:
        raise BadRequestData(f"timerel={timerel} needs timeAt")
    at = millis_of(raw_at, "timeAt")
    if timerel == "between":
        if raw_end is None:
            raise BadRequestData("timerel=between needs endTimeAt")
        end = millis_of(raw_end, "endTimeAt")
        if end <= at:
            raise BadRequestData("endTimeAt must be later than timeAt")
        return TemporalQuery(at, end, timeproperty, last_n, timerel)
    if raw_end is not None:
        raise BadRequestData(f"endTimeAt only goes with timerel=between, not {timerel}")
    if timerel == "before":
        return TemporalQuery(None, at, timeproperty, last_n, timerel)
    return TemporalQuery(at, None, timeproperty, last_n, timerel)


def parse_aggregation(methods: str | None, period: str | None) -> Aggregation:
    """The aggregation of ``aggrMethods`` (required) and ``aggrPeriodDuration`` (default PT0S)."""
    if not methods:
        raise BadRequestData(
            f"The aggregated representation needs aggrMethods ({', '.join(AGGR_METHODS)})"
        )
    names = tuple(dict.fromkeys(m.strip() for m in methods.split(",")))
    unknown = [m for m in names if m not in AGGR_METHODS]
    if unknown:
        raise BadRequestData(
            f"Unknown aggrMethods {', '.join(unknown)}; known: {', '.join(AGGR_METHODS)}"
        )
    duration = parse_duration(period) if period else Duration()
    return Aggregation(names, duration)


def filter_attributes(q: QExpr | None, geo: GeoQuery | None) -> frozenset[str]:
    """The (expanded) attribute names a temporal query's q and geo-query look at."""
    names: set[str] = set()
    pending: list[QExpr] = [q] if q is not None else []
    while pending:
        expr = pending.pop()
        if isinstance(expr, And | Or):
            pending.extend(expr.items)
        elif expr.path.attr is not None:
            names.add(expr.path.attr)
    if geo is not None:
        names.add(geo.geoproperty)
    return frozenset(names)


def history_matches(
    q: QExpr | None,
    geo: GeoQuery | None,
    entity_id: str,
    types: tuple[str, ...],
    instances: Mapping[str, list[Attribute]],
    created_at: str | None = None,
) -> bool:
    """Whether an entity's history in a time range passes a temporal query's q and geo-query.

    Every instance recorded in the range counts, as if the entity held them all at once: a term
    matches when some instance satisfies it (``temperature>30``: above 30 at some moment), a
    geo-query when some recorded location does, ``!attr`` when the range holds no instance.

    >>> history_matches(None, None, "urn:x:1", ("https://example.org/Room",), {})
    True
    """
    entity = Entity(
        entity_id,
        types,
        {name: tuple(found) for name, found in instances.items() if found},
        created_at=created_at,
    )
    if q is not None and not evaluate(q, entity):
        return False
    return geo is None or geo_matches(geo, entity)


@dataclass(frozen=True, slots=True)
class TemporalInstance:
    """One recorded instance of an attribute: its value and metadata, id and times.

    ``attribute`` carries observedAt (when the writer gave one), datasetId and the system times
    createdAt/modifiedAt; ``deleted_at`` marks the record of a deletion.
    """

    attribute: Attribute
    instance_id: str
    time: int
    deleted_at: str | None = None


@dataclass(frozen=True, slots=True)
class AggregatedSeries:
    """The aggregated values of one attribute instance series (one datasetId)."""

    kind: AttrKind
    dataset_id: str | None
    values: Mapping[str, list[Triple]]


@dataclass(frozen=True, slots=True)
class TemporalEntity:
    """An entity's temporal evolution: per attribute, its instances (or aggregated series)."""

    id: str
    types: tuple[str, ...]
    attrs: Mapping[str, tuple[TemporalInstance, ...]] = field(default_factory=dict)
    aggregated: Mapping[str, tuple[AggregatedSeries, ...]] = field(default_factory=dict)
    created_at: str | None = None
    deleted_at: str | None = None


def _instance_doc(
    instance: TemporalInstance, ctx: Context, options: RenderOptions
) -> dict[str, JsonValue]:
    attr = instance.attribute
    if attr.kind == AttrKind.PROPERTY and not attr.sub and instance.deleted_at is None:
        # The common case (a measurement), rendered directly: history answers hold thousands.
        doc: dict[str, JsonValue] = {"type": "Property", "value": attr.value}
        if attr.dataset_id is not None:
            doc["datasetId"] = attr.dataset_id
        if attr.observed_at is not None:
            doc["observedAt"] = attr.observed_at
        if attr.unit_code is not None:
            doc["unitCode"] = attr.unit_code
        if options.sys_attrs:
            doc["createdAt"], doc["modifiedAt"] = attr.created_at, attr.modified_at
        doc["instanceId"] = instance.instance_id
        return doc
    if instance.deleted_at is not None:
        attr = replace(attr, value=NGSI_LD_NULL, sub={})
    out = render_attribute((attr,), ctx, options)
    assert isinstance(out, dict)
    out["instanceId"] = instance.instance_id
    if instance.deleted_at is not None:
        out["deletedAt"] = instance.deleted_at
    return out


def _time_of(instance: TemporalInstance) -> str:
    return from_millis(instance.time)


def render_temporal_entity(
    entity: TemporalEntity,
    ctx: Context,
    fmt: TemporalFormat,
    *,
    sys_attrs: bool = False,
    lang: tuple[tuple[str, float], ...] | None = None,
) -> dict[str, JsonValue]:
    """The entity in a temporal representation (without @context)."""
    types = [ctx.compact(t) for t in entity.types]
    out: dict[str, JsonValue] = {"id": entity.id, "type": types[0] if len(types) == 1 else types}
    options = RenderOptions(format=Format.NORMALIZED, sys_attrs=sys_attrs, lang=lang)
    if fmt == TemporalFormat.AGGREGATED_VALUES:
        for name, series in entity.aggregated.items():
            out[ctx.compact(name)] = _one_or_many([_aggregated_doc(s) for s in series])
    else:
        for name, instances in entity.attrs.items():
            if fmt == TemporalFormat.NORMALIZED:
                out[ctx.compact(name)] = [_instance_doc(i, ctx, options) for i in instances]
            else:
                out[ctx.compact(name)] = _one_or_many(_values_docs(instances, ctx, options))
    if sys_attrs:
        if entity.created_at:
            out["createdAt"] = entity.created_at
        if entity.deleted_at:
            out["deletedAt"] = entity.deleted_at
    return out


def _one_or_many(docs: list[dict[str, JsonValue]]) -> JsonValue:
    return docs[0] if len(docs) == 1 else docs


def _values_docs(
    instances: tuple[TemporalInstance, ...], ctx: Context, options: RenderOptions
) -> list[dict[str, JsonValue]]:
    by_dataset: dict[str | None, dict[str, JsonValue]] = {}
    for instance in instances:
        attr = instance.attribute
        doc = by_dataset.get(attr.dataset_id)
        kind = attr.kind
        if options.lang is not None and kind == AttrKind.LANGUAGE_PROPERTY:
            kind = AttrKind.PROPERTY
        if doc is None:
            doc = {"type": kind.value, TEMPORAL_VALUES_KEYS[kind]: []}
            if attr.dataset_id is not None:
                doc["datasetId"] = attr.dataset_id
            by_dataset[attr.dataset_id] = doc
        rendered = render_attribute((attr,), ctx, options)
        assert isinstance(rendered, dict)
        value = NGSI_LD_NULL if instance.deleted_at else rendered.get(attr.kind.value_key)
        if kind != attr.kind:
            value = rendered.get("value")
        doc[TEMPORAL_VALUES_KEYS[kind]].append([value, _time_of(instance)])
    return list(by_dataset.values())


def _aggregated_doc(series: AggregatedSeries) -> dict[str, JsonValue]:
    doc: dict[str, JsonValue] = {"type": series.kind.value}
    if series.dataset_id is not None:
        doc["datasetId"] = series.dataset_id
    for method, triples in series.values.items():
        doc[method] = [[v, from_millis(s), from_millis(e)] for v, s, e in triples]
    return doc
