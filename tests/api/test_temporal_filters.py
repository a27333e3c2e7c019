"""Temporal queries filtered with q and geo-queries: an entity is selected when the instances
recorded in the asked time range satisfy the filter, and paging and counting follow the filter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.entity_checks import (
    BACKENDS,
    Broker,
    assert_problem,
    backend_database,
    running_broker,
)

ENTITIES = "/ngsi-ld/v1/entities"
TEMPORAL = "/ngsi-ld/v1/temporal/entities"
QUERY = "/ngsi-ld/v1/temporal/entityOperations/query"
KIND = "NoiseLevelObserved"
# Fundão's centre and a village 20 km away.
CENTRE, VILLAGE = [-7.5012, 40.1379], [-7.3100, 40.2400]
AROUND_CENTRE = [[[-7.52, 40.12], [-7.48, 40.12], [-7.48, 40.15], [-7.52, 40.15], [-7.52, 40.12]]]


@pytest.fixture(scope="module", params=BACKENDS)
def broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Broker]:
    """A broker whose history holds three noise sensors: quiet, loud at 10:00, and moving."""
    directory: Path = tmp_path_factory.mktemp("temporal-filters")
    with running_broker(directory, db=backend_database(request)) as running:
        client = running.client
        for name, levels, place in (("quiet", [40, 42, 41], CENTRE),
                                    ("loud", [45, 78, 50], CENTRE),
                                    ("van", [44, 43, 46], VILLAGE)):  # fmt: skip
            entity_id = f"urn:ngsi-ld:{KIND}:{name}"
            first = {"id": entity_id, "type": KIND, "LAeq": _reading(levels[0], 9),
                     "location": {"type": "GeoProperty",
                                  "value": {"type": "Point", "coordinates": place}}}  # fmt: skip
            assert client.post(ENTITIES, json=first).status_code == 201
            for hour, level in zip((10, 11), levels[1:], strict=True):
                body = {"LAeq": _reading(level, hour)}
                assert client.patch(f"{ENTITIES}/{entity_id}/attrs", json=body).status_code == 204
        # The van drives to the centre at 12:00.
        moved = {"location": {"type": "GeoProperty", "observedAt": "2024-05-01T12:00:00Z",
                              "value": {"type": "Point", "coordinates": CENTRE}}}  # fmt: skip
        van = f"{ENTITIES}/urn:ngsi-ld:{KIND}:van/attrs"
        assert client.patch(van, json=moved).status_code == 204
        yield running


def _reading(level: float, hour: int) -> dict[str, Any]:
    return {"type": "Property", "value": level, "observedAt": f"2024-05-01T{hour:02d}:00:00Z"}


def _names(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [entity["id"].rsplit(":", 1)[1] for entity in response.json()]


def _between(start: str, end: str) -> dict[str, str]:
    return {"timerel": "between", "timeAt": f"2024-05-01T{start}:00Z",
            "endTimeAt": f"2024-05-01T{end}:00Z"}  # fmt: skip


def test_q_selects_entities_by_the_values_recorded_in_the_range(broker: Broker) -> None:
    client = broker.client
    loud = client.get(TEMPORAL, params={"type": KIND, "q": "LAeq>70", "count": "true"})
    assert _names(loud) == ["loud"]
    assert loud.headers["NGSILD-Results-Count"] == "1"
    # The loud reading (10:00) lies outside 10:30-12:00: nobody was above 70 then.
    late = {"type": KIND, "q": "LAeq>70", **_between("10:30", "12:00")}
    assert _names(client.get(TEMPORAL, params=late)) == []
    early = {"type": KIND, "q": "LAeq>70", **_between("09:30", "10:30")}
    assert _names(client.get(TEMPORAL, params=early)) == ["loud"]
    # Every term holds at some moment of the range; the answer keeps all instances asked for.
    both = client.get(TEMPORAL, params={"type": KIND, "q": "LAeq<44;LAeq>=46", "attrs": "LAeq"})
    assert _names(both) == ["van"]
    assert [i["value"] for i in both.json()[0]["LAeq"]] == [44, 43, 46]
    assert _names(client.get(TEMPORAL, params={"type": KIND, "q": "LAeq==41|LAeq==78"})) == [
        "loud", "quiet",
    ]  # fmt: skip


def test_q_may_name_attributes_the_answer_leaves_out(broker: Broker) -> None:
    found = broker.client.get(TEMPORAL, params={"type": KIND, "q": "LAeq>70", "attrs": "location"})
    assert _names(found) == ["loud"]
    assert list(found.json()[0]) == ["id", "type", "location"]


def test_paging_and_counting_follow_the_filter(broker: Broker) -> None:
    params = {"type": KIND, "q": "LAeq>=42", "count": "true", "limit": "1"}
    first = broker.client.get(TEMPORAL, params=params)
    assert _names(first) == ["loud"]
    assert first.headers["NGSILD-Results-Count"] == "3"
    assert 'rel="next"' in first.headers["Link"]
    second = broker.client.get(TEMPORAL, params={**params, "offset": "1"})
    assert _names(second) == ["quiet"]
    assert second.headers["NGSILD-Results-Count"] == "3"


def test_aggregations_are_of_the_filtered_entities(broker: Broker) -> None:
    response = broker.client.get(TEMPORAL, params={
        "type": KIND, "q": "LAeq>70", "attrs": "LAeq", "format": "aggregatedValues",
        "aggrMethods": "max,totalCount",
    })  # fmt: skip
    assert _names(response) == ["loud"]
    assert response.json()[0]["LAeq"]["max"][0][0] == 78
    assert response.json()[0]["LAeq"]["totalCount"][0][0] == 3


def test_geo_queries_select_entities_by_the_locations_recorded_in_the_range(
    broker: Broker,
) -> None:
    client = broker.client
    near = {"type": KIND, "georel": "near;maxDistance==1000", "geometry": "Point",
            "coordinates": f"[{CENTRE[0]},{CENTRE[1]}]"}  # fmt: skip
    # The van only reached the centre at 12:00.
    assert _names(client.get(TEMPORAL, params={**near, **_between("08:00", "11:30")})) == [
        "loud", "quiet",
    ]  # fmt: skip
    # Its live location written without observedAt is placed at the time Burgo recorded it, so
    # the whole history (no timerel) sees it at the village and in the centre.
    assert _names(client.get(TEMPORAL, params=near)) == ["loud", "quiet", "van"]
    far = {"type": KIND, "georel": "near;minDistance==5000", "geometry": "Point",
           "coordinates": f"[{CENTRE[0]},{CENTRE[1]}]"}  # fmt: skip
    assert _names(client.get(TEMPORAL, params=far)) == ["van"]
    inside = {"type": KIND, "georel": "within", "geometry": "Polygon",
              "coordinates": str(AROUND_CENTRE), "q": "LAeq<42"}  # fmt: skip
    assert _names(client.get(TEMPORAL, params=inside)) == ["quiet"]


def test_post_query_takes_q_and_geoq_in_the_body(broker: Broker) -> None:
    body = {
        "type": "Query",
        "entities": [{"type": KIND}],
        "attrs": ["LAeq"],
        "q": "LAeq>=45",
        "geoQ": {"georel": "within", "geometry": "Polygon", "coordinates": AROUND_CENTRE},
        "temporalQ": {"timerel": "before", "timeAt": "2024-05-01T11:30:00Z", "lastN": 1},
    }
    response = broker.client.post(f"{QUERY}?count=true", json=body)
    assert _names(response) == ["loud"]
    assert response.headers["NGSILD-Results-Count"] == "1"
    assert [i["value"] for i in response.json()[0]["LAeq"]] == [50]


@pytest.mark.parametrize(
    ("params", "status", "problem"),
    [
        ({"type": KIND, "q": "LAeq>>70"}, 400, "BadRequestData"),
        ({"type": KIND, "q": "LAeq>"}, 400, "BadRequestData"),
        (
            {"type": KIND, "georel": "near", "geometry": "Point", "coordinates": "[1,2]"},
            400,
            "BadRequestData",
        ),
        ({"type": KIND, "georel": "within", "geometry": "Point"}, 400, "BadRequestData"),
        (
            {"type": KIND, "georel": "within", "geometry": "Polygon", "coordinates": "[1"},
            400,
            "BadRequestData",
        ),
        ({"type": KIND, "geoproperty": "location"}, 400, "BadRequestData"),
        ({"type": KIND, "scopeQ": "/town"}, 422, "OperationNotSupported"),
    ],
)
def test_bad_filters_are_refused(
    broker: Broker, params: dict[str, str], status: int, problem: str
) -> None:
    assert_problem(broker.client.get(TEMPORAL, params=params), status, problem)


@pytest.mark.parametrize(
    "extra",
    [{"q": 7}, {"geoQ": "near"}, {"geoQ": {"georel": "within", "geometry": "Polygon"}}],
)
def test_bad_filters_in_a_query_body_are_refused(broker: Broker, extra: dict[str, Any]) -> None:
    body = {"type": "Query", "entities": [{"type": KIND}], **extra}
    assert_problem(broker.client.post(QUERY, json=body), 400, "BadRequestData")
