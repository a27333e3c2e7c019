"""GET /ngsi-ld/v1/entities/{id} in every representation a client can ask for.

The entities are created through the API once per module; every test only reads them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from burgo.app import create_app
from burgo.config import load_settings
from tests.api.entity_checks import assert_problem
from tests.conftest import CORE, LD, entity, link

BASE = "/ngsi-ld/v1/entities"
ROOM = "urn:ngsi-ld:Room:1"
BARE = "urn:ngsi-ld:Room:2"
OFFICE = "urn:ngsi-ld:Room:3"
POINT = {"type": "Point", "coordinates": [-7.5, 40.1]}
AREA = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}
ADDRESS = {"type": "PostalAddress", "streetAddress": "Rua da Cale", "addressLocality": "Fundão"}
NAMES = {"pt": "Sala do conselho", "en": "Council room", "@none": "Sala 1"}
USER_CONTEXT = {
    "ex": "https://example.org/",
    "Office": "ex:Office",
    "Person": "ex:Person",
    "usage": "ex:usage",
}
DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

ROOM_BODY = entity(
    ROOM,
    temperature={
        "type": "Property",
        "value": 21.5,
        "unitCode": "CEL",
        "observedAt": "2024-01-01T00:00:00Z",
        "accuracy": {"type": "Property", "value": 0.2},
    },
    location={"type": "GeoProperty", "value": POINT},
    area={"type": "GeoProperty", "value": AREA},
    name={"type": "LanguageProperty", "languageMap": NAMES},
    category={"type": "VocabProperty", "vocab": "meeting"},
    owner={"type": "Relationship", "object": "urn:ngsi-ld:Person:1"},
    address=ADDRESS,
    power=[
        {"type": "Property", "value": 120},
        {"type": "Property", "value": 40, "datasetId": "urn:ngsi-ld:Dataset:solar"},
    ],
    scope="/Fundao/CityHall",
)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A broker holding the entities these tests read (created through the API)."""
    db = Path(tmp_path_factory.mktemp("representations")) / "burgo.db"
    settings = load_settings(flags={"db": str(db)}, environ={}, config_path=None)
    with TestClient(create_app(settings)) as client:
        assert client.post(BASE, json=ROOM_BODY).status_code == 201
        assert client.post(BASE, json=entity(BARE, label="no location")).status_code == 201
        yield client


@pytest.fixture(scope="module")
def context_url(api: TestClient) -> str:
    """A user @context hosted by the broker, and an entity created with it."""
    hosted = api.post("/ngsi-ld/v1/jsonldContexts", json={"@context": USER_CONTEXT})
    assert hosted.status_code == 201, hosted.text
    url: str = hosted.headers["Location"]
    office = {
        "id": OFFICE,
        "type": "Room",
        "usage": {"vocab": ["Office", "meeting"]},
        "owner": {"object": "urn:ngsi-ld:Person:1", "objectType": "Person"},
        "@context": [url, CORE],
    }
    assert api.post(BASE, json=office, headers=LD).status_code == 201
    return url


def get(api: TestClient, params: str = "", entity_id: str = ROOM, **headers: str) -> Any:
    return api.get(f"{BASE}/{entity_id}{'?' + params if params else ''}", headers=headers)


def body(api: TestClient, params: str = "", entity_id: str = ROOM, **headers: str) -> Any:
    response = get(api, params, entity_id, **headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_normalized_by_default_with_the_context_in_a_link_header(api: TestClient) -> None:
    response = get(api)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert f"<{CORE}>" in response.headers["link"]
    out = response.json()
    assert out["temperature"] == {
        "type": "Property",
        "value": 21.5,
        "unitCode": "CEL",
        "observedAt": "2024-01-01T00:00:00.000Z",
        "accuracy": {"type": "Property", "value": 0.2},
    }
    assert out["address"] == {"type": "Property", "value": ADDRESS}
    assert out["scope"] == "/Fundao/CityHall"
    assert "@context" not in out
    assert "createdAt" not in response.text


@pytest.mark.parametrize("params", ["options=concise", "format=concise"])
def test_concise(api: TestClient, params: str) -> None:
    out = body(api, params)
    assert out["temperature"] == {
        "value": 21.5,
        "unitCode": "CEL",
        "observedAt": "2024-01-01T00:00:00.000Z",
        "accuracy": 0.2,
    }
    assert out["location"] == POINT
    assert out["name"] == {"languageMap": NAMES}
    assert out["category"] == {"vocab": "meeting"}
    assert out["owner"] == {"object": "urn:ngsi-ld:Person:1"}
    # An object value with a "type" of its own must not pass for a normalized attribute.
    assert out["address"] == {"value": ADDRESS}
    assert out["power"] == [{"value": 120}, {"value": 40, "datasetId": "urn:ngsi-ld:Dataset:solar"}]


@pytest.mark.parametrize("params", ["options=keyValues", "format=keyValues", "format=simplified"])
def test_simplified(api: TestClient, params: str) -> None:
    assert body(api, params) == {
        "id": ROOM,
        "type": "Room",
        "scope": "/Fundao/CityHall",
        "temperature": 21.5,
        "location": POINT,
        "area": AREA,
        "name": {"languageMap": NAMES},
        "category": {"vocab": "meeting"},
        "owner": "urn:ngsi-ld:Person:1",
        "address": ADDRESS,
        "power": {"dataset": {"@none": 120, "urn:ngsi-ld:Dataset:solar": 40}},
    }


def test_format_wins_over_options(api: TestClient) -> None:
    assert body(api, "options=keyValues&format=normalized")["temperature"]["type"] == "Property"
    assert body(api, "options=normalized&format=keyValues")["temperature"] == 21.5


@pytest.mark.parametrize(
    "params",
    [
        "options=keyValues,concise",
        "options=normalized&options=concise",
        "format=pretty",
        "options=x",
    ],
)
def test_conflicting_or_unknown_formats_are_bad_requests(api: TestClient, params: str) -> None:
    assert_problem(get(api, params), 400, "BadRequestData")


def test_sys_attrs_on_entity_attributes_and_sub_attributes(api: TestClient) -> None:
    out = body(api, "options=sysAttrs")
    stamps = [
        out["createdAt"],
        out["modifiedAt"],
        out["temperature"]["createdAt"],
        out["temperature"]["modifiedAt"],
        out["temperature"]["accuracy"]["createdAt"],
        out["power"][1]["modifiedAt"],
    ]
    assert all(DATETIME.match(stamp) for stamp in stamps)
    assert out["createdAt"] == out["temperature"]["createdAt"]
    concise = body(api, "options=sysAttrs,concise")
    assert concise["temperature"]["accuracy"]["createdAt"] == out["createdAt"]
    simplified = body(api, "options=sysAttrs,keyValues")
    assert (simplified["createdAt"], simplified["temperature"]) == (out["createdAt"], 21.5)


def test_attrs_keeps_only_the_listed_attributes(api: TestClient) -> None:
    out = body(api, "attrs=temperature,missing")
    assert set(out) == {"id", "type", "scope", "temperature"}


def test_attrs_naming_none_of_the_attributes_is_not_found(api: TestClient) -> None:
    assert_problem(get(api, "attrs=missing,other"), 404, "ResourceNotFound")


@pytest.mark.parametrize(
    ("params", "keys"),
    [
        ("pick=temperature", {"temperature"}),
        ("pick=id,type,temperature,name", {"id", "type", "temperature", "name"}),
        ("pick=id,scope", {"id", "scope"}),
        (
            "omit=id,type,scope,location,area,name,category",
            {"temperature", "owner", "address", "power"},
        ),
        ("pick=id,temperature,name&omit=name", {"id", "temperature"}),
    ],
)
def test_pick_and_omit(api: TestClient, params: str, keys: set[str]) -> None:
    assert set(body(api, params)) == keys


def test_pick_works_with_every_format(api: TestClient) -> None:
    assert body(api, "pick=power&format=keyValues") == {
        "power": {"dataset": {"@none": 120, "urn:ngsi-ld:Dataset:solar": 40}}
    }


def test_attrs_and_pick_together_are_a_bad_request(api: TestClient) -> None:
    assert_problem(get(api, "attrs=temperature&pick=temperature"), 400, "BadRequestData")


@pytest.mark.parametrize(
    ("lang", "tag"),
    [
        ("pt", "pt"),
        ("en-GB", "en"),
        ("fr,en;q=0.5", "en"),
        ("en;q=0.5,pt;q=0.9", "pt"),
        ("*", "@none"),
        ("de", "@none"),
    ],
)
def test_lang_gives_a_property_in_the_best_language(api: TestClient, lang: str, tag: str) -> None:
    out = body(api, f"lang={lang}")
    assert out["name"] == {"type": "Property", "value": NAMES[tag], "lang": tag}
    assert body(api, f"lang={lang}&format=concise")["name"] == {"value": NAMES[tag], "lang": tag}
    assert body(api, f"lang={lang}&format=keyValues")["name"] == NAMES[tag]


def test_geojson_feature_with_location_as_geometry(api: TestClient) -> None:
    response = get(api, Accept="application/geo+json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/geo+json"
    assert "link" not in response.headers
    feature = response.json()
    assert feature["type"] == "Feature"
    assert feature["id"] == ROOM
    assert feature["geometry"] == POINT
    assert feature["@context"] == CORE
    properties = feature["properties"]
    assert properties["type"] == "Room"
    assert properties["location"] == {"type": "GeoProperty", "value": POINT}
    assert properties["temperature"]["accuracy"] == {"type": "Property", "value": 0.2}


def test_geojson_geometry_property_and_missing_geometry(api: TestClient) -> None:
    assert body(api, "geometryProperty=area", Accept="application/geo+json")["geometry"] == AREA
    assert body(api, "geometryProperty=name", Accept="application/geo+json")["geometry"] is None
    assert body(api, entity_id=BARE, Accept="application/geo+json")["geometry"] is None


def test_geojson_simplified_properties(api: TestClient) -> None:
    feature = body(api, "format=keyValues&pick=temperature", Accept="application/geo+json")
    assert feature["properties"] == {"temperature": 21.5}
    assert feature["geometry"] == POINT


def test_geojson_with_prefer_body_json_links_the_context(api: TestClient) -> None:
    response = get(api, Accept="application/geo+json", Prefer="body=json")
    assert response.status_code == 200
    assert "@context" not in response.json()
    assert f"<{CORE}>" in response.headers["link"]


def test_user_context_compacts_names_vocab_and_object_type(
    api: TestClient, context_url: str
) -> None:
    out = body(api, entity_id=OFFICE, **link(context_url))
    assert out["usage"] == {"type": "VocabProperty", "vocab": ["Office", "meeting"]}
    assert out["owner"]["objectType"] == "Person"
    simplified = body(api, "format=keyValues", OFFICE, **link(context_url))
    assert simplified["usage"] == {"vocab": ["Office", "meeting"]}
    expanded = body(api, entity_id=OFFICE)
    assert expanded["https://example.org/usage"]["vocab"] == [
        "https://example.org/Office",
        "meeting",
    ]
    assert expanded["owner"]["objectType"] == "https://example.org/Person"


def test_ld_json_puts_the_context_in_the_body(api: TestClient, context_url: str) -> None:
    response = get(api, "", OFFICE, Accept="application/ld+json", **link(context_url))
    assert response.headers["content-type"] == "application/ld+json"
    assert "link" not in response.headers
    out = response.json()
    assert out["@context"] == context_url
    assert "usage" in out


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        ("application/json", "application/json"),
        ("application/ld+json", "application/ld+json"),
        ("application/geo+json", "application/geo+json"),
        ("*/*", "application/json"),
        ("application/*", "application/json"),
        ("text/html, */*;q=0.1", "application/json"),
        ("application/json;q=0.5, application/ld+json", "application/ld+json"),
        ("application/json;q=0.2, application/geo+json;q=0.8", "application/geo+json"),
        ("application/ld+json, application/json", "application/json"),
    ],
)
def test_accept_negotiation(api: TestClient, accept: str, media_type: str) -> None:
    response = get(api, Accept=accept)
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type


@pytest.mark.parametrize("accept", ["text/html", "application/xml", "application/json;q=0"])
def test_unservable_accept_is_406_even_for_a_missing_entity(api: TestClient, accept: str) -> None:
    assert get(api, Accept=accept).status_code == 406
    assert get(api, "", "urn:ngsi-ld:Room:404", Accept=accept).status_code == 406


def test_unknown_entity_is_404_and_a_bad_id_400(api: TestClient) -> None:
    assert_problem(get(api, "", "urn:ngsi-ld:Room:404"), 404, "ResourceNotFound")
    assert_problem(get(api, "", "not-a-uri"), 400, "BadRequestData")
