"""HTTP edges of the NGSI-LD API: media types, Link headers, tenants, bodies and responses."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from burgo.ngsild.context import JSONLD_CONTEXT_REL
from burgo.ngsild.errors import (
    BadRequestData,
    InvalidRequest,
    NgsiLdError,
    NotAcceptable,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from burgo.store.base import DEFAULT_TENANT

JSON = "application/json"
JSON_LD = "application/ld+json"
GEO_JSON = "application/geo+json"
MERGE_PATCH = "application/merge-patch+json"
TENANT_HEADER = "NGSILD-Tenant"

_LINK = re.compile(r"^\s*<([^>]*)>\s*(;.*)?$")
_TENANT = re.compile(r"^[A-Za-z0-9_\-.:]{1,128}$")


def problem_response(
    error: NgsiLdError, *, status: int | None = None, headers: Mapping[str, str] | None = None
) -> Response:
    """An error as NGSI-LD problem details (served as application/json, ETSI 6.3.3); ``status``
    overrides the error type's own for plain HTTP errors such as 405."""
    body = error.to_problem()
    if status is not None:
        body["status"] = status
    return Response(
        orjson.dumps(body),
        status_code=body["status"],
        media_type=JSON,
        headers=dict(headers) if headers else None,
    )


def json_response(
    body: Any,
    *,
    status: int = 200,
    media_type: str = JSON,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A JSON body serialized with orjson."""
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type=media_type,
        headers=dict(headers) if headers else None,
    )


def context_link(url: str) -> str:
    """The Link header value that points to a JSON-LD @context."""
    return f'<{url}>; rel="{JSONLD_CONTEXT_REL}"; type="{JSON_LD}"'


def tenant_of(request: Request) -> str:
    """The tenant the request addresses (the default tenant when no header is given)."""
    tenant = request.headers.get(TENANT_HEADER)
    if tenant is None or tenant == "":
        return DEFAULT_TENANT
    if not _TENANT.match(tenant):
        raise BadRequestData(
            f"Invalid {TENANT_HEADER} {tenant!r}: up to 128 letters, digits, '_', '-', '.', ':'"
        )
    return tenant


def link_context_url(request: Request) -> str | None:
    """The @context URL of the request's Link header, if it has one."""
    links = [value for key, value in request.headers.raw if key.decode("latin-1").lower() == "link"]
    urls = []
    for header in links:
        for part in _split_links(header.decode("latin-1")):
            match = _LINK.match(part)
            if match is None:
                raise BadRequestData(f"Malformed Link header: {part.strip()!r}")
            params = (match[2] or "").replace(" ", "")
            if f'rel="{JSONLD_CONTEXT_REL}"' in params or f"rel={JSONLD_CONTEXT_REL}" in params:
                urls.append(match[1])
    if len(urls) > 1:
        raise BadRequestData("More than one JSON-LD context Link header was given")
    return urls[0] if urls else None


def _split_links(header: str) -> list[str]:
    parts, depth, start = [], False, 0
    for index, char in enumerate(header):
        if char == "<":
            depth = True
        elif char == ">":
            depth = False
        elif char == "," and not depth:
            parts.append(header[start:index])
            start = index + 1
    parts.append(header[start:])
    return [p for p in parts if p.strip()]


def media_type(request: Request) -> str:
    """The request's Content-Type without parameters, lower-case."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


@dataclass(frozen=True, slots=True)
class Body:
    """A parsed request body and the @context it carries or points to."""

    data: Any
    ld: bool
    context: Any


async def read_json(request: Request, max_bytes: int, allowed: tuple[str, ...]) -> Any:
    """The request's body parsed as JSON, its media type and size checked."""
    kind = media_type(request)
    if kind not in allowed:
        raise UnsupportedMediaType(
            f"Content-Type {kind or '(none)'!r} is not supported; use {' or '.join(allowed)}"
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"The body is larger than the limit of {max_bytes} bytes")
    raw = bytearray()
    try:
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > max_bytes:
                raise PayloadTooLarge(f"The body is larger than the limit of {max_bytes} bytes")
    except ClientDisconnect as exc:
        # The client's mistake (or its choice), not the server's: a 400 nobody reads, counted
        # as such, rather than an unexpected error in the log and a 500 in /metrics.
        raise InvalidRequest("The connection closed before the whole body arrived") from exc
    if not raw:
        raise InvalidRequest("The request body is empty; a JSON document is expected")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The body is not valid JSON: {exc}") from exc


async def read_json_body(request: Request, max_bytes: int, *, patch: bool = False) -> Body:
    """The request's JSON body, checked against the NGSI-LD media-type and @context rules."""
    data = await read_json(
        request, max_bytes, (JSON, JSON_LD, MERGE_PATCH) if patch else (JSON, JSON_LD)
    )
    link = link_context_url(request)
    if media_type(request) == JSON_LD:
        if link is not None:
            raise BadRequestData(
                "With application/ld+json the @context goes in the body, not in a Link header"
            )
        context = _body_context(data)
        if context is None:
            raise BadRequestData("An application/ld+json body must contain an @context")
        return Body(data=data, ld=True, context=context)
    if _body_context(data) is not None:
        raise BadRequestData(
            "An application/json body cannot carry an @context; send it in a "
            "Link header or use application/ld+json"
        )
    return Body(data=data, ld=False, context=link)


def _body_context(data: Any) -> Any:
    if isinstance(data, Mapping):
        return data.get("@context")
    if isinstance(data, list):
        contexts = [item.get("@context") for item in data if isinstance(item, Mapping)]
        return contexts[0] if contexts else None
    return None


def negotiate(request: Request, offers: tuple[str, ...] = (JSON, JSON_LD)) -> str:
    """The response media type for the request's Accept header (406 when none fits)."""
    accept = request.headers.get("accept")
    if not accept:
        return offers[0]
    best: tuple[float, int, str] | None = None
    for part in accept.split(","):
        fields = [f.strip() for f in part.split(";")]
        kind = fields[0].lower()
        weight = 1.0
        for param in fields[1:]:
            if param.startswith("q="):
                try:
                    weight = float(param[2:])
                except ValueError:
                    weight = 0.0
        if weight <= 0:
            continue
        for rank, offer in enumerate(offers):
            if kind in (offer, "*/*", "application/*"):
                candidate = (weight, -rank, offer)
                if best is None or candidate > best:
                    best = candidate
    if best is None:
        raise NotAcceptable(
            f"None of the accepted media types can be served; available: {', '.join(offers)}"
        )
    return best[2]


def query_flag(request: Request, name: str) -> bool:
    """A boolean query parameter (true/false), BadRequestData on anything else."""
    raw = request.query_params.get(name)
    if raw is None:
        return False
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise BadRequestData(f"Query parameter {name!r} must be true or false, got {raw!r}")


def query_list(request: Request, name: str) -> list[str] | None:
    """A comma-separated query parameter as a list (None when absent)."""
    values = request.query_params.getlist(name)
    if not values:
        return None
    items = [item.strip() for value in values for item in value.split(",")]
    if any(not item for item in items):
        raise BadRequestData(f"Query parameter {name!r} has an empty item")
    return items
