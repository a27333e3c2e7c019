"""The dashboard: the town map (/), an entity's page with charts (/entity/{id}), the device
list (/devices) and the feed of recent changes, server-rendered in English or Portuguese.

Everything is read through the store protocol, as the NGSI-LD API reads it; the pages take the
tenant from ``?tenant=`` and carry it in their links.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from burgo.api.http import json_response
from burgo.api.services import Services, services
from burgo.ngsild.errors import BadRequestData, ResourceNotFound
from burgo.ngsild.temporal import to_millis
from burgo.verticals.catalog import ALERT, STATES, VERTICALS
from burgo.web.docs import api_index
from burgo.web.history import PERIODS, Series, period_named, read_series
from burgo.web.i18n import COOKIE, LANGUAGES, language_of, requested_language, translations
from burgo.web.render import environment
from burgo.web.things import (
    Thing,
    check_tenant,
    device_rows,
    recent_changes,
    summarise,
    tenants,
    things,
)

VENDOR = {
    "leaflet": "/static/vendor/leaflet-1.9.4",
    "uplot": "/static/vendor/uplot-1.6.32",
    "htmx": "/static/vendor/htmx-2.0.11",
}
FEED_LENGTH = 15
MAX_CHARTS = 8
_TENANT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.:")

router = APIRouter(include_in_schema=False)
Gettext = Callable[[str], str]


def vertical_labels(_: Gettext) -> dict[str, str]:
    """The verticals' names in the page's language."""
    return {
        "city": _("City"),
        "care": _("Care"),
        "agro": _("Agriculture"),
        "enterprise": _("Enterprise"),
        "education": _("Education"),
        "other": _("Other"),
    }


def state_names(_: Gettext) -> dict[str, str]:
    """The states' names in the page's language."""
    return {
        "alert": _("Alert"),
        "warn": _("Warning"),
        "busy": _("Occupied"),
        "ok": _("Normal"),
        "stale": _("Not reporting"),
        "unknown": _("No data"),
    }


def device_states(_: Gettext) -> dict[str, str]:
    """The device health states in the page's language."""
    return {"online": _("online"), "offline": _("offline"), "unknown": _("unknown")}


def period_labels(_: Gettext) -> list[tuple[str, str]]:
    """The chart periods in the page's language."""
    names = {"hour": _("Last hour"), "day": _("Day"), "week": _("Week"), "month": _("Month")}
    return [(code, names[code]) for code in PERIODS]


def tenant_param(request: Request) -> str:
    """The tenant a page is about (``?tenant=``; the default tenant when absent)."""
    tenant = request.query_params.get("tenant", "")
    if len(tenant) > 128 or not set(tenant) <= _TENANT_CHARS:
        raise BadRequestData(f"Invalid tenant {tenant!r}: up to 128 letters, digits, '_-.:'")
    return tenant


def now_ms(svc: Services) -> int:
    """The current time in epoch milliseconds."""
    return to_millis(svc.clock.now())


def _linker(tenant: str) -> Callable[..., str]:
    def link(path: str, **params: Any) -> str:
        query = {"tenant": tenant} if tenant else {}
        query.update({k: v for k, v in params.items() if v is not None})
        target = quote(path, safe="/:@")
        return f"{target}?{urlencode(query)}" if query else target

    return link


async def page(
    request: Request, template: str, name: str, values: Mapping[str, Any], tenant: str
) -> HTMLResponse:
    """Render a page of the dashboard in the visitor's language."""
    svc = services(request)
    lang = language_of(request)
    env = environment(lang)
    _ = translations(lang).gettext
    body = env.get_template(template).render(
        request=request,
        page=name,
        lang=lang,
        languages=LANGUAGES,
        tenant=tenant,
        tenants=await tenants(svc.store),
        link=_linker(tenant),
        vendor=VENDOR,
        keep_params=[],
        # Another tenant does not have this entity: switching from its page goes to the map.
        switch_to="/" if name == "entity" else None,
        vertical_labels=vertical_labels(_),
        state_names=state_names(_),
        **values,
    )
    response = HTMLResponse(body)
    asked = requested_language(request)
    if asked is not None:
        response.set_cookie(COOKIE, asked, max_age=365 * 86400, samesite="lax")
    return response


def _map_data(found: list[Thing], labels: Mapping[str, str]) -> dict[str, Any]:
    return {
        "layers": [{"id": v, "label": labels[v]} for v in (*VERTICALS, "other")],
        "things": [
            {
                "id": t.id,
                "name": t.name,
                "type": t.type,
                "vertical": t.vertical or "other",
                "state": t.state,
                "lon": t.location[0],
                "lat": t.location[1],
            }
            for t in found
            if t.location is not None
        ],
    }


@router.get("/")
async def front_page(request: Request) -> Response:
    """The town map for a browser; an index of the API for other clients."""
    if "text/html" not in request.headers.get("accept", ""):
        return json_response(api_index())
    svc = services(request)
    tenant = tenant_param(request)
    await check_tenant(svc.store, tenant)
    found = await things(svc.store, tenant, now_ms(svc), svc.settings.query_max_limit)
    _ = translations(language_of(request)).gettext
    labels = vertical_labels(_)
    summary = []
    for vertical in (*VERTICALS, "other"):
        members = [t for t in found if (t.vertical or "other") == vertical]
        if members or vertical != "other":
            alerts = sum(1 for t in members if t.state == ALERT)
            summary.append(
                {
                    "vertical": vertical,
                    "label": labels[vertical],
                    "total": len(members),
                    "alerts": alerts,
                }
            )
    names = state_names(_)
    map_data = _map_data(found, labels)
    return await page(
        request,
        "index.html",
        "map",
        {
            "summary": summary,
            "map_data": map_data,
            "located": len(map_data["things"]),
            "changes": recent_changes(found, FEED_LENGTH),
            "state_labels": [(s, names[s]) for s in STATES],
            "tiles": {
                "url": svc.settings.map_tile_url or "",
                "attribution": svc.settings.map_tile_attribution or "",
            },
        },
        tenant,
    )


@router.get("/dashboard/changes")
async def changes(request: Request) -> HTMLResponse:
    """The feed of recent changes (the map page refreshes it every 30 s)."""
    svc = services(request)
    tenant = tenant_param(request)
    await check_tenant(svc.store, tenant)
    found = await things(svc.store, tenant, now_ms(svc), svc.settings.query_max_limit)
    env = environment(language_of(request))
    body = env.get_template("changes.html").render(
        changes=recent_changes(found, FEED_LENGTH), link=_linker(tenant)
    )
    return HTMLResponse(body)


@router.get("/entity/{entity_id:path}")
async def entity_page(request: Request, entity_id: str) -> HTMLResponse:
    """One entity: its latest values and charts of its numeric attributes over time."""
    svc = services(request)
    tenant = tenant_param(request)
    await check_tenant(svc.store, tenant)
    entity = await svc.store.get_entity(tenant, entity_id)
    if entity is None:
        raise ResourceNotFound(f"There is no entity {entity_id}")
    labels = {d.entity_id: d.name for d in await svc.store.list_devices(tenant)}
    thing = summarise(entity, now_ms(svc), labels.get(entity.id))
    period = period_named(request.query_params.get("period", "day")).name
    _ = translations(language_of(request)).gettext
    return await page(
        request,
        "entity.html",
        "entity",
        {
            "thing": thing,
            "charts": [v for v in thing.values if v.numeric][:MAX_CHARTS],
            "periods": period_labels(_),
            "period": period,
        },
        tenant,
    )


@router.get("/devices")
async def devices_page(request: Request) -> HTMLResponse:
    """The registered devices with their health: online or not, battery, last seen, signal."""
    svc = services(request)
    tenant = tenant_param(request)
    await check_tenant(svc.store, tenant)
    rows = await device_rows(svc.store, tenant)
    _ = translations(language_of(request)).gettext
    counts = Counter(row.properties()["state"] for row in rows)
    return await page(
        request,
        "devices.html",
        "devices",
        {
            "rows": rows,
            "state_counts": sorted(counts.items()),
            "device_states": device_states(_),
        },
        tenant,
    )


@router.get("/dashboard/history.json")
async def history_json(request: Request) -> Response:
    """An attribute's history over a period, as the entity page's charts draw it."""
    series, _ = await requested_series(request)
    return json_response(series.chart())


async def requested_series(request: Request) -> tuple[Series, str]:
    """The history the request's tenant, entity, attribute and period name, and the tenant
    (for the charts and the history downloads)."""
    svc = services(request)
    tenant = tenant_param(request)
    await check_tenant(svc.store, tenant)
    entity_id, attr, period = history_params(request)
    series = await read_series(
        svc.store,
        tenant,
        entity_id,
        attr,
        period,
        now_ms=now_ms(svc),
        max_instances=svc.settings.temporal_max_instances,
    )
    return series, tenant


def history_params(request: Request) -> tuple[str, str, Any]:
    """The entity, attribute (expanded) and period a history request names."""
    entity_id = request.query_params.get("entity")
    attr = request.query_params.get("attr")
    if not entity_id or not attr:
        raise BadRequestData("A history needs entity (an entity id) and attr (an attribute)")
    return entity_id, attr, period_named(request.query_params.get("period", "day"))
