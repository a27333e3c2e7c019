"""Reading the representation parameters of a request and rendering entities in response."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from burgo.api.http import GEO_JSON, JSON, JSON_LD, context_link, json_response, query_list
from burgo.ngsild.context import CORE_CONTEXT_URL, Context
from burgo.ngsild.errors import BadRequestData
from burgo.ngsild.model import Entity
from burgo.ngsild.render import (
    Format,
    Projection,
    RenderOptions,
    parse_lang,
    render_entity,
    render_feature,
)

_FORMAT_OPTIONS = {
    "normalized": Format.NORMALIZED,
    "concise": Format.CONCISE,
    "keyValues": Format.SIMPLIFIED,
    "simplified": Format.SIMPLIFIED,
}
ENTITY_MEMBERS = ("id", "type", "scope")


def request_options(request: Request, allowed: Sequence[str] = ()) -> set[str]:
    """The ``options`` values of a request, checked against what the operation knows."""
    options = set(query_list(request, "options") or ())
    known = {*_FORMAT_OPTIONS, "sysAttrs", *allowed}
    unknown = options - known
    if unknown:
        raise BadRequestData(
            f"Unknown value(s) in options: {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(known))}"
        )
    return options


def response_format(request: Request, options: set[str]) -> Format:
    """The format asked for by ``format=`` (which wins) or by ``options=``."""
    explicit = request.query_params.get("format")
    if explicit is not None:
        if explicit not in _FORMAT_OPTIONS:
            raise BadRequestData(
                f"Unknown format {explicit!r}; use normalized, concise, simplified or keyValues"
            )
        return _FORMAT_OPTIONS[explicit]
    formats = {_FORMAT_OPTIONS[o] for o in options if o in _FORMAT_OPTIONS}
    if len(formats) > 1:
        raise BadRequestData("options names more than one format")
    return formats.pop() if formats else Format.NORMALIZED


def _names(request: Request, param: str, ctx: Context) -> frozenset[str] | None:
    names = query_list(request, param)
    if names is None:
        return None
    return frozenset(n if n in ENTITY_MEMBERS else ctx.expand(n) for n in names)


def render_options(request: Request, ctx: Context) -> tuple[RenderOptions, frozenset[str] | None]:
    """How to render entities for this request, and the attributes ``attrs`` asked for."""
    options = request_options(request)
    attrs = query_list(request, "attrs")
    attr_names = frozenset(ctx.expand(a) for a in attrs) if attrs is not None else None
    pick = _names(request, "pick", ctx)
    omit = _names(request, "omit", ctx) or frozenset()
    if pick is not None and attr_names is not None:
        raise BadRequestData("attrs and pick cannot be used together; attrs is the old pick")
    if attr_names is not None:
        pick = attr_names | frozenset(ENTITY_MEMBERS)
    lang = request.query_params.get("lang")
    render = RenderOptions(
        format=response_format(request, options),
        projection=Projection(pick=pick, omit=omit),
        sys_attrs="sysAttrs" in options,
        lang=parse_lang(lang) if lang else None,
    )
    return render, attr_names


def context_reference(request_context: Any) -> Any:
    """What to name as the @context of a response: the request's, or the core context."""
    return request_context if request_context is not None else CORE_CONTEXT_URL


def entity_response(
    entities: Entity | list[Entity],
    *,
    ctx: Context,
    options: RenderOptions,
    accept: str,
    request_context: Any,
    geometry_property: str | None = None,
    prefer_link: bool = False,
    headers: dict[str, str] | None = None,
) -> Response:
    """Render one entity (or a list) in the negotiated media type."""
    reference = context_reference(request_context)
    out_headers = dict(headers or {})
    many = isinstance(entities, list)
    items = entities if isinstance(entities, list) else [entities]
    if accept == GEO_JSON:
        geo_name = ctx.expand(geometry_property or "location")
        features = [render_feature(e, ctx, options, geo_name) for e in items]
        body: Any = {"type": "FeatureCollection", "features": features} if many else features[0]
        if prefer_link and isinstance(reference, str):
            out_headers["Link"] = context_link(reference)
        else:
            body["@context"] = reference
        return json_response(body, media_type=GEO_JSON, headers=out_headers)
    rendered = [render_entity(e, ctx, options) for e in items]
    if accept == JSON_LD:
        for item in rendered:
            item["@context"] = reference
    elif isinstance(reference, str):
        out_headers["Link"] = context_link(reference)
    return json_response(
        rendered if many else rendered[0],
        media_type=JSON_LD if accept == JSON_LD else JSON,
        headers=out_headers,
    )
