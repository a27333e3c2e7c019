"""Geo-queries (ETSI GS CIM 009, 4.10): parsing, validation and the exact geometric check.

Distances are in metres. Between two points they are great-circle (haversine) distances on a
sphere of the WGS84 mean radius (6,371,008.8 m). When either geometry is not a point, they are
planar distances in a local equirectangular projection centred on the query geometry (an error
well under 1 % within tens of kilometres; longitudes are not wrapped at the antimeridian).

The check is vectorised (numpy, shapely) so that a store can run it on many candidates at once;
:func:`geo_matches` runs the very same code on one entity.

>>> geo = parse_geo_query("near;maxDistance==500", "Point", "[-7.5, 40.14]", None, str)
>>> match_geometries(geo, [{"type": "Point", "coordinates": [-7.503, 40.14]}])
[True]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from burgo.ngsild.errors import BadRequestData
from burgo.ngsild.geojson import validate_geometry
from burgo.ngsild.model import AttrKind, Entity

EARTH_RADIUS = 6_371_008.8
METRES_PER_DEGREE = EARTH_RADIUS * math.pi / 180
LOCATION = "https://uri.etsi.org/ngsi-ld/location"
GEORELS = ("near", "within", "contains", "intersects", "equals", "disjoint", "overlaps")
QUERY_GEOMETRIES = (
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
)
_PREDICATES: dict[str, Callable[..., Any]] = {
    "within": shapely.within,
    "contains": shapely.contains,
    "intersects": shapely.intersects,
    "equals": shapely.equals,
    "disjoint": shapely.disjoint,
    "overlaps": shapely.overlaps,
}
# Boxes wider than this (metres) or reaching nearer the poles are not worth narrowing.
_FAR = 1_000_000.0
_POLAR = 80.0

Box = tuple[float, float, float, float]  # min longitude, max longitude, min latitude, max latitude


@dataclass(frozen=True, slots=True)
class GeoQuery:
    """A geo-query: relation, reference geometry (GeoJSON) and the GeoProperty it applies to."""

    georel: str
    geometry: Mapping[str, Any]
    geoproperty: str = LOCATION
    max_distance: float | None = None
    min_distance: float | None = None
    shape: BaseGeometry = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        reference = shape(self.geometry)
        if not reference.is_valid:
            raise BadRequestData(
                f"The geo-query geometry is not valid: {shapely.is_valid_reason(reference)}"
            )
        shapely.prepare(reference)
        object.__setattr__(self, "shape", reference)

    def search_box(self) -> Box | None:
        """A box holding every geometry that may match (None: matches may lie anywhere)."""
        if self.georel == "disjoint":
            return None
        if self.georel == "near":
            if self.max_distance is None:
                return None
            return self._grown_box(self.max_distance)
        return self._bounds()

    def certain_box(self) -> Box | None:
        """A box such that any geometry wholly outside it certainly matches (None: no such)."""
        if self.georel == "disjoint":
            return self._bounds()
        if self.georel == "near" and self.max_distance is None and self.min_distance is not None:
            return self._grown_box(self.min_distance)
        return None

    def _bounds(self) -> Box:
        min_x, min_y, max_x, max_y = self.shape.bounds
        return (min_x, max_x, min_y, max_y)

    def _grown_box(self, metres: float) -> Box:
        """The query geometry's bounds grown by ``metres`` (generously: never too small)."""
        min_x, max_x, min_y, max_y = self._bounds()
        grow_lat = metres / METRES_PER_DEGREE * 1.01 + 1e-7
        low, high = min_y - grow_lat, max_y + grow_lat
        if metres > _FAR or max(abs(low), abs(high)) > _POLAR:
            return (-180.0, 180.0, max(low, -90.0), min(high, 90.0))
        scale = math.cos(math.radians(max(abs(low), abs(high))))
        grow_lon = metres / (METRES_PER_DEGREE * scale) * 1.01 + 1e-7
        if min_x - grow_lon < -180 or max_x + grow_lon > 180:
            return (-180.0, 180.0, low, high)
        return (min_x - grow_lon, max_x + grow_lon, low, high)


def parse_geo_query(
    georel: str | None,
    geometry: str | None,
    coordinates: Any,
    geoproperty: str | None,
    expand: Callable[[str], str],
) -> GeoQuery | None:
    """The geo-query of a request (None if it has none); BadRequestData when it is incomplete
    or wrong. ``coordinates`` is JSON text (URL) or an already parsed array (Query body)."""
    given = {"georel": georel, "geometry": geometry, "coordinates": coordinates}
    if all(value is None for value in given.values()):
        if geoproperty is not None:
            raise BadRequestData("geoproperty is only allowed with a geo-query")
        return None
    missing = [name for name, value in given.items() if value is None]
    if missing:
        raise BadRequestData(
            f"A geo-query needs georel, geometry and coordinates; missing: {', '.join(missing)}"
        )
    assert georel is not None and geometry is not None
    if geometry not in QUERY_GEOMETRIES:
        raise BadRequestData(
            f"Unknown geo-query geometry {geometry!r}; use one of {', '.join(QUERY_GEOMETRIES)}"
        )
    if isinstance(coordinates, str):
        try:
            coordinates = orjson.loads(coordinates)
        except orjson.JSONDecodeError:
            raise BadRequestData(f"coordinates {coordinates!r} is not a JSON array") from None
    reference = {"type": geometry, "coordinates": coordinates}
    validate_geometry(reference, "The geo-query geometry")
    relation, max_distance, min_distance = _parse_georel(georel)
    name = expand(geoproperty) if geoproperty else LOCATION
    return GeoQuery(relation, reference, name, max_distance, min_distance)


def _parse_georel(text: str) -> tuple[str, float | None, float | None]:
    relation, *modifiers = [part.strip() for part in text.split(";")]
    if relation not in GEORELS:
        raise BadRequestData(f"Unknown georel {relation!r}; use one of {', '.join(GEORELS)}")
    if relation != "near":
        if modifiers:
            raise BadRequestData(f"georel {relation} takes no modifiers, got {text!r}")
        return relation, None, None
    distances: dict[str, float] = {}
    for modifier in modifiers:
        name, separator, raw = modifier.partition("==")
        if not separator or name not in ("maxDistance", "minDistance") or name in distances:
            raise BadRequestData(
                f"georel {text!r}: near takes maxDistance==<metres> and/or minDistance==<metres>"
            )
        try:
            value = float(raw)
        except ValueError:
            raise BadRequestData(f"georel {text!r}: {name} must be a number") from None
        if not math.isfinite(value) or value < 0:
            raise BadRequestData(f"georel {text!r}: {name} must be a non-negative number")
        distances[name] = value
    if not distances:
        raise BadRequestData(f"georel {text!r}: near needs maxDistance or minDistance")
    return relation, distances.get("maxDistance"), distances.get("minDistance")


def geo_matches(geo: GeoQuery, entity: Entity) -> bool:
    """Whether any instance of the entity's GeoProperty satisfies the geo-query."""
    geometries = [
        instance.value
        for instance in entity.attrs.get(geo.geoproperty, ())
        if instance.kind == AttrKind.GEO_PROPERTY
    ]
    return any(match_geometries(geo, geometries))


def match_geometries(geo: GeoQuery, geometries: Sequence[Any]) -> list[bool]:
    """For each GeoJSON geometry, whether it satisfies the geo-query (unreadable ones do not)."""
    result = np.zeros(len(geometries), dtype=bool)
    point_at: list[int] = []
    point_xy: list[tuple[float, float]] = []
    other_at: list[int] = []
    others: list[BaseGeometry] = []
    for index, geometry in enumerate(geometries):
        try:
            if geometry["type"] == "Point":
                x, y = geometry["coordinates"][:2]
                point_xy.append((float(x), float(y)))
                point_at.append(index)
            else:
                others.append(shape(geometry))
                other_at.append(index)
        except (
            KeyError,
            TypeError,
            ValueError,
            IndexError,
            AttributeError,
            shapely.errors.GEOSException,
        ):
            continue
    if point_at:
        result[point_at] = _check_points(geo, np.array(point_xy, dtype=float))
    if other_at:
        result[other_at] = _check_shapes(geo, np.array(others, dtype=object))
    return [bool(value) for value in result]


def _check_points(geo: GeoQuery, xy: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    if geo.georel == "near":
        if geo.shape.geom_type == "Point":
            distances = _haversine(geo.shape.x, geo.shape.y, xy[:, 0], xy[:, 1])
        else:
            distances = _projected_distances(geo, shapely.points(xy))
        return _within_distances(geo, distances)
    return np.asarray(_PREDICATES[geo.georel](shapely.points(xy), geo.shape), dtype=bool)


def _check_shapes(geo: GeoQuery, shapes: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    try:
        if geo.georel == "near":
            return _within_distances(geo, _projected_distances(geo, shapes))
        return np.asarray(_PREDICATES[geo.georel](shapes, geo.shape), dtype=bool)
    except shapely.errors.GEOSException:
        return np.zeros(len(shapes), dtype=bool)


def _within_distances(geo: GeoQuery, distances: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    ok = np.ones(len(distances), dtype=bool)
    if geo.max_distance is not None:
        ok &= distances <= geo.max_distance
    if geo.min_distance is not None:
        ok &= distances >= geo.min_distance
    return ok


def _haversine(
    lon: float, lat: float, lons: np.ndarray[Any, Any], lats: np.ndarray[Any, Any]
) -> np.ndarray[Any, Any]:
    lat1, lat2 = math.radians(lat), np.radians(lats)
    half_dlat = (lat2 - lat1) / 2
    half_dlon = np.radians(lons - lon) / 2
    a = np.sin(half_dlat) ** 2 + math.cos(lat1) * np.cos(lat2) * np.sin(half_dlon) ** 2
    distances: np.ndarray[Any, Any] = 2 * EARTH_RADIUS * np.arcsin(np.sqrt(np.minimum(a, 1.0)))
    return distances


def _projected_distances(geo: GeoQuery, shapes: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    centre = geo.shape.centroid
    lon0, lat0 = centre.x, centre.y
    scale_x = math.cos(math.radians(lat0)) * METRES_PER_DEGREE

    def project(xy: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        return np.column_stack(((xy[:, 0] - lon0) * scale_x, (xy[:, 1] - lat0) * METRES_PER_DEGREE))

    reference = shapely.transform(geo.shape, project)
    distances: np.ndarray[Any, Any] = shapely.distance(
        shapely.transform(shapes, project), reference
    )
    return distances


def geometry_box(geometry: Any) -> Box | None:
    """The bounding box of a GeoJSON geometry's positions (None when it has none)."""
    xs: list[float] = []
    ys: list[float] = []

    def walk(node: Any) -> None:
        if isinstance(node, list):
            if len(node) >= 2 and all(_is_number(n) for n in node[:2]):
                xs.append(float(node[0]))
                ys.append(float(node[1]))
            else:
                for child in node:
                    walk(child)

    if isinstance(geometry, Mapping):
        if geometry.get("type") == "GeometryCollection":
            boxes = [geometry_box(g) for g in geometry.get("geometries") or ()]
            found = [b for b in boxes if b is not None]
            if not found:
                return None
            return (
                min(b[0] for b in found),
                max(b[1] for b in found),
                min(b[2] for b in found),
                max(b[3] for b in found),
            )
        walk(geometry.get("coordinates"))
    if not xs:
        return None
    return (min(xs), max(xs), min(ys), max(ys))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
