"""/ngsi-ld/v1/temporal: the history of entities, retrieved, queried and aggregated.

Every read parses its parameters once into a :class:`~burgo.store.temporal.HistorySelection`, a
:class:`~burgo.ngsild.temporal.TemporalQuery` and, for the aggregated representation, an
:class:`~burgo.ngsild.temporal.Aggregation`; the store answers; the response is rendered in the
representation asked for (normalized, temporalValues or aggregatedValues).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from burgo.api.http import (
    JSON,
    JSON_LD,
    TENANT_HEADER,
    context_link,
    json_response,
    link_context_url,
    negotiate,
    read_json_body,
    tenant_of,
)
from burgo.api.representation import context_reference
from burgo.api.services import Services, services
from burgo.api.temporal_provision import router as provision_router
from burgo.ngsild.context import Context
from burgo.ngsild.errors import (
    BadRequestData,
    OperationNotSupported,
    ResourceNotFound,
    TooManyResults,
)
from burgo.ngsild.geoquery import GeoQuery, parse_geo_query
from burgo.ngsild.parse import check_uri
from burgo.ngsild.qlang import parse_q
from burgo.ngsild.qmatch import QExpr
from burgo.ngsild.render import parse_lang
from burgo.ngsild.temporal import (
    Aggregation,
    TemporalFormat,
    TemporalQuery,
    from_millis,
    parse_aggregation,
    parse_temporal_query,
    render_temporal_entity,
)
from burgo.store.base import HistoryPage, HistorySelection

router = APIRouter(prefix="/ngsi-ld/v1", tags=["NGSI-LD temporal"])
router.include_router(provision_router)

RESULTS_COUNT_HEADER = "NGSILD-Results-Count"
_OPTIONS = {"temporalValues", "aggregatedValues", "sysAttrs", "normalized"}
_FORMATS = {"normalized", "temporalValues", "aggregatedValues"}


def _tenant_headers(request: Request) -> dict[str, str]:
    tenant = request.headers.get(TENANT_HEADER)
    return {TENANT_HEADER: tenant} if tenant else {}


def _list(raw: Any, name: str) -> list[str] | None:
    if raw is None:
        return None
    items = raw if isinstance(raw, list) else str(raw).split(",")
    items = [str(item).strip() for item in items]
    if not items or any(not item for item in items):
        raise BadRequestData(f"{name} has an empty item")
    return items


def _representation(params: Mapping[str, Any]) -> tuple[TemporalFormat, bool]:
    """The temporal format (``format=`` wins over ``options=``) and whether sysAttrs is on."""
    options = set(_list(params.get("options"), "options") or ())
    unknown = options - _OPTIONS
    if unknown:
        raise BadRequestData(
            f"Unknown value(s) in options: {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(_OPTIONS))}"
        )
    explicit = params.get("format")
    if explicit is not None:
        if explicit not in _FORMATS:
            known = ", ".join(sorted(_FORMATS))
            raise BadRequestData(f"Unknown temporal format {explicit!r}; use one of {known}")
        return TemporalFormat(explicit), "sysAttrs" in options
    chosen = options & {"temporalValues", "aggregatedValues"}
    if len(chosen) > 1:
        raise BadRequestData("options names both temporalValues and aggregatedValues")
    fmt = TemporalFormat(chosen.pop()) if chosen else TemporalFormat.NORMALIZED
    return fmt, "sysAttrs" in options


def _aggregation(params: Mapping[str, Any], fmt: TemporalFormat) -> Aggregation | None:
    methods, period = params.get("aggrMethods"), params.get("aggrPeriodDuration")
    if fmt != TemporalFormat.AGGREGATED_VALUES:
        if methods is not None or period is not None:
            raise BadRequestData(
                "aggrMethods and aggrPeriodDuration need format=aggregatedValues "
                "(or options=aggregatedValues)"
            )
        return None
    if isinstance(methods, list):
        methods = ",".join(methods)
    return parse_aggregation(methods, period)


def _unsupported(params: Mapping[str, Any]) -> None:
    for name in ("csf", "scopeQ"):
        if params.get(name) is not None:
            raise OperationNotSupported(
                f"{name} is not supported on temporal queries yet; select entities by id, "
                "idPattern, type, attrs, q and geo-queries"
            )


def _text(value: Any, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise BadRequestData(f"{name} must be a string")


def _filters(params: Mapping[str, Any], ctx: Context) -> tuple[QExpr | None, GeoQuery | None]:
    """The q expression and the geo-query (URL parameters, or a Query body's ``geoQ``)."""
    q = _text(params.get("q"), "q")
    geo_q = params.get("geoQ")
    if geo_q is not None and not isinstance(geo_q, dict):
        raise BadRequestData("geoQ must be an object with geometry, coordinates and georel")
    source = geo_q if geo_q is not None else params
    geo = parse_geo_query(
        _text(source.get("georel"), "georel"),
        _text(source.get("geometry"), "geometry"),
        source.get("coordinates"),
        _text(source.get("geoproperty"), "geoproperty"),
        ctx.expand,
    )
    return (parse_q(q, ctx.expand) if q is not None else None), geo


def _positive(params: Mapping[str, Any], name: str, default: int, low: int = 1) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    text = str(raw)
    if isinstance(raw, bool) or not text.isdigit() or int(text) < low:
        raise BadRequestData(f"{name} must be an integer of at least {low}, got {raw!r}")
    return int(text)


def _page(params: Mapping[str, Any], svc: Services) -> tuple[int, int]:
    limit = _positive(params, "limit", svc.settings.query_default_limit)
    if limit > svc.settings.query_max_limit:
        raise TooManyResults(f"limit may be at most {svc.settings.query_max_limit}")
    return limit, _positive(params, "offset", 0, low=0)


def _expand_all(names: list[str] | None, ctx: Context) -> tuple[str, ...] | None:
    return tuple(ctx.expand(n) for n in names) if names is not None else None


def _respond(
    request: Request,
    page: HistoryPage,
    *,
    ctx: Context,
    fmt: TemporalFormat,
    sys_attrs: bool,
    query: TemporalQuery,
    lang: str | None,
    single: bool,
    context_source: Any,
    extra: Mapping[str, str] | None = None,
) -> Response:
    accept = negotiate(request, (JSON, JSON_LD))
    prefs = parse_lang(lang) if lang else None
    rendered = [
        render_temporal_entity(e, ctx, fmt, sys_attrs=sys_attrs, lang=prefs) for e in page.entities
    ]
    reference = context_reference(context_source)
    headers = {**_tenant_headers(request), **(extra or {})}
    if accept == JSON_LD:
        for item in rendered:
            item["@context"] = reference
    elif isinstance(reference, str):
        links = [context_link(reference), headers.get("Link")]
        headers["Link"] = ", ".join(link for link in links if link)
    status = 200
    if page.truncated and page.first is not None and page.last is not None:
        status = 206
        first, last = from_millis(page.first), from_millis(page.last)
        if query.last_n is not None:
            headers["Content-Range"] = f"date-time {last}-{first}/{query.last_n}"
        else:
            headers["Content-Range"] = f"date-time {first}-{last}/*"
    body: Any = rendered[0] if single else rendered
    return json_response(body, status=status, media_type=accept, headers=headers)


@router.get("/temporal/entities/{entity_id:entity_id}", summary="Retrieve an entity's history")
async def get_temporal_entity(request: Request, entity_id: str) -> Response:
    """The temporal evolution of one entity (normalized, temporalValues or aggregatedValues)."""
    svc = services(request)
    tenant = tenant_of(request)
    negotiate(request, (JSON, JSON_LD))
    params = request.query_params
    check_uri(entity_id, "Entity id")
    ctx = await svc.contexts.resolve(link_context_url(request))
    fmt, sys_attrs = _representation(params)
    query = parse_temporal_query(params)
    aggregation = _aggregation(params, fmt)
    attrs = _expand_all(_list(params.get("attrs"), "attrs"), ctx)
    types = _expand_all(_list(params.get("type"), "type"), ctx)
    selection = HistorySelection(
        ids=(entity_id,), types=types, attrs=frozenset(attrs) if attrs is not None else None
    )
    page = await svc.store.query_history(
        tenant,
        selection,
        query,
        max_instances=svc.settings.temporal_max_instances,
        aggregation=aggregation,
    )
    if not page.entities:
        raise ResourceNotFound(f"No history of entity {entity_id} (with the type and attrs asked)")
    return _respond(
        request, page, ctx=ctx, fmt=fmt, sys_attrs=sys_attrs, query=query,
        lang=params.get("lang"), single=True, context_source=link_context_url(request),
    )  # fmt: skip


async def _query(
    request: Request,
    params: Mapping[str, Any],
    selectors: list[Mapping[str, Any]] | None,
    context_source: Any,
) -> Response:
    svc = services(request)
    tenant = tenant_of(request)
    negotiate(request, (JSON, JSON_LD))
    _unsupported(params)
    ctx = await svc.contexts.resolve(context_source)
    fmt, sys_attrs = _representation(params)
    query = parse_temporal_query(params)
    aggregation = _aggregation(params, fmt)
    limit, offset = _page(params, svc)
    count = str(params.get("count", "false")).lower()
    if count not in ("true", "false"):
        raise BadRequestData(f"count must be true or false, got {params.get('count')!r}")
    if selectors is None:
        selectors = [{"id": params.get("id"), "idPattern": params.get("idPattern"),
                      "type": params.get("type")}]  # fmt: skip
    ids: list[str] = []
    types: list[str] = []
    patterns: list[str] = []
    for selector in selectors:
        for entity_id in _list(selector.get("id"), "id") or ():
            ids.append(check_uri(entity_id, "Entity id"))
        types += _list(selector.get("type"), "type") or ()
        if selector.get("idPattern") is not None:
            patterns.append(str(selector["idPattern"]))
    attrs = _expand_all(_list(params.get("attrs"), "attrs"), ctx)
    q, geo = _filters(params, ctx)
    if not ids and not types and not patterns and attrs is None and q is None and geo is None:
        raise BadRequestData(
            "A temporal query needs at least one of type, id, idPattern, attrs, q or a geo-query"
        )
    selection = HistorySelection(
        ids=tuple(ids) if ids else None,
        id_pattern="|".join(f"(?:{p})" for p in patterns) if patterns else None,
        types=_expand_all(types, ctx) if types else None,
        attrs=frozenset(attrs) if attrs is not None else None,
        q=q,
        geo=geo,
        limit=limit,
        offset=offset,
    )
    page = await svc.store.query_history(
        tenant,
        selection,
        query,
        max_instances=svc.settings.temporal_max_instances,
        aggregation=aggregation,
    )
    extra: dict[str, str] = {}
    if count == "true":
        total = await svc.store.count_history(tenant, selection, query)
        extra[RESULTS_COUNT_HEADER] = str(total)
    if len(page.entities) == limit and request.method == "GET":
        following = dict(request.query_params)
        following["offset"] = str(offset + limit)
        extra["Link"] = f'<{request.url.path}?{urlencode(following)}>; rel="next"'
    return _respond(
        request, page, ctx=ctx, fmt=fmt, sys_attrs=sys_attrs, query=query,
        lang=params.get("lang"), single=False, extra=extra, context_source=context_source,
    )  # fmt: skip


@router.get("/temporal/entities", summary="Query the history of entities")
async def get_temporal_entities(request: Request) -> Response:
    """The temporal evolution of the entities selected by id, idPattern, type and attrs."""
    return await _query(request, request.query_params, None, link_context_url(request))


@router.post("/temporal/entityOperations/query", summary="Query the history of entities (POST)")
async def post_temporal_query(request: Request) -> Response:
    """The same query with a Query body (entities, attrs, temporalQ, lang)."""
    svc = services(request)
    body = await read_json_body(request, svc.settings.max_body_bytes)
    data = body.data
    if not isinstance(data, dict) or data.get("type", "Query") != "Query":
        raise BadRequestData('The body must be a Query object ({"type": "Query", ...})')
    temporal = data.get("temporalQ") or {}
    if not isinstance(temporal, dict):
        raise BadRequestData("temporalQ must be an object")
    selectors = data.get("entities")
    if selectors is not None and (
        not isinstance(selectors, list) or not all(isinstance(s, dict) for s in selectors)
    ):
        raise BadRequestData("entities must be a list of entity selectors")
    params: dict[str, Any] = dict(request.query_params)
    params.update({k: v for k, v in temporal.items() if v is not None})
    for key in ("attrs", "q", "geoQ", "lang", "csf", "scopeQ"):
        if data.get(key) is not None:
            params[key] = data[key]
    if "lastN" in temporal and isinstance(temporal["lastN"], int):
        params["lastN"] = str(temporal["lastN"])
    return await _query(request, params, selectors, body.context)
