"""GET /entities, POST /entityOperations/query and DELETE /entities (purge) over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.entity_checks import BACKENDS, assert_problem, backend_database, running_broker
from tests.conftest import LD, link

BASE = "/ngsi-ld/v1/entities"
QUERY = "/ngsi-ld/v1/entityOperations/query"
CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld"
SDM = "https://smartdatamodels.org/dataModel.WasteManagement/"


def container(number: int, level: float, lon: float, **extra: Any) -> dict[str, Any]:
    """A WasteContainer with a filling level and a location east of Fundão's centre."""
    return {
        "id": f"urn:ngsi-ld:WasteContainer:{number:02d}",
        "type": "WasteContainer",
        "fillingLevel": {"type": "Property", "value": level},
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [lon, 40.14]},
        },
        **extra,
    }


def spot(number: int, status: str) -> dict[str, Any]:
    """A ParkingSpot without a location."""
    return {
        "id": f"urn:ngsi-ld:ParkingSpot:{number:02d}",
        "type": "ParkingSpot",
        "status": {"type": "Property", "value": status},
    }


# 0.001 degree of longitude at 40.14 N is about 85 m.
TOWN = [container(n, n / 10, -7.5 + n * 0.001) for n in range(10)] + [
    spot(1, "free"),
    spot(2, "occupied"),
    {**spot(3, "free"), "type": ["ParkingSpot", "WasteContainer"]},
]


@pytest.fixture(scope="module", params=BACKENDS)
def client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """One broker for the module, holding TOWN (tests that write use a tenant of their own)."""
    directory: Path = tmp_path_factory.mktemp("query")
    with running_broker(
        directory, db=backend_database(request), query_default_limit=5, query_max_limit=50
    ) as broker:
        for item in TOWN:
            response = broker.client.post(BASE, json=item)
            assert response.status_code == 201, response.text
        yield broker.client


def found(response: Any) -> list[str]:
    """The ids of a query answer, checking it is a 200."""
    assert response.status_code == 200, response.text
    return [e["id"] for e in response.json()]


def wc(*numbers: int) -> list[str]:
    """WasteContainer ids."""
    return [f"urn:ngsi-ld:WasteContainer:{n:02d}" for n in numbers]


# -- selectors -----------------------------------------------------------------------------------


def test_type_expressions(client: TestClient) -> None:
    spots = found(client.get(BASE, params={"type": "ParkingSpot"}))
    assert spots == [f"urn:ngsi-ld:ParkingSpot:{n:02d}" for n in (1, 2, 3)]
    both = found(client.get(BASE, params={"type": "ParkingSpot;WasteContainer"}))
    assert both == ["urn:ngsi-ld:ParkingSpot:03"]
    either = client.get(BASE, params={"type": "(ParkingSpot|WasteContainer)", "count": "true"})
    assert either.headers["NGSILD-Results-Count"] == "13"


def test_ids_and_id_patterns(client: TestClient) -> None:
    ids = ",".join(wc(3, 1)) + ",urn:ngsi-ld:Nothing:1"
    assert found(client.get(BASE, params={"id": ids})) == wc(1, 3)
    pattern = {"idPattern": "Container:0[2-4]$", "type": "WasteContainer"}
    assert found(client.get(BASE, params=pattern)) == wc(2, 3, 4)


def test_attrs_selects_and_projects(client: TestClient) -> None:
    body = client.get(BASE, params={"attrs": "status"}).json()
    assert [e["id"] for e in body] == [f"urn:ngsi-ld:ParkingSpot:{n:02d}" for n in (1, 2, 3)]
    assert all(set(e) == {"id", "type", "status"} for e in body)


def test_q_filters(client: TestClient) -> None:
    answer = client.get(BASE, params={"type": "WasteContainer", "q": "fillingLevel>0.65"})
    assert found(answer) == wc(7, 8, 9)
    free = client.get(BASE, params={"type": "ParkingSpot", "q": 'status=="free"'})
    assert found(free) == ["urn:ngsi-ld:ParkingSpot:01", "urn:ngsi-ld:ParkingSpot:03"]


def test_a_user_context_names_types_attributes_and_q_terms(client: TestClient) -> None:
    vocab = "https://uri.etsi.org/ngsi-ld/default-context/"
    hosted = client.post(
        "/ngsi-ld/v1/jsonldContexts",
        json={"@context": {"Bin": vocab + "WasteContainer", "fill": vocab + "fillingLevel"}},
    )
    assert hosted.status_code == 201, hosted.text
    params = {"type": "Bin", "q": "fill>0.75", "attrs": "fill", "options": "keyValues"}
    answer = client.get(BASE, params=params, headers=link(hosted.headers["Location"]))
    assert answer.json() == [
        {"id": wc(8)[0], "type": "Bin", "fill": 0.8},
        {"id": wc(9)[0], "type": "Bin", "fill": 0.9},
    ]


# -- representations -----------------------------------------------------------------------------


def test_key_values_and_concise_and_sys_attrs(client: TestClient) -> None:
    params = {"id": wc(1)[0], "options": "keyValues"}
    assert client.get(BASE, params=params).json()[0]["fillingLevel"] == 0.1
    concise = client.get(BASE, params={"id": wc(1)[0], "format": "concise"}).json()[0]
    assert concise["fillingLevel"] == 0.1
    system = client.get(BASE, params={"id": wc(1)[0], "options": "sysAttrs"}).json()[0]
    assert "createdAt" in system and "createdAt" in system["fillingLevel"]


def test_pick_and_omit(client: TestClient) -> None:
    picked = client.get(BASE, params={"id": wc(1)[0], "pick": "id,fillingLevel"}).json()[0]
    assert set(picked) == {"id", "fillingLevel"}
    omitted = client.get(BASE, params={"id": wc(1)[0], "omit": "location"}).json()[0]
    assert set(omitted) == {"id", "type", "fillingLevel"}


def test_json_ld_puts_the_context_in_every_entity(client: TestClient) -> None:
    answer = client.get(
        BASE, params={"type": "ParkingSpot"}, headers={"Accept": "application/ld+json"}
    )
    assert answer.headers["content-type"].startswith("application/ld+json")
    assert all(e["@context"] == CONTEXT for e in answer.json())


def test_geo_json_gives_a_feature_collection(client: TestClient) -> None:
    answer = client.get(
        BASE, params={"id": ",".join(wc(1, 2))}, headers={"Accept": "application/geo+json"}
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/geo+json")
    body = answer.json()
    assert body["type"] == "FeatureCollection" and body["@context"] == CONTEXT
    first = body["features"][0]
    assert first["id"] == wc(1)[0] and first["type"] == "Feature"
    assert first["geometry"] == {"type": "Point", "coordinates": [-7.499, 40.14]}
    assert first["properties"]["fillingLevel"] == {"type": "Property", "value": 0.1}


def test_an_unacceptable_media_type_is_406(client: TestClient) -> None:
    answer = client.get(BASE, params={"type": "ParkingSpot"}, headers={"Accept": "text/csv"})
    assert_problem(answer, 406, "NotAcceptable")


# -- geo-queries ---------------------------------------------------------------------------------


def test_near_with_max_and_min_distance(client: TestClient) -> None:
    near = {"georel": "near;maxDistance==300", "geometry": "Point", "coordinates": "[-7.5,40.14]"}
    assert found(client.get(BASE, params=near)) == wc(0, 1, 2, 3)
    far = {**near, "georel": "near;minDistance==600", "type": "WasteContainer"}
    assert found(client.get(BASE, params=far)) == wc(8, 9)


def test_within_a_polygon_on_a_named_geoproperty(client: TestClient) -> None:
    square = "[[[-7.4965,40.13],[-7.4935,40.13],[-7.4935,40.15],[-7.4965,40.15],[-7.4965,40.13]]]"
    params = {"georel": "within", "geometry": "Polygon", "coordinates": square}
    assert found(client.get(BASE, params=params)) == wc(4, 5, 6)
    other = {**params, "geoproperty": "observationSpace"}
    assert found(client.get(BASE, params=other)) == []


# -- pagination ----------------------------------------------------------------------------------


def test_the_default_limit_and_the_page_links(client: TestClient) -> None:
    first = client.get(BASE, params={"type": "WasteContainer", "count": "true"})
    assert found(first) == ["urn:ngsi-ld:ParkingSpot:03", *wc(0, 1, 2, 3)]
    assert first.headers["NGSILD-Results-Count"] == "11"
    links = first.headers.get_list("link")
    assert any('rel="next"' in v and "offset=5" in v and "limit=5" in v for v in links)
    assert not any('rel="prev"' in v for v in links)
    middle = client.get(BASE, params={"type": "WasteContainer", "offset": "5", "limit": "5"})
    assert found(middle) == wc(4, 5, 6, 7, 8)
    links = middle.headers.get_list("link")
    assert any('rel="prev"' in v and "offset=0" in v for v in links)
    assert any('rel="next"' in v and "offset=10" in v for v in links)
    last = client.get(BASE, params={"type": "WasteContainer", "offset": "10"})
    assert found(last) == wc(9)
    assert not any('rel="next"' in v for v in last.headers.get_list("link"))
    assert "NGSILD-Results-Count" not in last.headers


def test_limit_zero_with_count_gives_the_count_only(client: TestClient) -> None:
    answer = client.get(BASE, params={"type": "ParkingSpot", "limit": "0", "count": "true"})
    assert answer.json() == [] and answer.headers["NGSILD-Results-Count"] == "3"


@pytest.mark.parametrize(
    ("params", "status", "problem"),
    [
        ({}, 400, "BadRequestData"),
        ({"options": "keyValues"}, 400, "BadRequestData"),
        ({"type": "WasteContainer", "limit": "51"}, 403, "TooManyResults"),
        ({"type": "WasteContainer", "limit": "-1"}, 400, "BadRequestData"),
        ({"type": "WasteContainer", "limit": "0"}, 400, "BadRequestData"),
        ({"type": "WasteContainer", "offset": "x"}, 400, "BadRequestData"),
        ({"type": "WasteContainer", "count": "yes"}, 400, "BadRequestData"),
        ({"type": "(WasteContainer"}, 400, "BadRequestData"),
        ({"id": "not a uri"}, 400, "BadRequestData"),
        ({"idPattern": "(("}, 400, "BadRequestData"),
        ({"type": "WasteContainer", "q": "fillingLevel>>"}, 400, "BadRequestData"),
        ({"georel": "near", "geometry": "Point", "coordinates": "[1,2]"}, 400, "BadRequestData"),
        ({"georel": "within", "geometry": "Point"}, 400, "BadRequestData"),
        ({"type": "WasteContainer", "options": "fast"}, 400, "BadRequestData"),
        ({"type": "WasteContainer", "attrs": "a", "pick": "b"}, 400, "BadRequestData"),
    ],
)
def test_bad_queries_get_the_problem_the_spec_names(
    client: TestClient, params: dict[str, str], status: int, problem: str
) -> None:
    assert_problem(client.get(BASE, params=params), status, problem)


# -- POST /entityOperations/query ----------------------------------------------------------------


def test_a_query_body_ors_its_entity_selectors(client: TestClient) -> None:
    body = {
        "type": "Query",
        "entities": [{"type": "ParkingSpot", "idPattern": "0[12]$"}, {"id": wc(9)[0]}],
    }
    answer = client.post(QUERY, json=body, params={"count": "true"})
    assert found(answer) == [
        "urn:ngsi-ld:ParkingSpot:01",
        "urn:ngsi-ld:ParkingSpot:02",
        "urn:ngsi-ld:WasteContainer:09",
    ]
    assert answer.headers["NGSILD-Results-Count"] == "3"


def test_a_query_body_with_geo_q_attrs_and_q(client: TestClient) -> None:
    body = {
        "type": "Query",
        "entities": [{"type": "WasteContainer"}],
        "attrs": ["fillingLevel"],
        "q": "fillingLevel>=0.2",
        "geoQ": {"georel": "near;maxDistance==400", "geometry": "Point",
                 "coordinates": [-7.5, 40.14]},
    }  # fmt: skip
    answer = client.post(QUERY, json=body, params={"options": "keyValues"})
    assert answer.json() == [
        {"id": i, "type": "WasteContainer", "fillingLevel": n / 10}
        for i, n in zip(wc(2, 3, 4), (2, 3, 4), strict=True)
    ]


def test_a_json_ld_query_body_carries_its_context(client: TestClient) -> None:
    body = {"type": "Query", "entities": [{"type": "ParkingSpot"}], "@context": CONTEXT}
    answer = client.post(QUERY, json=body, headers={**LD, "Accept": "application/ld+json"})
    assert len(found(answer)) == 3


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"type": "Subscription", "entities": [{"type": "ParkingSpot"}]},
        {"type": "Query"},
        {"type": "Query", "entities": "ParkingSpot"},
        {"type": "Query", "entities": [{}]},
        {"type": "Query", "entities": [{"type": 5}]},
        {"type": "Query", "geoQ": {"georel": "within", "geometry": "Point"}},
        {"type": "Query", "geoQ": "near"},
        {"type": "Query", "q": 5},
    ],
)
def test_a_bad_query_body_is_bad_request_data(client: TestClient, body: Any) -> None:
    assert_problem(client.post(QUERY, json=body), 400, "BadRequestData")


def test_a_query_body_that_is_not_json_is_an_invalid_request(client: TestClient) -> None:
    answer = client.post(QUERY, content=b"{", headers={"Content-Type": "application/json"})
    assert_problem(answer, 400, "InvalidRequest")


# -- tenants and purge ---------------------------------------------------------------------------


def test_an_unknown_tenant_is_404(client: TestClient) -> None:
    headers = {"NGSILD-Tenant": "nowhere"}
    answer = client.get(BASE, params={"type": "ParkingSpot"}, headers=headers)
    assert_problem(answer, 404, "NonexistentTenant")
    purge = client.delete(BASE, params={"type": "ParkingSpot"}, headers=headers)
    assert_problem(purge, 404, "NonexistentTenant")


def test_purge_deletes_the_matches_of_one_tenant_only(client: TestClient) -> None:
    headers = {"NGSILD-Tenant": "purge"}
    for item in (container(1, 0.9, -7.5), container(2, 0.1, -7.5), spot(1, "free")):
        assert client.post(BASE, json=item, headers=headers).status_code == 201
    purge = client.delete(
        BASE, params={"type": "WasteContainer", "q": "fillingLevel>0.5"}, headers=headers
    )
    assert purge.status_code == 204 and purge.headers["NGSILD-Tenant"] == "purge"
    left = client.get(BASE, params={"idPattern": "."}, headers=headers)
    assert found(left) == ["urn:ngsi-ld:ParkingSpot:01", "urn:ngsi-ld:WasteContainer:02"]
    near = {"georel": "near;maxDistance==10", "geometry": "Point", "coordinates": "[-7.5,40.14]"}
    assert client.delete(BASE, params=near, headers=headers).status_code == 204
    assert found(client.get(BASE, params={"idPattern": "."}, headers=headers)) == [
        "urn:ngsi-ld:ParkingSpot:01"
    ]
    assert len(found(client.get(BASE, params={"type": "WasteContainer", "limit": "50"}))) == 11


@pytest.mark.parametrize(
    "params",
    [{}, {"attrs": "status", "type": "ParkingSpot"}, {"type": "(("}, {"idPattern": "(("}],
)
def test_a_purge_without_good_selectors_deletes_nothing(
    client: TestClient, params: dict[str, str]
) -> None:
    assert_problem(client.delete(BASE, params=params), 400, "BadRequestData")
    everything = client.get(BASE, params={"idPattern": ".", "count": "true", "limit": "0"})
    assert everything.headers["NGSILD-Results-Count"] == str(len(TOWN))


def test_one_entity_routes_still_work_beside_the_query_routes(client: TestClient) -> None:
    assert client.get(f"{BASE}/{wc(1)[0]}").json()["id"] == wc(1)[0]
    assert_problem(client.get(f"{BASE}/urn:ngsi-ld:Nothing:1"), 404, "ResourceNotFound")
