"""GeoJSON geometry checks (RFC 7946) for GeoProperty values."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings

from burgo.ngsild.errors import BadRequestData
from burgo.ngsild.geojson import looks_like_geometry, validate_geometry
from tests.strategies import geometries

VALID: list[Any] = [
    {"type": "Point", "coordinates": [-7.5, 40.1]},
    {"type": "Point", "coordinates": [180, -90, 12.5]},
    {"type": "MultiPoint", "coordinates": [[0, 0], [1, 1]]},
    {"type": "LineString", "coordinates": [[0, 0], [1, 1]]},
    {"type": "MultiLineString", "coordinates": [[[0, 0], [1, 1]], [[2, 2], [3, 3]]]},
    {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]},
    {"type": "MultiPolygon", "coordinates": [[[[0, 0], [1, 0], [1, 1], [0, 0]]]]},
    {"type": "GeometryCollection", "geometries": [{"type": "Point", "coordinates": [1, 2]}]},
]


@pytest.mark.parametrize("geometry", VALID, ids=lambda g: g["type"])
def test_valid_geometries_pass(geometry: Any) -> None:
    validate_geometry(geometry)
    assert looks_like_geometry(geometry)


INVALID: list[Any] = [
    pytest.param([1, 2], "geometry object", id="not an object"),
    pytest.param({"type": "Circle", "coordinates": [1, 2]}, "unknown", id="unknown type"),
    pytest.param({"type": ["Point"], "coordinates": [1, 2]}, "unknown", id="type not a string"),
    pytest.param({"type": "Point"}, "needs 'coordinates'", id="no coordinates"),
    pytest.param({"type": "Point", "coordinates": [1]}, "position", id="short position"),
    pytest.param({"type": "Point", "coordinates": [True, 1]}, "position", id="boolean"),
    pytest.param({"type": "Point", "coordinates": ["1", 1]}, "position", id="string"),
    pytest.param({"type": "Point", "coordinates": [1, 91]}, "outside", id="latitude"),
    pytest.param({"type": "Point", "coordinates": [[1, 2]]}, "position", id="too deep"),
    pytest.param({"type": "LineString", "coordinates": [[1, 2]]}, "two positions", id="line"),
    pytest.param({"type": "LineString", "coordinates": []}, "malformed", id="empty line"),
    pytest.param(
        {"type": "MultiLineString", "coordinates": [[[1, 2]]]}, "two positions", id="multiline"
    ),
    pytest.param(
        {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}, "ring", id="open"
    ),
    pytest.param(
        {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]}, "ring", id="short ring"
    ),
    pytest.param(
        {"type": "MultiPolygon", "coordinates": [[[[0, 0], [1, 0], [1, 1], [0, 1]]]]},
        "ring",
        id="open multipolygon ring",
    ),
    pytest.param({"type": "GeometryCollection"}, "geometries", id="collection"),
    pytest.param(
        {"type": "GeometryCollection", "geometries": [{"type": "Point"}]},
        "coordinates",
        id="bad member",
    ),
]


@pytest.mark.parametrize(("geometry", "message"), INVALID)
def test_invalid_geometries_are_bad_request_data(geometry: Any, message: str) -> None:
    with pytest.raises(BadRequestData, match=message):
        validate_geometry(geometry, "location")


def test_objects_typed_as_geometries_are_meant_as_geometries() -> None:
    assert looks_like_geometry({"type": "Point"})
    assert not looks_like_geometry({"type": "PostalAddress"})
    assert not looks_like_geometry({"type": ["Point"]})
    assert not looks_like_geometry([0, 1])


@settings(max_examples=50, deadline=None)
@given(geometries)
def test_generated_geometries_are_valid(geometry: Any) -> None:
    validate_geometry(geometry)
