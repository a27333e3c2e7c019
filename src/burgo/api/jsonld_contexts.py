"""/ngsi-ld/v1/jsonldContexts: the @context management API (ETSI GS CIM 009, 5.13)."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from burgo.api.context_resolver import (
    HOSTED_PATH,
    KIND_CACHED,
    KIND_HOSTED,
    KIND_IMPLICIT,
)
from burgo.api.http import JSON, JSON_LD, json_response, negotiate, query_flag, read_json
from burgo.api.services import Services, services
from burgo.ngsild.errors import (
    BadRequestData,
    OperationNotSupported,
    ResourceNotFound,
)
from burgo.store.base import StoredContext

router = APIRouter(prefix="/ngsi-ld/v1", tags=["NGSI-LD @contexts"])

KINDS = (KIND_HOSTED, KIND_CACHED, KIND_IMPLICIT)


def _base_url(svc: Services, request: Request) -> str:
    if svc.settings.public_url:
        return svc.settings.public_url.rstrip("/")
    return str(request.base_url).rstrip("/")


def _served_url(svc: Services, request: Request, stored: StoredContext) -> str:
    if stored.kind == KIND_CACHED:
        return stored.url
    return _base_url(svc, request) + HOSTED_PATH + stored.id


def _details(svc: Services, request: Request, stored: StoredContext) -> dict[str, Any]:
    extra_hits, last = svc.contexts.usage.get(stored.id, (0, None))
    details: dict[str, Any] = {
        "URL": _served_url(svc, request, stored),
        "localId": stored.id,
        "kind": stored.kind,
        "createdAt": stored.created_at,
        "timestamp": stored.created_at,
        "numberOfHits": stored.hits + extra_hits,
    }
    last_usage = last or stored.last_usage
    if last_usage:
        details["lastUsage"] = last_usage
    return details


@router.post("/jsonldContexts", status_code=201, summary="Add a @context")
async def add_context(request: Request) -> Response:
    """Host a user @context; clients then name it in their Link headers by its URL."""
    svc = services(request)
    body = await read_json(request, svc.settings.max_body_bytes, (JSON, JSON_LD))
    if not isinstance(body, dict) or "@context" not in body:
        raise BadRequestData("The body must be a JSON object with an @context member")
    document = {"@context": body["@context"]}
    await svc.contexts.process(document["@context"])
    local_id = str(uuid.uuid4())
    url = _base_url(svc, request) + HOSTED_PATH + local_id
    await svc.store.put_context(
        StoredContext(
            id=local_id, url=url, kind=KIND_HOSTED, document=document, created_at=svc.now()
        )
    )
    return Response(status_code=201, headers={"Location": url})


@router.get("/jsonldContexts", summary="List @contexts")
async def list_contexts(request: Request) -> Response:
    """The @contexts this broker hosts or has cached: URLs, or details with ``details=true``."""
    svc = services(request)
    negotiate(request)
    kind = request.query_params.get("kind")
    if kind is not None and kind not in KINDS:
        raise BadRequestData(f"Unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    stored = await svc.store.list_contexts(kind)
    if query_flag(request, "details"):
        return json_response([_details(svc, request, s) for s in stored])
    return json_response([_served_url(svc, request, s) for s in stored])


@router.get("/jsonldContexts/{context_id:path}", summary="Serve a @context")
async def serve_context(request: Request, context_id: str) -> Response:
    """A hosted @context document, or any stored @context's details (``details=true``)."""
    svc = services(request)
    media_type = negotiate(request)
    stored = await svc.store.get_context(context_id)
    if stored is None:
        raise ResourceNotFound(f"No @context {context_id} is stored here")
    if query_flag(request, "details"):
        return json_response(_details(svc, request, stored))
    if stored.kind == KIND_CACHED:
        raise OperationNotSupported(
            f"@context {context_id} is a cached copy of {stored.url}; fetch it from there"
        )
    return Response(orjson.dumps(stored.document), media_type=media_type)


@router.delete("/jsonldContexts/{context_id:path}", status_code=204, summary="Delete a @context")
async def delete_context(request: Request, context_id: str) -> Response:
    """Delete a stored @context, or download a cached one again (``reload=true``)."""
    svc = services(request)
    stored = await svc.store.get_context(context_id)
    if stored is None:
        raise ResourceNotFound(f"No @context {context_id} is stored here")
    if query_flag(request, "reload"):
        if stored.kind != KIND_CACHED:
            raise BadRequestData("Only cached @contexts can be reloaded")
        document = await svc.contexts.download(stored.url)
        await svc.contexts.process(document["@context"])
        await svc.store.put_context(
            StoredContext(
                id=stored.id,
                url=stored.url,
                kind=stored.kind,
                document=document,
                created_at=svc.now(),
            )
        )
    else:
        await svc.store.delete_context(stored.id)
    svc.contexts.forget()
    return Response(status_code=204)
