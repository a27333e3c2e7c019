"""Versioned schema migrations for PostgreSQL: numbered .sql files applied in order, once each.

Every run holds an advisory lock, so several workers starting together upgrade the schema once.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection, sql

from burgo.ngsild.errors import InternalError
from burgo.store.migrations import Migration, shipped_migrations

# Any fixed number: the key of the advisory lock that one migrating process holds.
_LOCK = 0x6275_7267_6F00
_VERSIONS = """
CREATE TABLE IF NOT EXISTS burgo_schema (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


# PostGIS that arrived after migration 0005 (the extension installed by an administrator, or
# installable now): at every upgrade, if the geo index has no geometry column yet and PostGIS
# is there or can be installed, the column, its index and burgo_shape are made as 0005 makes
# them, and the geometries stored so far are filled in.
_ADOPT_POSTGIS = """
DO $body$
BEGIN
    IF to_regclass('entity_geo') IS NULL OR EXISTS (SELECT 1 FROM information_schema.columns
            WHERE table_schema = current_schema() AND table_name = 'entity_geo'
            AND column_name = 'shape') THEN
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'postgis') THEN
        BEGIN
            CREATE EXTENSION postgis;
        EXCEPTION WHEN OTHERS THEN
            RETURN;
        END;
    END IF;
    EXECUTE 'ALTER TABLE entity_geo ADD COLUMN shape geometry';
    EXECUTE $fn$
        CREATE OR REPLACE FUNCTION burgo_shape(geojson text) RETURNS geometry
        LANGUAGE plpgsql IMMUTABLE AS $inner$
        DECLARE
            shape geometry;
        BEGIN
            shape := ST_GeomFromGeoJSON(geojson);
            IF shape IS NULL OR NOT ST_IsValid(shape) THEN
                RETURN NULL;
            END IF;
            RETURN shape;
        EXCEPTION WHEN OTHERS THEN
            RETURN NULL;
        END
        $inner$
    $fn$;
    EXECUTE 'UPDATE entity_geo SET shape = burgo_shape(geometry::text)';
    EXECUTE 'CREATE INDEX entity_geo_shape ON entity_geo USING gist (shape)';
    RAISE NOTICE 'PostGIS found: geo-queries now use it';
END
$body$
"""
_GEO_INDEX_VERSION = 5  # the migration that made the geo index


def available_migrations() -> list[Migration]:
    """The migrations shipped with this version of Burgo, in order."""
    return shipped_migrations("burgo.store.postgres.schema")


async def schema_version(conn: AsyncConnection[tuple[Any, ...]]) -> int:
    """The schema version recorded in the database (0 for an empty one)."""
    cursor = await conn.execute("SELECT to_regclass('burgo_schema') IS NOT NULL")
    row = await cursor.fetchone()
    if row is None or not row[0]:
        return 0
    cursor = await conn.execute("SELECT coalesce(max(version), 0) FROM burgo_schema")
    row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def migrate(
    conn: AsyncConnection[tuple[Any, ...]], migrations: list[Migration] | None = None
) -> tuple[int, list[int]]:
    """Bring the schema up to date in one transaction: the version now, and the versions applied."""
    steps = available_migrations() if migrations is None else migrations
    latest = steps[-1].version if steps else 0
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        await conn.execute(_VERSIONS)
        current = await schema_version(conn)
        if current > latest:
            raise InternalError(
                f"The database schema is version {current}, newer than this Burgo knows "
                f"({latest}); upgrade Burgo to open it"
            )
        applied = []
        for step in steps:
            if step.version <= current:
                continue
            await conn.execute(sql.SQL(step.sql))
            await conn.execute(
                "INSERT INTO burgo_schema (version, name) VALUES (%s, %s)",
                (step.version, step.name),
            )
            applied.append(step.version)
        version = max([current, *applied])
        if version >= _GEO_INDEX_VERSION:
            await conn.execute(_ADOPT_POSTGIS)
    return version, applied
