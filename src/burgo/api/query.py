"""Query entities (GET /entities, POST /entityOperations/query) and purge them (DELETE /entities).

Every request parses once into an :class:`~burgo.ngsild.query.EntityQuery`; the store answers it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from burgo.api.http import (
    GEO_JSON,
    JSON,
    JSON_LD,
    TENANT_HEADER,
    link_context_url,
    negotiate,
    query_flag,
    query_list,
    read_json_body,
    tenant_of,
)
from burgo.api.representation import (
    ENTITY_MEMBERS,
    entity_response,
    render_options,
    request_options,
    response_format,
)
from burgo.api.services import services
from burgo.config import Settings
from burgo.ngsild.context import Context
from burgo.ngsild.errors import BadRequestData
from burgo.ngsild.geoquery import parse_geo_query
from burgo.ngsild.parse import check_uri
from burgo.ngsild.qlang import parse_q, parse_scope_q
from burgo.ngsild.query import (
    EntityQuery,
    EntitySelector,
    check_id_pattern,
    parse_paging,
    parse_type_expression,
)
from burgo.ngsild.render import Projection, RenderOptions, parse_lang

router = APIRouter(prefix="/ngsi-ld/v1", tags=["NGSI-LD queries"])

RESULTS_COUNT_HEADER = "NGSILD-Results-Count"
_NO_SELECTOR = (
    "A query needs at least one of type, id, idPattern, attrs, q or a geo-query "
    "(georel, geometry, coordinates)"
)


def _tenant_headers(request: Request) -> dict[str, str]:
    tenant = request.headers.get(TENANT_HEADER)
    return {TENANT_HEADER: tenant} if tenant else {}


def _selector(types: Any, ids: list[str] | None, id_pattern: Any, ctx: Context) -> EntitySelector:
    if types is not None and not isinstance(types, str):
        raise BadRequestData("type must be a string (a type expression)")
    if id_pattern is not None and not isinstance(id_pattern, str):
        raise BadRequestData("idPattern must be a string (a regular expression)")
    return EntitySelector(
        types=parse_type_expression(types, ctx.expand) if types is not None else None,
        ids=tuple(check_uri(i, "Entity id") for i in ids or ()),
        id_pattern=check_id_pattern(id_pattern) if id_pattern is not None else None,
    )


def _paging(request: Request, settings: Settings) -> tuple[int, int, bool]:
    count = query_flag(request, "count")
    limit, offset = parse_paging(
        request.query_params.get("limit"),
        request.query_params.get("offset"),
        count=count,
        default=settings.query_default_limit,
        maximum=settings.query_max_limit,
    )
    return limit, offset, count


def _text(value: Any, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise BadRequestData(f"{name} must be a string")


def url_query(request: Request, ctx: Context, settings: Settings, *, paged: bool) -> EntityQuery:
    """The query of a request's URL parameters (paging only when ``paged``)."""
    params = request.query_params
    selector = _selector(
        params.get("type"), query_list(request, "id"), params.get("idPattern"), ctx
    )
    attrs = query_list(request, "attrs")
    q, scope_q = params.get("q"), params.get("scopeQ")
    limit, offset, count = _paging(request, settings) if paged else (0, 0, False)
    return EntityQuery(
        selectors=() if selector.is_empty() else (selector,),
        attrs=frozenset(ctx.expand(a) for a in attrs) if attrs is not None else None,
        q=parse_q(q, ctx.expand) if q is not None else None,
        scope_q=parse_scope_q(scope_q) if scope_q is not None else None,
        geo=parse_geo_query(
            params.get("georel"),
            params.get("geometry"),
            params.get("coordinates"),
            params.get("geoproperty"),
            ctx.expand,
        ),
        limit=limit,
        offset=offset,
        count=count,
    )


def body_query(
    data: Mapping[str, Any], request: Request, ctx: Context, settings: Settings
) -> EntityQuery:
    """The query of a Query body (ETSI 5.2.23), paging from the URL."""
    if data.get("type", "Query") != "Query":
        raise BadRequestData(f"The body's type must be Query, not {data.get('type')!r}")
    raw_entities = data.get("entities", [])
    if not isinstance(raw_entities, list) or not all(isinstance(e, dict) for e in raw_entities):
        raise BadRequestData("entities must be an array of EntitySelector objects")
    selectors = []
    for item in raw_entities:
        raw_id = item.get("id")
        if raw_id is not None and not isinstance(raw_id, str):
            raise BadRequestData("An EntitySelector's id must be a string")
        selector = _selector(
            item.get("type"), [raw_id] if raw_id else None, item.get("idPattern"), ctx
        )
        if selector.is_empty():
            raise BadRequestData("An EntitySelector needs a type, an id or an idPattern")
        selectors.append(selector)
    attrs = _names(data.get("attrs"), "attrs")
    geo_q = data.get("geoQ")
    if geo_q is not None and not isinstance(geo_q, dict):
        raise BadRequestData("geoQ must be an object with geometry, coordinates and georel")
    geo_q = geo_q or {}
    q, scope_q = _text(data.get("q"), "q"), _text(data.get("scopeQ"), "scopeQ")
    limit, offset, count = _paging(request, settings)
    return EntityQuery(
        selectors=tuple(selectors),
        attrs=frozenset(ctx.expand(a) for a in attrs) if attrs is not None else None,
        q=parse_q(q, ctx.expand) if q is not None else None,
        scope_q=parse_scope_q(scope_q) if scope_q is not None else None,
        geo=parse_geo_query(
            _text(geo_q.get("georel"), "georel"),
            _text(geo_q.get("geometry"), "geometry"),
            geo_q.get("coordinates"),
            _text(geo_q.get("geoproperty"), "geoproperty"),
            ctx.expand,
        ),
        limit=limit,
        offset=offset,
        count=count,
    )


def _names(value: Any, name: str) -> list[str] | None:
    """A list of names given as an array of strings or one comma-separated string."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) and i.strip() for i in items):
        raise BadRequestData(f"{name} must be an array of names")
    return [i.strip() for i in items]


def _body_render(request: Request, data: Mapping[str, Any], ctx: Context) -> RenderOptions:
    """Rendering options of a Query: URL parameters, with attrs/pick/omit/lang of the body."""
    options = request_options(request)
    attrs = _names(data.get("attrs"), "attrs") or query_list(request, "attrs")
    pick = _names(data.get("pick"), "pick") or query_list(request, "pick")
    omit = _names(data.get("omit"), "omit") or query_list(request, "omit") or []
    if pick is not None and attrs is not None:
        raise BadRequestData("attrs and pick cannot be used together; attrs is the old pick")
    shown: frozenset[str] | None = None
    if attrs is not None:
        shown = frozenset(ctx.expand(a) for a in attrs) | frozenset(ENTITY_MEMBERS)
    elif pick is not None:
        shown = frozenset(n if n in ENTITY_MEMBERS else ctx.expand(n) for n in pick)
    lang = _text(data.get("lang"), "lang") or request.query_params.get("lang")
    return RenderOptions(
        format=response_format(request, options),
        projection=Projection(
            pick=shown, omit=frozenset(n if n in ENTITY_MEMBERS else ctx.expand(n) for n in omit)
        ),
        sys_attrs="sysAttrs" in options,
        lang=parse_lang(lang) if lang else None,
    )


async def _answer(
    request: Request,
    query: EntityQuery,
    options: RenderOptions,
    ctx: Context,
    accept: str,
    request_context: Any,
) -> Response:
    if not query.has_selector():
        raise BadRequestData(_NO_SELECTOR)
    svc = services(request)
    result = await svc.store.query_entities(tenant_of(request), query)
    headers = _tenant_headers(request)
    if result.count is not None:
        headers[RESULTS_COUNT_HEADER] = str(result.count)
    prefer = request.headers.get("prefer", "").replace(" ", "")
    response = entity_response(
        list(result.entities),
        ctx=ctx,
        options=options,
        accept=accept,
        request_context=request_context,
        geometry_property=request.query_params.get("geometryProperty"),
        prefer_link="body=json" in prefer,
        headers=headers,
    )
    for relation, offset in _pages(query, more=result.more):
        url = request.url.include_query_params(offset=offset, limit=query.limit)
        response.headers.append("Link", f'<{url.path}?{url.query}>; rel="{relation}"')
    return response


def _pages(query: EntityQuery, *, more: bool) -> list[tuple[str, int]]:
    if query.limit == 0:
        return []
    pages = []
    if query.offset > 0:
        pages.append(("prev", max(0, query.offset - query.limit)))
    if more:
        pages.append(("next", query.offset + query.limit))
    return pages


@router.get("/entities", summary="Query entities")
async def query_entities(request: Request) -> Response:
    """Entities by type, id, idPattern, attrs, q, scopeQ and geo-query, one page at a time."""
    svc = services(request)
    accept = negotiate(request, (JSON, JSON_LD, GEO_JSON))
    link = link_context_url(request)
    ctx = await svc.contexts.resolve(link)
    options, _ = render_options(request, ctx)
    query = url_query(request, ctx, svc.settings, paged=True)
    return await _answer(request, query, options, ctx, accept, link)


@router.post("/entityOperations/query", summary="Query entities (Query in the body)")
async def post_query(request: Request) -> Response:
    """The same query as GET /entities, its selectors in a Query body (entities[], q, geoQ...)."""
    svc = services(request)
    accept = negotiate(request, (JSON, JSON_LD, GEO_JSON))
    body = await read_json_body(request, svc.settings.max_body_bytes)
    if not isinstance(body.data, dict):
        raise BadRequestData("A Query body must be a JSON object")
    ctx = await svc.contexts.resolve(body.context)
    options = _body_render(request, body.data, ctx)
    query = body_query(body.data, request, ctx, svc.settings)
    return await _answer(request, query, options, ctx, accept, body.context)


@router.delete("/entities", status_code=204, summary="Purge entities")
async def purge_entities(request: Request) -> Response:
    """Delete every entity matching type, id, idPattern, q, scopeQ and geo-query selectors."""
    svc = services(request)
    tenant = tenant_of(request)
    if "attrs" in request.query_params:
        raise BadRequestData("Purge deletes whole entities; attrs is not supported here")
    ctx = await svc.contexts.resolve(link_context_url(request))
    query = url_query(request, ctx, svc.settings, paged=False)
    if not query.has_selector():
        raise BadRequestData(
            "Purge needs at least one of type, id, idPattern, q or a geo-query; "
            "it never deletes a whole tenant by accident"
        )
    await svc.store.purge_entities(tenant, query)
    return Response(status_code=204, headers=_tenant_headers(request))
