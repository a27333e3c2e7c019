"""Round trips of entity representations: what Burgo writes, it reads back unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from burgo.app import create_app
from burgo.config import load_settings
from burgo.ngsild.context import core_context
from burgo.ngsild.model import Entity, JsonValue
from burgo.ngsild.parse import parse_entity
from burgo.ngsild.render import Format, RenderOptions, render_entity, render_feature
from tests.strategies import entities

CTX = core_context()
FAST = settings(max_examples=75, deadline=None)
HTTP = settings(max_examples=20, deadline=None)


def render(entity: Entity, fmt: Format, **options: Any) -> dict[str, JsonValue]:
    return render_entity(entity, CTX, RenderOptions(format=fmt, **options))


def key_values(entity: Entity) -> dict[str, JsonValue]:
    return render(entity, Format.SIMPLIFIED)


def _stamped(entity: Entity, now: str) -> Entity:
    attrs = {name: tuple(a.stamped(now) for a in inst) for name, inst in entity.attrs.items()}
    return replace(entity.with_attrs(attrs, now), created_at=now)


@FAST
@given(entities())
def test_every_lossless_representation_reads_back_as_the_same_entity(entity: Entity) -> None:
    assert parse_entity(render(entity, Format.NORMALIZED), CTX) == entity

    from_concise = parse_entity(render(entity, Format.CONCISE), CTX)
    assert from_concise == entity
    assert key_values(from_concise) == key_values(entity)

    # System timestamps are output only: shown with sysAttrs, ignored when read back.
    stamped = _stamped(entity, "2024-05-01T10:00:00.000Z")
    for fmt in (Format.NORMALIZED, Format.CONCISE):
        assert parse_entity(render(stamped, fmt, sys_attrs=True), CTX) == entity

    feature = render_feature(entity, CTX, RenderOptions(), CTX.expand("location"))
    assert parse_entity({"id": feature["id"], **feature["properties"]}, CTX) == entity


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app for every example (a fresh one per example would dominate the run time)."""
    db = Path(tmp_path_factory.mktemp("roundtrip")) / "burgo.db"
    app_settings = load_settings(flags={"db": str(db)}, environ={}, config_path=None)
    with TestClient(create_app(app_settings)) as client:
        yield client


def _url(entity_id: str, query: str = "") -> str:
    return f"/ngsi-ld/v1/entities/{quote(entity_id, safe=':')}{query}"


@HTTP
@given(entity=entities(), post_format=st.sampled_from([Format.NORMALIZED, Format.CONCISE]))
def test_api_gives_back_what_was_posted_in_every_format(
    api: TestClient, entity: Entity, post_format: Format
) -> None:
    api.delete(_url(entity.id))
    posted = api.post("/ngsi-ld/v1/entities", json=render(entity, post_format))
    assert posted.status_code == 201, posted.text

    for query in ("", "?format=concise", "?options=concise", "?options=sysAttrs"):
        got = api.get(_url(entity.id, query))
        assert got.status_code == 200, got.text
        assert parse_entity(got.json(), CTX) == entity

    ld = api.get(_url(entity.id, "?format=concise"), headers={"Accept": "application/ld+json"})
    body = ld.json()
    assert body.pop("@context") == CTX.source
    assert parse_entity(body, CTX) == entity

    simplified = api.get(_url(entity.id, "?format=keyValues"))
    assert simplified.json() == key_values(entity)

    geo = api.get(_url(entity.id), headers={"Accept": "application/geo+json"}).json()
    assert parse_entity({"id": geo["id"], **geo["properties"]}, CTX) == entity
