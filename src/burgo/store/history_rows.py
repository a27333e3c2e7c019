"""What both backends' history shares: how an instance is stored (its document without the
columns a row holds), which instances an entity write records, instance ids, and which rollup
grain answers an aggregation. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from burgo.ngsild.duration import DAY, HOUR
from burgo.ngsild.model import EMPTY, Attribute, AttrKind, Entity, attribute_from_storage
from burgo.ngsild.temporal import (
    Aggregation,
    TemporalEntity,
    TemporalInstance,
    TemporalQuery,
    TimeProperty,
    from_millis,
    millis_of,
)
from burgo.ngsild.temporal_aggregate import ROLLUP_METHODS
from burgo.store.temporal import ALL_TYPES

GRAINS = (HOUR, DAY)
# The shape of a row that records a deletion (its doc holds the attribute's kind).
DELETED = -1
PLAIN: dict[str, Any] = {"type": "Property"}
_INSTANCE = "urn:ngsi-ld:Instance:"


@dataclass(frozen=True, slots=True)
class Series:
    """One stored series: an attribute instance (datasetId) of an entity."""

    id: int
    entity_id: str
    attr: str
    dataset_id: str | None
    kind: AttrKind
    mixed: bool


@dataclass(frozen=True, slots=True)
class EntityRow:
    """An entity that has history."""

    id: str
    types: tuple[str, ...]
    created_at: int
    deleted_at: int | None


class Memo:
    """What one transaction's history writes learn once: DateTimes parsed, shape ids checked."""

    def __init__(self) -> None:
        self.shapes: dict[str, int] = {}
        # How a numeric Property with no sub-attribute nor objectType is encoded, by unit code.
        self.units: dict[str | None, tuple[int | None, str | None]] = {}
        self._millis: dict[str, int] = {}

    def millis(self, text: str, what: str = "observedAt") -> int:
        """Epoch milliseconds of a DateTime, parsed once per transaction."""
        found = self._millis.get(text)
        if found is None:
            found = self._millis[text] = millis_of(text, what)
        return found


def recorded_at(attr: Attribute, now: int) -> int:
    """When an imported instance was recorded (epoch ms): its modifiedAt if it has one."""
    return millis_of(attr.modified_at) if attr.modified_at is not None else now


def history_doc(attr: Attribute, top: bool, *, with_value: bool = True) -> dict[str, Any]:
    """The stored form of an instance without system times (nor observedAt and datasetId at the
    top, which the row's columns and series hold)."""
    doc: dict[str, Any] = {"type": attr.kind.value}
    if with_value:
        doc[attr.kind.value_key] = attr.value
    if not top:
        if attr.dataset_id is not None:
            doc["datasetId"] = attr.dataset_id
        if attr.observed_at is not None:
            doc["observedAt"] = attr.observed_at
    if attr.unit_code is not None:
        doc["unitCode"] = attr.unit_code
    if attr.object_type is not None:
        doc["objectType"] = attr.object_type
    for name, sub in attr.sub.items():
        doc[name] = history_doc(sub, False)
    return doc


def changed_instances(
    before: Entity | None, after: Entity
) -> tuple[list[tuple[str, Attribute]], list[tuple[str, Attribute]]]:
    """The attribute instances an entity write changed (new values) and removed."""
    changed = []
    old_attrs = before.attrs if before is not None else EMPTY
    for name, instances in after.attrs.items():
        old_instances = old_attrs.get(name, ())
        if old_instances is instances:  # an attribute the write left alone
            continue
        if len(instances) == 1 and len(old_instances) == 1:  # most attributes: one instance
            attr, old = instances[0], old_instances[0]
            if old.dataset_id == attr.dataset_id:
                if old != attr:
                    changed.append((name, attr))
                continue
        for attr in instances:
            old = next((o for o in old_instances if o.dataset_id == attr.dataset_id), None)
            if old is None or (old is not attr and old != attr):
                changed.append((name, attr))
    deleted = []
    if before is not None:
        new_attrs = after.attrs
        for name, instances in before.attrs.items():
            new_instances = new_attrs.get(name, ())
            if new_instances is instances:
                continue
            kept = {a.dataset_id for a in new_instances}
            deleted += [(name, a) for a in instances if a.dataset_id not in kept]
    return changed, deleted


def instance_id(series: int, t: int, seq: int) -> str:
    """The instanceId of a history row: stable while the row exists."""
    return f"{_INSTANCE}{series}.{t}.{seq}"


def parse_instance_id(text: str) -> tuple[int, int, int] | None:
    """The (series, t, seq) key named by an instanceId, or None when it names none."""
    if not text.startswith(_INSTANCE):
        return None
    parts = text[len(_INSTANCE) :].split(".")
    try:
        series, t, seq = (int(p) for p in parts)
    except ValueError:
        return None
    return series, t, seq


def filter_window(query: TemporalQuery | None) -> TemporalQuery:
    """The instances a filter looks at: every one in the range (lastN does not narrow it;
    deletion records hold no values, so a deletedAt query filters on recorded values)."""
    if query is None:
        return TemporalQuery()
    prop = query.timeproperty
    if prop == TimeProperty.DELETED_AT:
        prop = TimeProperty.MODIFIED_AT
    return TemporalQuery(query.start, query.end, prop)


def rollup_grain(series: Series, query: TemporalQuery, aggregation: Aggregation) -> int | None:
    """The rollup grain that answers this aggregation exactly, if any."""
    if series.mixed or query.timeproperty != TimeProperty.OBSERVED_AT:
        return None
    if not set(aggregation.methods) <= ROLLUP_METHODS or query.start is None:
        return None
    duration = aggregation.duration
    for grain in (DAY, HOUR):
        if duration.months and grain != DAY:
            continue
        bounds_ok = query.start % grain == 0 and (query.end is None or query.end % grain == 0)
        if bounds_ok and duration.millis % grain == 0:
            return grain
    return None


def raw_days(
    policies: Mapping[tuple[str, str], int],
    tenant: str,
    types: Sequence[str],
    default: int | None,
) -> int | None:
    """Days of raw history an entity keeps: the longest policy of its types, else the
    tenant's default policy, else ``default`` (None: kept for ever)."""
    matching = [policies[(tenant, t)] for t in types if (tenant, t) in policies]
    if matching:
        return max(matching)
    return policies.get((tenant, ALL_TYPES), default)


def temporal_entity(
    row: EntityRow, attrs: Mapping[str, list[Any]], aggregated: bool
) -> TemporalEntity:
    """The temporal entity of an entity row with its instances (or aggregated series)."""
    frozen = {name: tuple(items) for name, items in attrs.items()}
    return TemporalEntity(
        id=row.id,
        types=row.types,
        attrs={} if aggregated else frozen,
        aggregated=frozen if aggregated else {},
        created_at=from_millis(row.created_at),
        deleted_at=from_millis(row.deleted_at) if row.deleted_at is not None else None,
    )


def time_filter(query: TemporalQuery, mark: str) -> tuple[str, str, list[Any]]:
    """The SQL condition, sort key and arguments of the query's range on its time property,
    over history rows ``h``, with the backend's placeholder ``mark`` (``?`` or ``%s``)."""
    if query.timeproperty in (TimeProperty.CREATED_AT, TimeProperty.MODIFIED_AT):
        column, kind = "coalesce(h.rec, h.t)", " AND (h.shape IS NULL OR h.shape >= 0)"
    elif query.timeproperty == TimeProperty.DELETED_AT:
        column, kind = "h.t", f" AND h.shape = {DELETED}"
    else:
        column, kind = "h.t", " AND (h.shape IS NULL OR h.shape >= 0)"
    sql, args = kind, []
    if query.start is not None:
        sql += f" AND {column} >= {mark}"
        args.append(query.start)
    if query.end is not None:
        sql += f" AND {column} < {mark}"
        args.append(query.end)
    return sql, column, args


def decode_row(
    series: Series,
    row: tuple[int, int, Any, int | None, str | None, int | None, str | None, Any],
    cache: dict[Any, Any],
) -> TemporalInstance:
    """The instance of a history row ``(t, seq, num, shape, doc, rec, shape's doc, time)``;
    ``cache`` keeps the times formatted and the shapes decoded while one answer is built."""
    t, seq, num, shape, doc, rec, shape_doc, time = row
    stamp = rec if rec is not None else t
    recorded = cache.get(stamp)
    if recorded is None:
        recorded = cache[stamp] = from_millis(stamp)
    observed = from_millis(t) if rec is not None else None
    key = instance_id(series.id, t, seq)
    if num is not None and doc is None:
        # A number with an interned shape (never sub-attributes) or none: the common case.
        if shape_doc is None:
            base: dict[str, Any] = PLAIN
        else:
            base = cache.get(shape_doc) or cache.setdefault(shape_doc, orjson.loads(shape_doc))
        attribute = Attribute(
            AttrKind.PROPERTY,
            num,
            dataset_id=series.dataset_id,
            observed_at=observed,
            unit_code=base.get("unitCode"),
            created_at=recorded,
            modified_at=recorded,
        )
        return TemporalInstance(attribute, key, time)
    if shape == DELETED:
        attr_doc: dict[str, Any] = {"type": doc, series.kind.value_key: None}
    else:
        attr_doc = orjson.loads(doc or "{}")
    if num is not None:
        attr_doc["value"] = num
    if series.dataset_id is not None:
        attr_doc["datasetId"] = series.dataset_id
    if observed is not None:
        attr_doc["observedAt"] = observed
    attr_doc["createdAt"] = recorded
    attr_doc.setdefault("modifiedAt", recorded)
    deleted = from_millis(t) if shape == DELETED else None
    return TemporalInstance(attribute_from_storage(attr_doc), key, time, deleted)
