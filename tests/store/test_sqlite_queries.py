"""Queries and purges on SQLite: the query contract, plus the geo index's own migration."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import orjson
import pytest

from burgo.ngsild.geoquery import geometry_box, parse_geo_query
from burgo.ngsild.model import entity_to_storage
from burgo.ngsild.query import EntityQuery
from burgo.store.sqlite import SqliteStore
from burgo.store.sqlite.migrations import available_migrations, migrate
from tests.store.query_contract import expand, ids, thing

pytestmark = pytest.mark.anyio


async def test_entities_stored_before_the_geo_index_are_found(tmp_path: Path) -> None:
    """Migration 0006 indexes the locations of entities written by an older Burgo."""
    path = tmp_path / "burgo.db"
    before_geo = [m for m in available_migrations() if m.version < 6]
    located = thing(1, point=(-7.5, 40.14))
    polygon = {
        "type": "Polygon",
        "coordinates": [[[-7.6, 40.0], [-7.59, 40.0], [-7.59, 40.01], [-7.6, 40.0]]],
    }
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        migrate(conn, before_geo)
        conn.execute("INSERT INTO tenants VALUES ('', '')")
        doc = entity_to_storage(located)
        doc["attrs"]["https://example.org/vocab/area"] = [{"type": "GeoProperty", "value": polygon}]
        conn.execute(
            "INSERT INTO entities (tenant, id, types, created_at, modified_at, doc) "
            "VALUES ('', ?, '[]', '', '', ?)",
            (located.id, orjson.dumps(doc).decode()),
        )
    store = SqliteStore(path)
    await store.open()
    try:
        near = parse_geo_query("near;maxDistance==10", "Point", "[-7.5,40.14]", None, expand)
        assert ids(await store.query_entities("", EntityQuery(geo=near))) == [located.id]
        inside = parse_geo_query("intersects", "Point", "[-7.595,40.002]", "area", expand)
        assert ids(await store.query_entities("", EntityQuery(geo=inside))) == [located.id]
        with closing(sqlite3.connect(path)) as conn:
            boxes = conn.execute("SELECT min_x, max_x, min_y, max_y FROM entity_geo_box").fetchall()
        location = doc["attrs"]["https://uri.etsi.org/ngsi-ld/location"][0]["value"]
        expected = sorted([geometry_box(polygon), geometry_box(location)])
        flat = [value for box in sorted(boxes) for value in box]
        assert flat == pytest.approx([value for box in expected for value in box], abs=1e-5)
    finally:
        await store.close()
