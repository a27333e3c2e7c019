"""Entity queries, pure: type expressions, paging, geo-queries and the reference matcher."""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from burgo.ngsild.errors import BadRequestData, TooManyResults
from burgo.ngsild.geoquery import LOCATION, geometry_box, match_geometries, parse_geo_query
from burgo.ngsild.model import Attribute, AttrKind, Entity
from burgo.ngsild.query import (
    EntityQuery,
    EntitySelector,
    TypeExpr,
    check_id_pattern,
    matches,
    parse_paging,
    parse_type_expression,
    type_matches,
)

V = "https://example.org/"


def expand(term: str) -> str:
    """Every term of these tests expands into one example vocabulary."""
    return V + term


def types(*names: str) -> frozenset[str]:
    """A set of expanded type names."""
    return frozenset(V + n for n in names)


# -- type expressions ----------------------------------------------------------------------------


def test_a_comma_or_a_bar_is_an_alternative() -> None:
    assert parse_type_expression("A,B|C", expand) == TypeExpr("or", (V + "A", V + "B", V + "C"))


def test_a_semicolon_binds_tighter_than_an_alternative() -> None:
    expr = parse_type_expression("A;B|C", expand)
    assert expr == TypeExpr("or", (TypeExpr("and", (V + "A", V + "B")), V + "C"))
    assert type_matches(expr, types("C"))
    assert type_matches(expr, types("A", "B"))
    assert not type_matches(expr, types("A"))


def test_parentheses_group() -> None:
    expr = parse_type_expression("(A|B);C", expand)
    assert type_matches(expr, types("B", "C"))
    assert not type_matches(expr, types("B"))
    assert not type_matches(expr, types("C"))


def test_full_iris_are_type_names_too() -> None:
    expr = parse_type_expression("https://smartdatamodels.org/dataModel.Parking/ParkingSpot", str)
    assert expr.names() == {"https://smartdatamodels.org/dataModel.Parking/ParkingSpot"}


@pytest.mark.parametrize("text", ["", " ", "A,", ",A", "A;;B", "(A", "A)", "()", "A|(B;)", "A'B"])
def test_a_broken_type_expression_is_bad_request_data(text: str) -> None:
    with pytest.raises(BadRequestData):
        parse_type_expression(text, expand)


@settings(max_examples=200)
@given(st.text(alphabet="AB,;|() x", max_size=12))
def test_the_type_parser_fails_only_cleanly(text: str) -> None:
    try:
        parsed = parse_type_expression(text, expand)
    except BadRequestData:
        return
    assert parsed.names() <= {V + word for word in re.findall(r"[^,;|()\s]+", text)}


# -- paging and id patterns ----------------------------------------------------------------------


def test_paging_defaults_and_limits() -> None:
    assert parse_paging(None, None, count=False, default=20, maximum=100) == (20, 0)
    assert parse_paging("100", "7", count=False, default=20, maximum=100) == (100, 7)
    assert parse_paging("0", None, count=True, default=20, maximum=100) == (0, 0)


def test_a_limit_over_the_maximum_is_too_many_results() -> None:
    with pytest.raises(TooManyResults) as caught:
        parse_paging("101", None, count=False, default=20, maximum=100)
    assert caught.value.status == 403


@pytest.mark.parametrize(
    ("limit", "offset", "count"),
    [("-1", None, False), (None, "-5", False), ("x", None, False), (None, "1.5", False),
     ("0", None, False)],
)  # fmt: skip
def test_bad_paging_is_bad_request_data(limit: str | None, offset: str | None, count: bool) -> None:
    with pytest.raises(BadRequestData):
        parse_paging(limit, offset, count=count, default=20, maximum=100)


def test_a_broken_id_pattern_is_bad_request_data() -> None:
    with pytest.raises(BadRequestData, match="idPattern"):
        check_id_pattern("urn:(")


# -- geo-queries: parsing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("georel", "geometry", "coordinates", "message"),
    [
        ("near;maxDistance==10", None, "[1,2]", "missing: geometry"),
        (None, "Point", "[1,2]", "missing: georel"),
        ("near;maxDistance==10", "Point", None, "missing: coordinates"),
        ("close", "Point", "[1,2]", "Unknown georel"),
        ("near", "Point", "[1,2]", "needs maxDistance"),
        ("near;maxDistance==-1", "Point", "[1,2]", "non-negative"),
        ("near;maxDistance==far", "Point", "[1,2]", "must be a number"),
        ("near;distance==5", "Point", "[1,2]", "maxDistance"),
        ("within;maxDistance==5", "Point", "[1,2]", "no modifiers"),
        ("within", "Circle", "[1,2]", "Unknown geo-query geometry"),
        ("within", "GeometryCollection", "[]", "Unknown geo-query geometry"),
        ("intersects", "Point", "[1,", "not a JSON array"),
        ("intersects", "Point", "[200,2]", "outside longitude"),
        ("intersects", "LineString", "[[1,2]]", "at least two positions"),
        ("within", "Polygon", "[[[0,0],[1,0],[1,1],[0,1]]]", "ring"),
        ("within", "Polygon", "[[[0,0],[1,1],[1,0],[0,1],[0,0]]]", "not valid"),
    ],
)
def test_a_bad_geo_query_is_bad_request_data(
    georel: str | None, geometry: str | None, coordinates: str | None, message: str
) -> None:
    with pytest.raises(BadRequestData, match=message):
        parse_geo_query(georel, geometry, coordinates, None, expand)


def test_no_geo_query_at_all_is_none_and_geoproperty_alone_is_refused() -> None:
    assert parse_geo_query(None, None, None, None, expand) is None
    with pytest.raises(BadRequestData, match="geoproperty"):
        parse_geo_query(None, None, None, "area", expand)


def test_the_geoproperty_defaults_to_location_and_is_expanded() -> None:
    assert parse_geo_query("within", "Point", "[1,2]", None, expand).geoproperty == LOCATION
    assert parse_geo_query("within", "Point", [1, 2], "area", expand).geoproperty == V + "area"


# -- geo-queries: every georel on every geometry -------------------------------------------------

SQUARE = [[[-7.51, 40.13], [-7.49, 40.13], [-7.49, 40.15], [-7.51, 40.15], [-7.51, 40.13]]]
INSIDE = {"type": "Point", "coordinates": [-7.5, 40.14]}
OUTSIDE = {"type": "Point", "coordinates": [-7.4, 40.14]}
CROSSING = {"type": "LineString", "coordinates": [[-7.505, 40.14], [-7.4, 40.14]]}
SMALL = {
    "type": "Polygon",
    "coordinates": [
        [[-7.501, 40.139], [-7.499, 40.139], [-7.499, 40.141], [-7.501, 40.141], [-7.501, 40.139]]
    ],
}
HALF_OUT = {
    "type": "Polygon",
    "coordinates": [[[-7.5, 40.14], [-7.4, 40.14], [-7.4, 40.2], [-7.5, 40.14]]],
}
CASES: list[tuple[str, str, Any, list[dict[str, Any]], list[bool]]] = [
    ("within", "Polygon", SQUARE, [INSIDE, OUTSIDE, CROSSING, SMALL], [True, False, False, True]),
    ("within", "MultiPolygon", [SQUARE], [INSIDE, OUTSIDE], [True, False]),
    ("intersects", "Polygon", SQUARE, [INSIDE, OUTSIDE, CROSSING, HALF_OUT],
     [True, False, True, True]),
    ("intersects", "LineString", [[-7.5, 40.0], [-7.5, 40.3]], [INSIDE, OUTSIDE, CROSSING],
     [True, False, True]),
    ("intersects", "MultiLineString", [[[-7.4, 40.0], [-7.4, 40.3]]], [INSIDE, CROSSING],
     [False, True]),
    ("disjoint", "Polygon", SQUARE, [INSIDE, OUTSIDE, CROSSING], [False, True, False]),
    ("disjoint", "MultiPoint", [[-7.5, 40.14], [-7.3, 40.1]], [INSIDE, OUTSIDE], [False, True]),
    ("equals", "Point", [-7.5, 40.14], [INSIDE, OUTSIDE], [True, False]),
    ("equals", "Polygon", SMALL["coordinates"], [SMALL, INSIDE], [True, False]),
    ("contains", "Point", [-7.5, 40.14], [SMALL, INSIDE, CROSSING, OUTSIDE],
     [True, True, True, False]),
    ("contains", "LineString", [[-7.45, 40.14], [-7.42, 40.14]], [CROSSING, SMALL], [True, False]),
    ("overlaps", "Polygon", SQUARE, [HALF_OUT, SMALL, OUTSIDE], [True, False, False]),
    ("overlaps", "MultiPolygon", [SQUARE], [HALF_OUT], [True]),
]  # fmt: skip


@pytest.mark.parametrize(("georel", "geometry", "coordinates", "candidates", "expected"), CASES)
def test_every_georel_and_geometry(
    georel: str, geometry: str, coordinates: Any, candidates: list[Any], expected: list[bool]
) -> None:
    geo = parse_geo_query(georel, geometry, coordinates, None, expand)
    assert match_geometries(geo, candidates) == expected


def test_near_measures_metres_between_points() -> None:
    # One degree of latitude on the WGS84 mean sphere is 111,195 m.
    north = [{"type": "Point", "coordinates": [-7.5, 40.14 + d / 111_195]} for d in (499, 501)]
    geo = parse_geo_query("near;maxDistance==500", "Point", "[-7.5,40.14]", None, expand)
    assert match_geometries(geo, north) == [True, False]
    far = parse_geo_query("near;minDistance==500", "Point", "[-7.5,40.14]", None, expand)
    assert match_geometries(far, north) == [False, True]


def test_near_a_line_and_near_a_polygon_measure_to_the_nearest_edge() -> None:
    line = parse_geo_query(
        "near;maxDistance==200", "LineString", "[[-7.5,40.14],[-7.48,40.14]]", None, expand
    )
    beside = {"type": "Point", "coordinates": [-7.49, 40.14 + 150 / 111_195]}
    aside = {"type": "Point", "coordinates": [-7.49, 40.14 + 250 / 111_195]}
    assert match_geometries(line, [beside, aside]) == [True, False]
    square = parse_geo_query("near;maxDistance==100", "Polygon", [SQUARE[0]], None, expand)
    assert match_geometries(square, [INSIDE, CROSSING, OUTSIDE]) == [True, True, False]


def test_unreadable_geometries_never_match() -> None:
    geo = parse_geo_query("disjoint", "Point", "[0,0]", None, expand)
    assert match_geometries(geo, [{"type": "Point"}, "text", {"type": "Polygon"}]) == [
        False,
        False,
        False,
    ]


@settings(max_examples=100)
@given(
    st.floats(-170, 170),
    st.floats(-75, 75),
    st.floats(0, 200_000),
    st.floats(-1, 1),
    st.floats(-1, 1),
)
def test_the_search_box_holds_everything_near(
    lon: float, lat: float, metres: float, dx: float, dy: float
) -> None:
    """The R*Tree prefilter never drops a point the exact check would keep."""
    geo = parse_geo_query(f"near;maxDistance=={metres}", "Point", [lon, lat], None, expand)
    box = geo.search_box()
    assert box is not None
    reach = metres / 111_195 * 2
    candidate = {"type": "Point", "coordinates": [lon + dx * reach * 2, lat + dy * reach]}
    x, y = candidate["coordinates"]
    if -180 <= x <= 180 and match_geometries(geo, [candidate]) == [True]:
        assert box[0] <= x <= box[1] and box[2] <= y <= box[3]


def test_a_geometry_box_covers_its_positions() -> None:
    assert geometry_box(HALF_OUT) == (-7.5, -7.4, 40.14, 40.2)
    assert geometry_box({"type": "Point", "coordinates": [1, 2, 3]}) == (1, 1, 2, 2)
    assert geometry_box({"type": "Point"}) is None


# -- the reference matcher -----------------------------------------------------------------------


def thing(entity_id: str, *type_names: str, **attrs: Any) -> Entity:
    """An entity with Property attributes (and a location from ``where``)."""
    built = {V + k: (Attribute(AttrKind.PROPERTY, v),) for k, v in attrs.items() if k != "where"}
    if "where" in attrs:
        built[LOCATION] = (Attribute(AttrKind.GEO_PROPERTY, attrs["where"]),)
    return Entity(entity_id, tuple(V + t for t in type_names), MappingProxyType(built))


def test_matches_combines_every_condition() -> None:
    room = thing("urn:x:room-1", "Room", level=3, where=INSIDE)
    query = EntityQuery(
        selectors=(EntitySelector(types=parse_type_expression("Room", expand), id_pattern="room"),),
        attrs=frozenset({V + "level"}),
        geo=parse_geo_query("within", "Polygon", SQUARE, None, expand),
    )
    assert matches(room, query)
    assert not matches(thing("urn:x:room-2", "Room", level=3, where=OUTSIDE), query)
    assert not matches(thing("urn:x:room-3", "Room", other=3, where=INSIDE), query)
    assert not matches(thing("urn:x:hall-1", "Room", level=3, where=INSIDE), query)
    assert not matches(thing("urn:x:room-4", "Hall", level=3, where=INSIDE), query)
    assert not matches(thing("urn:x:room-5", "Room", level=3), query)


def test_any_selector_may_match_and_ids_are_exact() -> None:
    query = EntityQuery(
        selectors=(
            EntitySelector(ids=("urn:x:1",)),
            EntitySelector(types=parse_type_expression("Hall", expand)),
        )
    )
    assert matches(thing("urn:x:1", "Room"), query)
    assert matches(thing("urn:x:2", "Hall"), query)
    assert not matches(thing("urn:x:10", "Room"), query)
    assert not EntityQuery().has_selector()
    assert not EntityQuery(selectors=(EntitySelector(),)).has_selector()
