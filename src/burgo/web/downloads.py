"""CSV and GeoJSON downloads of the dashboard's lists (things, devices) and of histories.

>>> csv_text([{"a": 1, "b": None}], ["a", "b"])
'a,b\\r\\n1,\\r\\n'
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from burgo.api.services import services
from burgo.web.dashboard import now_ms, requested_series, tenant_param
from burgo.web.things import LOCATION, check_tenant, device_rows, things

router = APIRouter(prefix="/dashboard", include_in_schema=False)

CSV = "text/csv; charset=utf-8"
GEO_JSON = "application/geo+json"
_THING_COLUMNS = ["id", "type", "vertical", "state", "name", "longitude", "latitude", "updated"]


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return value


def csv_text(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Rows as CSV with a header line (missing cells empty, structured values as JSON)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return out.getvalue()


def _download(body: str | bytes, media_type: str, filename: str) -> Response:
    return Response(
        body,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _name(tenant: str, stem: str) -> str:
    return f"{tenant.replace(':', '-')}-{stem}" if tenant else stem


@router.get("/entities.csv")
async def entities_csv(request: Request) -> Response:
    """Every thing of the tenant with its place, state and latest values, one row each."""
    svc = services(request)
    tenant = tenant_param(request)
    await check_tenant(svc.store, tenant)
    found = await things(svc.store, tenant, now_ms(svc), svc.settings.query_max_limit)
    extra = sorted({v.name for t in found for v in t.values} - set(_THING_COLUMNS))
    rows = []
    for thing in found:
        row = thing.properties()
        if thing.location is not None:
            row["longitude"], row["latitude"] = thing.location
        rows.append(row)
    return _download(csv_text(rows, _THING_COLUMNS + extra), CSV, _name(tenant, "things.csv"))


@router.get("/entities.geojson")
async def entities_geojson(request: Request) -> Response:
    """Every thing of the tenant as a GeoJSON feature (things without a place have no geometry)."""
    svc = services(request)
    tenant = tenant_param(request)
    await check_tenant(svc.store, tenant)
    found = await things(svc.store, tenant, now_ms(svc), svc.settings.query_max_limit)
    body = {"type": "FeatureCollection", "features": [t.feature() for t in found]}
    return _download(orjson.dumps(body), GEO_JSON, _name(tenant, "things.geojson"))


@router.get("/devices.csv")
async def devices_csv(request: Request) -> Response:
    """The registered devices with their health, one row each."""
    svc = services(request)
    tenant = tenant_param(request)
    await check_tenant(svc.store, tenant)
    rows = [row.properties() for row in await device_rows(svc.store, tenant)]
    columns = [
        "id",
        "name",
        "protocol",
        "entity",
        "entityType",
        "state",
        "lastSeen",
        "battery",
        "rssi",
        "snr",
        "messages",
    ]
    return _download(csv_text(rows, columns), CSV, _name(tenant, "devices.csv"))


@router.get("/devices.geojson")
async def devices_geojson(request: Request) -> Response:
    """The registered devices with their health as GeoJSON features."""
    svc = services(request)
    tenant = tenant_param(request)
    await check_tenant(svc.store, tenant)
    features = [row.feature() for row in await device_rows(svc.store, tenant)]
    body = {"type": "FeatureCollection", "features": features}
    return _download(orjson.dumps(body), GEO_JSON, _name(tenant, "devices.geojson"))


@router.get("/history.csv")
async def history_csv(request: Request) -> Response:
    """An attribute's history over a period (hour, day raw; week, month aggregated)."""
    series, tenant = await requested_series(request)
    columns = ["time", "avg", "min", "max"] if series.aggregated else ["time", "value"]
    stem = f"{series.entity_id.rsplit(':', 1)[-1]}-{series.attribute.rsplit('/', 1)[-1]}"
    return _download(
        csv_text(series.rows(), columns), CSV, _name(tenant, f"{stem}-{series.period}.csv")
    )


@router.get("/history.geojson")
async def history_geojson(request: Request) -> Response:
    """An attribute's history as GeoJSON: one feature per point, at the entity's place."""
    series, tenant = await requested_series(request)
    svc = services(request)
    entity = await svc.store.get_entity(tenant, series.entity_id)
    place = entity.instance(LOCATION) if entity is not None else None
    geometry = place.value if place is not None and isinstance(place.value, dict) else None
    features = [
        {
            "type": "Feature",
            "geometry": geometry,
            "properties": {"entity": series.entity_id, "attribute": series.attribute, **row},
        }
        for row in series.rows()
    ]
    stem = f"{series.entity_id.rsplit(':', 1)[-1]}-{series.attribute.rsplit('/', 1)[-1]}"
    body = {"type": "FeatureCollection", "features": features}
    return _download(orjson.dumps(body), GEO_JSON, _name(tenant, f"{stem}-{series.period}.geojson"))
