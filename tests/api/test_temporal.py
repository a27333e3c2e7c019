"""The temporal API end to end: history recorded by entity writes, read back in every
representation, filtered in time, paginated, and refused clearly when asked wrongly."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from burgo.store.temporal import HistoryRetention
from tests.api.entity_checks import (
    BACKENDS,
    START,
    Broker,
    assert_problem,
    backend_database,
    running_broker,
)
from tests.conftest import CORE, JSON, LD, link

ENTITIES = "/ngsi-ld/v1/entities"
TEMPORAL = "/ngsi-ld/v1/temporal/entities"
QUERY = "/ngsi-ld/v1/temporal/entityOperations/query"


@pytest.fixture(scope="module", params=BACKENDS)
def broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Broker]:
    """One broker for the module, with a small instance limit to see pagination."""
    directory: Path = tmp_path_factory.mktemp("temporal")
    url = backend_database(request)
    with running_broker(directory, db=url, temporal_max_instances=5) as running:
        yield running


@pytest.fixture(autouse=True)
def clock_at_start(broker: Broker) -> None:
    """Each test starts at the same moment (its entities are its own)."""
    broker.clock.moment = START


def sensor(entity_id: str, value: float, observed: str | None = None) -> dict[str, Any]:
    """An AirQualityObserved entity with a NO2 reading and a level."""
    no2: dict[str, Any] = {"type": "Property", "value": value, "unitCode": "GQ"}
    if observed:
        no2["observedAt"] = observed
    return {"id": entity_id, "type": "AirQualityObserved", "no2": no2,
            "level": {"type": "Property", "value": "good"}}  # fmt: skip


def reading(broker: Broker, entity_id: str, value: float, observed: str) -> None:
    """One new NO2 reading, a minute after the previous write."""
    broker.clock.advance(60)
    body = {"no2": {"type": "Property", "value": value, "observedAt": observed}}
    response = broker.client.patch(f"{ENTITIES}/{entity_id}/attrs", json=body)
    assert response.status_code == 204, response.text


def history(broker: Broker, entity_id: str, **params: Any) -> Any:
    """The temporal representation of an entity (200 or 206 expected)."""
    response = broker.client.get(f"{TEMPORAL}/{entity_id}", params=params)
    assert response.status_code in (200, 206), response.text
    return response.json()


def test_every_change_is_recorded_with_instance_ids_and_times(broker: Broker) -> None:
    client = broker.client
    entity_id = "urn:ngsi-ld:AirQualityObserved:rec"
    assert (
        client.post(ENTITIES, json=sensor(entity_id, 40, "2024-05-01T10:00:00Z")).status_code == 201
    )
    reading(broker, entity_id, 42, "2024-05-01T10:01:00Z")
    reading(broker, entity_id, 45.5, "2024-05-01T10:02:00Z")

    body = history(broker, entity_id, options="sysAttrs")
    no2 = body["no2"]
    assert [i["value"] for i in no2] == [40, 42, 45.5]
    assert [i["observedAt"] for i in no2] == [
        "2024-05-01T10:00:00.000Z", "2024-05-01T10:01:00.000Z", "2024-05-01T10:02:00.000Z",
    ]  # fmt: skip
    assert no2[0]["unitCode"] == "GQ"
    assert len({i["instanceId"] for i in no2}) == 3
    assert all(i["instanceId"].startswith("urn:") for i in no2)
    assert [i["createdAt"] for i in no2] == [
        "2024-05-01T08:00:00.000Z", "2024-05-01T08:01:00.000Z", "2024-05-01T08:02:00.000Z",
    ]  # fmt: skip
    # The level never changed: one instance, recorded at creation.
    assert [i["value"] for i in body["level"]] == ["good"]
    assert body["type"] == "AirQualityObserved"
    assert body["createdAt"] == "2024-05-01T08:00:00.000Z"


def test_every_kind_of_write_is_recorded(broker: Broker) -> None:
    client = broker.client
    entity_id = "urn:ngsi-ld:AirQualityObserved:writes"
    url = f"{ENTITIES}/{entity_id}"

    def no2(value: int) -> dict[str, Any]:
        return {"type": "Property", "value": value}

    def whole(value: int) -> dict[str, Any]:
        return {"id": entity_id, "type": "AirQualityObserved", "no2": no2(value)}

    writes = [
        ("POST", ENTITIES, whole(1), 201),
        ("POST", f"{url}/attrs", {"no2": no2(2), "so2": no2(50)}, 204),  # append
        ("PATCH", f"{url}/attrs", {"no2": no2(3)}, 204),  # update
        ("PATCH", f"{url}/attrs/no2", {"value": 4}, 204),  # partial attribute update
        ("PUT", f"{url}/attrs/no2", no2(5), 204),  # replace an attribute
        ("PATCH", url, {"no2": no2(6)}, 204),  # merge
        ("PUT", url, whole(7), 204),  # replace the entity (so2 goes)
        ("POST", "/ngsi-ld/v1/entityOperations/upsert", [whole(8)], 204),
        ("POST", "/ngsi-ld/v1/entityOperations/update", [whole(9)], 204),
        ("POST", "/ngsi-ld/v1/entityOperations/merge", [whole(10)], 204),
    ]
    for method, path, body, expected in writes:
        broker.clock.advance(60)
        response = client.request(method, path, json=body)
        assert response.status_code == expected, (method, path, response.text)
    # Each instance sits at the time it was written (a minute apart); pages of 5 here.
    values = history(broker, entity_id, options="temporalValues")
    later = history(broker, entity_id, options="temporalValues", timerel="after",
                    timeAt="2024-05-01T08:05:30Z")  # fmt: skip
    recorded = values["no2"]["values"] + later["no2"]["values"]
    assert [v for v, _ in recorded] == list(range(1, 11))
    assert [v for v, _ in values["so2"]["values"]] == [50]
    gone = history(broker, entity_id, timeproperty="deletedAt")["so2"]
    assert gone[0]["deletedAt"] == "2024-05-01T08:07:00.000Z"


def test_a_rejected_update_records_no_history(broker: Broker) -> None:
    client = broker.client
    entity_id = "urn:ngsi-ld:AirQualityObserved:rejected"
    client.post(ENTITIES, json=sensor(entity_id, 10, "2024-05-01T10:00:00Z"))
    bad = client.patch(
        f"{ENTITIES}/{entity_id}/attrs",
        params={"type": "Streetlight"},
        json={"no2": {"type": "Property", "value": 99}},
    )
    assert bad.status_code == 404
    assert [i["value"] for i in history(broker, entity_id)["no2"]] == [10]


def test_instances_without_observed_at_are_placed_at_their_write_time(broker: Broker) -> None:
    client = broker.client
    entity_id = "urn:ngsi-ld:AirQualityObserved:noobs"
    client.post(ENTITIES, json=sensor(entity_id, 1))
    no2 = history(broker, entity_id)["no2"]
    assert "observedAt" not in no2[0]
    values = history(broker, entity_id, options="temporalValues")["no2"]
    assert values["values"][0][1] == broker.clock.now().strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_deletions_are_recorded_with_deleted_at(broker: Broker) -> None:
    client = broker.client
    entity_id = "urn:ngsi-ld:AirQualityObserved:del"
    client.post(ENTITIES, json=sensor(entity_id, 5, "2024-05-01T10:00:00Z"))
    broker.clock.advance(60)
    assert client.delete(f"{ENTITIES}/{entity_id}/attrs/level").status_code == 204
    deleted = history(broker, entity_id, timeproperty="deletedAt")
    assert list(deleted) == ["id", "type", "level"]
    assert deleted["level"][0]["value"] == "urn:ngsi-ld:null"
    assert deleted["level"][0]["deletedAt"] == "2024-05-01T08:01:00.000Z"
    broker.clock.advance(60)
    assert client.delete(f"{ENTITIES}/{entity_id}").status_code == 204
    after = history(broker, entity_id, timeproperty="deletedAt", options="sysAttrs")
    assert after["deletedAt"] == "2024-05-01T08:02:00.000Z"
    assert after["no2"][0]["deletedAt"] == "2024-05-01T08:02:00.000Z"
    # The values recorded before the deletion are still there.
    assert [i["value"] for i in history(broker, entity_id)["no2"]] == [5]


def _series(broker: Broker, entity_id: str, count: int) -> None:
    broker.client.post(ENTITIES, json=sensor(entity_id, 0, "2024-05-01T00:00:00Z"))
    for minute in range(1, count):
        reading(broker, entity_id, minute, f"2024-05-01T00:{minute:02d}:00Z")


def test_time_filters_are_half_open(broker: Broker) -> None:
    entity_id = "urn:ngsi-ld:AirQualityObserved:range"
    _series(broker, entity_id, 5)

    def values(**params: Any) -> list[Any]:
        return [i["value"] for i in history(broker, entity_id, attrs="no2", **params)["no2"]]

    at, end = "2024-05-01T00:01:00Z", "2024-05-01T00:03:00Z"
    assert values(timerel="before", timeAt=at) == [0]
    assert values(timerel="after", timeAt=at) == [1, 2, 3, 4]
    assert values(timerel="between", timeAt=at, endTimeAt=end) == [1, 2]
    assert values(lastN=2) == [3, 4]
    assert values(timerel="after", timeAt=at, lastN=1) == [4]
    created = values(timeproperty="createdAt", timerel="before", timeAt="2024-05-01T08:02:00Z")
    assert created == [0, 1]


def test_temporal_values_representation(broker: Broker) -> None:
    entity_id = "urn:ngsi-ld:AirQualityObserved:tv"
    _series(broker, entity_id, 3)
    for params in ({"options": "temporalValues"}, {"format": "temporalValues"}):
        body = history(broker, entity_id, **params)
        assert body["no2"] == {
            "type": "Property",
            "values": [
                [0, "2024-05-01T00:00:00.000Z"],
                [1, "2024-05-01T00:01:00.000Z"],
                [2, "2024-05-01T00:02:00.000Z"],
            ],
        }


def test_aggregated_values(broker: Broker) -> None:
    entity_id = "urn:ngsi-ld:AirQualityObserved:agg"
    _series(broker, entity_id, 4)
    body = history(
        broker, entity_id, format="aggregatedValues", aggrMethods="avg,max,totalCount,sum",
        aggrPeriodDuration="PT2M", timerel="after", timeAt="2024-05-01T00:00:00Z", attrs="no2",
    )  # fmt: skip
    no2 = body["no2"]
    first, second = "2024-05-01T00:00:00.000Z", "2024-05-01T00:02:00.000Z"
    third = "2024-05-01T00:04:00.000Z"
    assert no2["type"] == "Property"
    assert no2["avg"] == [[0.5, first, second], [2.5, second, third]]
    assert no2["max"] == [[1, first, second], [3, second, third]]
    assert no2["totalCount"] == [[2, first, second], [2, second, third]]
    assert no2["sum"] == [[1.0, first, second], [5.0, second, third]]
    whole = history(broker, entity_id, options="aggregatedValues", aggrMethods="min,stddev",
                    attrs="no2")["no2"]  # fmt: skip
    assert whole["min"][0][0] == 0
    assert whole["stddev"][0][0] == pytest.approx(1.2909944487358056)


def test_instances_past_the_limit_are_paginated_with_content_range(broker: Broker) -> None:
    entity_id = "urn:ngsi-ld:AirQualityObserved:page"
    _series(broker, entity_id, 8)
    response = broker.client.get(f"{TEMPORAL}/{entity_id}", params={"attrs": "no2"})
    assert response.status_code == 206
    assert [i["value"] for i in response.json()["no2"]] == [0, 1, 2, 3, 4]
    assert response.headers["Content-Range"] == (
        "date-time 2024-05-01T00:00:00.000Z-2024-05-01T00:04:00.000Z/*"
    )
    following = broker.client.get(
        f"{TEMPORAL}/{entity_id}",
        params={"attrs": "no2", "timerel": "after", "timeAt": "2024-05-01T00:05:00Z"},
    )
    assert following.status_code == 200
    assert [i["value"] for i in following.json()["no2"]] == [5, 6, 7]
    backwards = broker.client.get(f"{TEMPORAL}/{entity_id}", params={"lastN": 7, "attrs": "no2"})
    assert backwards.status_code == 206
    assert [i["value"] for i in backwards.json()["no2"]] == [3, 4, 5, 6, 7]
    assert backwards.headers["Content-Range"] == (
        "date-time 2024-05-01T00:07:00.000Z-2024-05-01T00:03:00.000Z/7"
    )


def test_query_selects_entities_by_type_id_pattern_and_attrs(broker: Broker) -> None:
    client = broker.client
    for n in range(3):
        body = sensor(f"urn:ngsi-ld:AirQualityObserved:q{n}", n, "2024-05-01T10:00:00Z")
        client.post(ENTITIES, json=body)
    client.post(ENTITIES, json={"id": "urn:ngsi-ld:Streetlight:q", "type": "Streetlight",
                                "on": {"type": "Property", "value": True}})  # fmt: skip
    pattern = {"idPattern": "^urn:ngsi-ld:AirQualityObserved:q[0-9]$"}
    found = client.get(TEMPORAL, params={**pattern, "attrs": "no2", "count": "true"})
    assert found.status_code == 200
    assert [e["id"][-2:] for e in found.json()] == ["q0", "q1", "q2"]
    assert found.headers["NGSILD-Results-Count"] == "3"
    assert all(list(e) == ["id", "type", "no2"] for e in found.json())
    lights = client.get(TEMPORAL, params={"type": "Streetlight"}).json()
    assert [e["id"] for e in lights] == ["urn:ngsi-ld:Streetlight:q"]
    page = client.get(TEMPORAL, params={**pattern, "limit": 2, "offset": 1})
    assert [e["id"][-2:] for e in page.json()] == ["q1", "q2"]
    assert 'rel="next"' in page.headers["Link"]
    ids = client.get(TEMPORAL, params={"id": "urn:ngsi-ld:AirQualityObserved:q1,urn:x:none"})
    assert [e["id"] for e in ids.json()] == ["urn:ngsi-ld:AirQualityObserved:q1"]

    posted = client.post(QUERY, json={
        "type": "Query", "entities": [{"type": "AirQualityObserved", "idPattern": "q[01]$"}],
        "attrs": ["no2"], "temporalQ": {"timerel": "before", "timeAt": "2024-06-01T00:00:00Z",
                                        "lastN": 1},
    })  # fmt: skip
    assert posted.status_code == 200, posted.text
    assert {e["id"][-2:] for e in posted.json()} >= {"q0", "q1"}
    assert all(len(e["no2"]) == 1 for e in posted.json())


def test_json_ld_answers_carry_the_context(broker: Broker) -> None:
    entity_id = "urn:ngsi-ld:AirQualityObserved:ld"
    broker.client.post(ENTITIES, json=sensor(entity_id, 3, "2024-05-01T10:00:00Z"))
    response = broker.client.get(
        f"{TEMPORAL}/{entity_id}", headers={"Accept": "application/ld+json"}
    )
    assert response.headers["content-type"].startswith("application/ld+json")
    assert response.json()["@context"] == CORE
    plain = broker.client.get(f"{TEMPORAL}/{entity_id}")
    assert CORE in plain.headers["Link"]


def test_lang_picks_one_language_of_a_language_property(broker: Broker) -> None:
    entity_id = "urn:ngsi-ld:PointOfInterest:lang"
    body = {"id": entity_id, "type": "PointOfInterest",
            "name": {"type": "LanguageProperty",
                     "languageMap": {"pt": "Praça", "en": "Square"}}}  # fmt: skip
    broker.client.post(ENTITIES, json=body)
    name = history(broker, entity_id, lang="en")["name"][0]
    assert name["type"] == "Property"
    assert name["value"] == "Square"
    assert name["lang"] == "en"


@pytest.mark.parametrize(
    "params",
    [
        {"timerel": "before"},
        {"timerel": "during", "timeAt": "2024-05-01T00:00:00Z"},
        {"timerel": "between", "timeAt": "2024-05-01T00:00:00Z"},
        {
            "timerel": "between",
            "timeAt": "2024-05-02T00:00:00Z",
            "endTimeAt": "2024-05-01T00:00:00Z",
        },
        {"timerel": "after", "timeAt": "yesterday"},
        {"timerel": "after", "timeAt": "2024-05-01T00:00:00"},
        {"timeAt": "2024-05-01T00:00:00Z"},
        {"timeproperty": "seenAt"},
        {"lastN": "0"},
        {"lastN": "many"},
        {"options": "temporalValues,aggregatedValues"},
        {"options": "keyValues"},
        {"format": "simplified"},
        {"options": "aggregatedValues"},
        {"options": "aggregatedValues", "aggrMethods": "median"},
        {"options": "aggregatedValues", "aggrMethods": "avg", "aggrPeriodDuration": "1 hour"},
        {"options": "aggregatedValues", "aggrMethods": "avg", "aggrPeriodDuration": "PT"},
        {"aggrMethods": "avg"},
    ],
)
def test_bad_parameters_are_bad_request_data(broker: Broker, params: dict[str, str]) -> None:
    entity_id = "urn:ngsi-ld:AirQualityObserved:bad"
    broker.client.post(ENTITIES, json=sensor(entity_id, 1, "2024-05-01T10:00:00Z"))
    response = broker.client.get(f"{TEMPORAL}/{entity_id}", params=params)
    assert_problem(response, 400, "BadRequestData")


def test_query_errors(broker: Broker) -> None:
    client = broker.client
    assert_problem(client.get(TEMPORAL), 400, "BadRequestData")
    assert_problem(client.get(TEMPORAL, params={"type": "A", "limit": "0"}), 400, "BadRequestData")
    assert_problem(
        client.get(TEMPORAL, params={"type": "A", "limit": "5000"}), 403, "TooManyResults"
    )
    assert_problem(
        client.get(TEMPORAL, params={"type": "A", "count": "yes"}), 400, "BadRequestData"
    )
    assert_problem(client.get(TEMPORAL, params={"idPattern": "(["}), 400, "BadRequestData")
    assert_problem(client.get(TEMPORAL, params={"id": "not a uri"}), 400, "BadRequestData")
    for unsupported in ({"type": "A", "scopeQ": "/a"}, {"type": "A", "csf": "x==1"}):
        assert_problem(client.get(TEMPORAL, params=unsupported), 422, "OperationNotSupported")
    assert_problem(client.post(QUERY, json=[1]), 400, "BadRequestData")
    assert_problem(
        client.post(QUERY, json={"type": "Query", "entities": "x"}), 400, "BadRequestData"
    )
    assert_problem(
        client.post(QUERY, json={"type": "Query", "attrs": ["a"], "temporalQ": {"timerel": "x"}}),
        400,
        "BadRequestData",
    )
    assert (
        client.get(TEMPORAL, headers={"Accept": "text/csv"}, params={"type": "A"}).status_code
        == 406
    )


def test_missing_entities_and_tenants(broker: Broker) -> None:
    client = broker.client
    assert_problem(client.get(f"{TEMPORAL}/urn:ngsi-ld:Nothing:1"), 404, "ResourceNotFound")
    assert_problem(client.get(f"{TEMPORAL}/not-a-uri"), 400, "BadRequestData")
    assert_problem(
        client.get(f"{TEMPORAL}/urn:a:1", headers={"NGSILD-Tenant": "nowhere"}),
        404,
        "NonexistentTenant",
    )
    entity_id = "urn:ngsi-ld:AirQualityObserved:typed"
    client.post(ENTITIES, json=sensor(entity_id, 1, "2024-05-01T10:00:00Z"))
    wrong_type = client.get(f"{TEMPORAL}/{entity_id}", params={"type": "Streetlight"})
    assert_problem(wrong_type, 404, "ResourceNotFound")
    custom = client.get(f"{TEMPORAL}/{entity_id}", headers=link("https://example.org/none.jsonld"))
    assert custom.status_code in (503, 504)


def test_a_tenant_has_its_own_history(broker: Broker) -> None:
    client = broker.client
    entity_id = "urn:ngsi-ld:AirQualityObserved:tenant"
    headers = {"NGSILD-Tenant": "fundao", **JSON}
    assert client.post(ENTITIES, json=sensor(entity_id, 7, "2024-05-01T10:00:00Z"),
                       headers=headers).status_code == 201  # fmt: skip
    body = client.get(f"{TEMPORAL}/{entity_id}", headers={"NGSILD-Tenant": "fundao"})
    assert body.headers["NGSILD-Tenant"] == "fundao"
    assert [i["value"] for i in body.json()["no2"]] == [7]
    assert client.get(f"{TEMPORAL}/{entity_id}").status_code == 404


def test_post_query_with_json_ld_body(broker: Broker) -> None:
    entity_id = "urn:ngsi-ld:AirQualityObserved:ldq"
    broker.client.post(ENTITIES, json=sensor(entity_id, 2, "2024-05-01T10:00:00Z"))
    body = {"type": "Query", "entities": [{"id": entity_id}], "@context": CORE}
    response = broker.client.post(QUERY, content=__import__("orjson").dumps(body), headers=LD)
    assert response.status_code == 200, response.text
    assert response.json()[0]["id"] == entity_id


def test_metrics_report_the_history(broker: Broker) -> None:
    entity_id = "urn:ngsi-ld:AirQualityObserved:metrics"
    broker.client.post(ENTITIES, json=sensor(entity_id, 2, "2024-05-01T10:00:00Z"))
    workers = broker.client.app.state.workers  # type: ignore[attr-defined]
    job = next(w for w in workers if isinstance(w, HistoryRetention))
    broker.client.portal.call(job.run_once)  # type: ignore[union-attr]
    text = broker.client.get("/metrics").text
    figures = dict(
        line.split(" ") for line in text.splitlines() if line.startswith("burgo_history_")
    )
    assert float(figures["burgo_history_instances"]) >= 2
    assert float(figures["burgo_history_bytes"]) > 0


def test_the_scheduled_job_prunes_by_policy_on_its_own(tmp_path: Path) -> None:
    entity_id = "urn:ngsi-ld:AirQualityObserved:old"
    old = {"id": entity_id, "type": "AirQualityObserved", "no2": [
        {"type": "Property", "value": v, "observedAt": f"2024-04-{d:02d}T12:00:00Z"}
        for v, d in ((30, 1), (31, 2), (35, 30))
    ]}  # fmt: skip
    with running_broker(tmp_path, history_raw_days=2, history_prune_interval=1) as broker:
        client = broker.client  # its clock stands at 2024-05-01T08:00Z
        assert client.post(TEMPORAL, json=old).status_code == 201
        until = time.monotonic() + 15
        kept = history(broker, entity_id)["no2"]
        while len(kept) > 1 and time.monotonic() < until:
            time.sleep(0.05)
            kept = history(broker, entity_id)["no2"]
        assert [i["value"] for i in kept] == [35]  # April 30th is within the two days kept
        text = client.get("/metrics").text
        assert "burgo_history_instances 1.0" in text.splitlines()
