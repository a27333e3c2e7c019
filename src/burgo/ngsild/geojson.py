"""GeoJSON geometry validation (RFC 7946), as NGSI-LD GeoProperty values need it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from burgo.ngsild.errors import BadRequestData

GEOMETRY_TYPES = frozenset(
    {
        "Point",
        "MultiPoint",
        "LineString",
        "MultiLineString",
        "Polygon",
        "MultiPolygon",
        "GeometryCollection",
    }
)
_DEPTH = {
    "Point": 0,
    "MultiPoint": 1,
    "LineString": 1,
    "MultiLineString": 2,
    "Polygon": 2,
    "MultiPolygon": 3,
}


def is_mapping(value: Any) -> bool:
    """Whether ``value`` is a JSON object (a dict, tested first: the common case, and cheap)."""
    return type(value) is dict or isinstance(value, Mapping)


def looks_like_geometry(value: Any) -> bool:
    """Whether ``value`` is meant as a GeoJSON geometry: an object whose ``type`` names one."""
    if not is_mapping(value):
        return False
    kind = value.get("type")
    return isinstance(kind, str) and kind in GEOMETRY_TYPES


def validate_geometry(value: Any, what: str = "GeoProperty value") -> None:
    """Raise BadRequestData unless ``value`` is a valid GeoJSON geometry."""
    if not is_mapping(value):
        raise BadRequestData(f"{what} must be a GeoJSON geometry object")
    kind = value.get("type")
    if not isinstance(kind, str) or kind not in GEOMETRY_TYPES:
        raise BadRequestData(f"{what} has an unknown GeoJSON geometry type {kind!r}")
    if kind == "GeometryCollection":
        members = value.get("geometries")
        if not isinstance(members, list):
            raise BadRequestData(f"{what}: a GeometryCollection needs a 'geometries' array")
        for member in members:
            validate_geometry(member, what)
        return
    coordinates: Any = value.get("coordinates")
    if coordinates is None:
        raise BadRequestData(f"{what}: a {kind} needs 'coordinates'")
    _check_depth(coordinates, _DEPTH[kind], what)
    if kind == "LineString" and len(coordinates) < 2:
        raise BadRequestData(f"{what}: a LineString needs at least two positions")
    if kind == "MultiLineString" and any(len(line) < 2 for line in coordinates):
        raise BadRequestData(f"{what}: each line needs at least two positions")
    rings = (
        coordinates
        if kind == "Polygon"
        else [ring for poly in coordinates for ring in poly]
        if kind == "MultiPolygon"
        else []
    )
    for ring in rings:
        if len(ring) < 4 or ring[0] != ring[-1]:
            raise BadRequestData(
                f"{what}: a polygon ring needs four or more positions, the last equal to the first"
            )


def _check_depth(node: Any, depth: int, what: str) -> None:
    if depth == 0:
        _check_position(node, what)
        return
    if not isinstance(node, list) or not node:
        raise BadRequestData(f"{what} has malformed 'coordinates'")
    for child in node:
        _check_depth(child, depth - 1, what)


def _check_position(position: Any, what: str) -> None:
    if (
        not isinstance(position, list)
        or not 2 <= len(position) <= 3
        or not all(isinstance(n, int | float) and not isinstance(n, bool) for n in position)
    ):
        raise BadRequestData(f"{what}: a position is [longitude, latitude] or with altitude")
    longitude, latitude = position[0], position[1]
    if not (-180 <= longitude <= 180 and -90 <= latitude <= 90):
        raise BadRequestData(
            f"{what}: position {position} is outside longitude -180..180, latitude -90..90"
        )
