"""The pure aggregation the store's rollups must agree with, and the temporal representations."""

from __future__ import annotations

import math
import statistics

from hypothesis import given, settings
from hypothesis import strategies as st

from burgo.ngsild.context import core_context
from burgo.ngsild.duration import HOUR, Duration
from burgo.ngsild.model import Attribute, AttrKind
from burgo.ngsild.temporal import (
    AggregatedSeries,
    TemporalEntity,
    TemporalFormat,
    TemporalInstance,
    render_temporal_entity,
)
from burgo.ngsild.temporal_aggregate import Summary, aggregate, aggregate_values, summarize

T = "https://uri.etsi.org/ngsi-ld/default-context/temperature"


def test_every_method_on_one_period() -> None:
    values = [1, 2.5, 2.5, "high", True]
    assert aggregate_values("totalCount", values) == 5
    assert aggregate_values("distinctCount", values) == 4
    assert aggregate_values("sum", values) == 6.0
    assert aggregate_values("avg", values) == 2.0
    assert aggregate_values("min", values) == 1
    assert aggregate_values("max", values) == 2.5
    assert aggregate_values("sumsq", values) == 13.5
    assert math.isclose(aggregate_values("stddev", values), statistics.stdev([1, 2.5, 2.5]))
    assert aggregate_values("avg", ["a"]) is None
    assert aggregate_values("stddev", [4]) == 0.0


def test_periods_hold_only_their_points_and_empty_ones_are_left_out() -> None:
    points = [(0, 1), (HOUR - 1, 3), (3 * HOUR, 10)]
    result = aggregate(points, ("sum",), Duration(0, HOUR), 0, 4 * HOUR)
    assert result == {"sum": [(4.0, 0, HOUR), (10.0, 3 * HOUR, 4 * HOUR)]}


@settings(max_examples=100)
@given(st.lists(st.floats(-1e9, 1e9), max_size=30), st.lists(st.floats(-1e9, 1e9), max_size=30))
def test_merged_summaries_equal_the_summary_of_all(a: list[float], b: list[float]) -> None:
    merged, whole = summarize(a).merge(summarize(b)), summarize(a + b)
    assert (merged.count, merged.low, merged.high) == (whole.count, whole.low, whole.high)
    assert math.isclose(merged.total, whole.total, rel_tol=1e-9, abs_tol=1e-3)
    assert Summary().merge(whole) == whole


def _instance(value: object, minute: int, kind: AttrKind = AttrKind.PROPERTY) -> TemporalInstance:
    attr = Attribute(kind, value, observed_at=f"2024-05-01T10:0{minute}:00.000Z")
    return TemporalInstance(
        attr, f"urn:ngsi-ld:Instance:1.{minute}.0", 1714557600000 + minute * 60_000
    )


def test_the_three_representations() -> None:
    ctx = core_context()
    entity = TemporalEntity(
        "urn:ngsi-ld:Room:1",
        ("https://uri.etsi.org/ngsi-ld/default-context/Room",),
        attrs={T: (_instance(20, 0), _instance(21, 1))},
        aggregated={T: (AggregatedSeries(AttrKind.PROPERTY, "urn:d", {"max": [(21, 0, 60_000)]}),)},
    )
    normalized = render_temporal_entity(entity, ctx, TemporalFormat.NORMALIZED)
    assert normalized["type"] == "Room"
    assert normalized["temperature"][1] == {
        "type": "Property", "value": 21, "observedAt": "2024-05-01T10:01:00.000Z",
        "instanceId": "urn:ngsi-ld:Instance:1.1.0",
    }  # fmt: skip
    values = render_temporal_entity(entity, ctx, TemporalFormat.TEMPORAL_VALUES)
    assert values["temperature"] == {
        "type": "Property",
        "values": [[20, "2024-05-01T10:00:00.000Z"], [21, "2024-05-01T10:01:00.000Z"]],
    }
    aggregated = render_temporal_entity(entity, ctx, TemporalFormat.AGGREGATED_VALUES)
    assert aggregated["temperature"] == {
        "type": "Property", "datasetId": "urn:d",
        "max": [[21, "1970-01-01T00:00:00.000Z", "1970-01-01T00:01:00.000Z"]],
    }  # fmt: skip


def test_relationships_use_objects() -> None:
    link = _instance("urn:x:1", 0, AttrKind.RELATIONSHIP)
    entity = TemporalEntity("urn:a:1", ("urn:T",), attrs={T: (link,)})
    body = render_temporal_entity(entity, core_context(), TemporalFormat.TEMPORAL_VALUES)
    assert body["temperature"]["objects"] == [["urn:x:1", "2024-05-01T10:00:00.000Z"]]
