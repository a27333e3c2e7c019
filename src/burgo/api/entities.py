"""/ngsi-ld/v1/entities: create, retrieve, replace, merge, delete entities and their attributes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response

from burgo.api.http import (
    GEO_JSON,
    JSON,
    JSON_LD,
    TENANT_HEADER,
    json_response,
    link_context_url,
    negotiate,
    query_flag,
    read_json_body,
    tenant_of,
)
from burgo.api.representation import entity_response, render_options, request_options
from burgo.api.services import Services, services
from burgo.ngsild.context import Context
from burgo.ngsild.errors import BadRequestData, ResourceNotFound
from burgo.ngsild.model import Entity
from burgo.ngsild.parse import (
    build_attribute,
    check_attribute_name,
    check_uri,
    normalize_attribute,
    parse_entity,
    parse_fragment,
)
from burgo.ngsild.times import canonical_datetime
from burgo.ngsild.update import (
    UpdateResult,
    append_attrs,
    create_entity,
    delete_attr,
    merge_entity,
    partial_update_attr,
    replace_attr,
    replace_entity,
    simplified_patch,
    update_attrs,
)


class EntityIdConvertor(Convertor[str]):
    """An entity id in a URL path: a URI that may hold "/", but never the attrs routes' tail."""

    regex = r"(?!.*/attrs(/[^/]*)?$).+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("entity_id", EntityIdConvertor())

router = APIRouter(prefix="/ngsi-ld/v1", tags=["NGSI-LD entities"])


def _entity_id(raw: str) -> str:
    return check_uri(raw, "Entity id")


def _same_entity(data: Any, entity_id: str) -> None:
    """Refuse a body whose ``id`` names another entity than the URL does."""
    if isinstance(data, dict):
        body_id = data.get("id", data.get("@id"))
        if body_id is not None and body_id != entity_id:
            raise BadRequestData(f"The body's id {body_id} differs from the URL's {entity_id}")


def _tenant_headers(request: Request) -> dict[str, str]:
    tenant = request.headers.get(TENANT_HEADER)
    return {TENANT_HEADER: tenant} if tenant else {}


def _no_content(request: Request) -> Response:
    return Response(status_code=204, headers=_tenant_headers(request))


def _type_guard(request: Request, ctx: Context) -> Callable[[Entity], None]:
    """A check that the stored entity has the type named by the ``type`` parameter, if any."""
    wanted = request.query_params.get("type")
    expanded = [ctx.expand(t) for t in wanted.split(",")] if wanted else []

    def check(entity: Entity) -> None:
        if expanded and not any(t in entity.types for t in expanded):
            raise ResourceNotFound(f"Entity {entity.id} is not of type {wanted}")

    return check


async def _read_context(svc: Services, request: Request) -> Context:
    return await svc.contexts.resolve(link_context_url(request))


def _update_result(result: UpdateResult, ctx: Context, request: Request) -> Response:
    if not result.not_updated:
        return _no_content(request)
    body = {
        "updated": [ctx.compact(name) for name in result.updated],
        "notUpdated": [
            {"attributeName": ctx.compact(name), "reason": reason}
            for name, reason in result.not_updated
        ],
    }
    return json_response(body, status=207, headers=_tenant_headers(request))


@router.post("/entities", status_code=201, summary="Create an entity")
async def post_entity(request: Request) -> Response:
    """Create one entity (normalized or concise; JSON with a Link header, or JSON-LD)."""
    svc = services(request)
    tenant = tenant_of(request)
    body = await read_json_body(request, svc.settings.max_body_bytes)
    ctx = await svc.contexts.resolve(body.context)
    entity = create_entity(parse_entity(body.data, ctx), svc.now())
    await svc.store.create_entity(tenant, entity)
    location = f"/ngsi-ld/v1/entities/{quote(entity.id, safe=':')}"
    return Response(status_code=201, headers={"Location": location, **_tenant_headers(request)})


def _attribute_name(raw: str, ctx: Context) -> str:
    check_attribute_name(raw)
    return ctx.expand(raw)


@router.patch(
    "/entities/{entity_id:path}/attrs/{attr_id}",
    status_code=204,
    summary="Partially update an attribute",
)
async def patch_attr(request: Request, entity_id: str, attr_id: str) -> Response:
    """Merge a fragment into one attribute (the instance named by ``datasetId`` in the body)."""
    svc = services(request)
    tenant = tenant_of(request)
    entity_id = _entity_id(entity_id)
    body = await read_json_body(request, svc.settings.max_body_bytes, patch=True)
    if not isinstance(body.data, dict):
        raise BadRequestData("An attribute fragment must be a JSON object")
    ctx = await svc.contexts.resolve(body.context)
    name = _attribute_name(attr_id, ctx)
    data = {k: v for k, v in body.data.items() if k != "@context"}
    docs = normalize_attribute(data, ctx, name=attr_id, patch=True)
    if len(docs) != 1:
        raise BadRequestData("A partial attribute update patches one instance")
    guard, now = _type_guard(request, ctx), svc.now()

    def change(current: Entity) -> tuple[Entity, None]:
        guard(current)
        return partial_update_attr(current, name, docs[0], now), None

    await svc.store.modify_entity(tenant, entity_id, change)
    return _no_content(request)


@router.put(
    "/entities/{entity_id:path}/attrs/{attr_id}", status_code=204, summary="Replace an attribute"
)
async def put_attr(request: Request, entity_id: str, attr_id: str) -> Response:
    """Replace one attribute instance as a whole."""
    svc = services(request)
    tenant = tenant_of(request)
    entity_id = _entity_id(entity_id)
    body = await read_json_body(request, svc.settings.max_body_bytes)
    ctx = await svc.contexts.resolve(body.context)
    name = _attribute_name(attr_id, ctx)
    data = body.data
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k != "@context"}
    fragment = parse_fragment({attr_id: data}, ctx, patch=False)
    instances = tuple(build_attribute(doc, attr_id) for doc in fragment.attrs[name])
    guard, now = _type_guard(request, ctx), svc.now()

    def change(current: Entity) -> tuple[Entity, None]:
        guard(current)
        return replace_attr(current, name, instances, now), None

    await svc.store.modify_entity(tenant, entity_id, change)
    return _no_content(request)


@router.delete(
    "/entities/{entity_id:path}/attrs/{attr_id}", status_code=204, summary="Delete an attribute"
)
async def delete_attr_route(request: Request, entity_id: str, attr_id: str) -> Response:
    """Delete one attribute instance (``datasetId``), or every instance (``deleteAll=true``)."""
    svc = services(request)
    tenant = tenant_of(request)
    entity_id = _entity_id(entity_id)
    ctx = await _read_context(svc, request)
    name = _attribute_name(attr_id, ctx)
    dataset_id = request.query_params.get("datasetId")
    if dataset_id is not None:
        check_uri(dataset_id, "datasetId")
    delete_all = query_flag(request, "deleteAll")
    guard, now = _type_guard(request, ctx), svc.now()

    def change(current: Entity) -> tuple[Entity, None]:
        guard(current)
        entity, _ = delete_attr(current, name, dataset_id=dataset_id, delete_all=delete_all)
        return entity.with_attrs(entity.attrs, now), None

    await svc.store.modify_entity(tenant, entity_id, change)
    return _no_content(request)


@router.post("/entities/{entity_id:path}/attrs", summary="Append attributes")
async def post_attrs(request: Request, entity_id: str) -> Response:
    """Add attributes; existing ones are replaced unless ``options=noOverwrite``."""
    svc = services(request)
    tenant = tenant_of(request)
    entity_id = _entity_id(entity_id)
    overwrite = "noOverwrite" not in request_options(request, ("noOverwrite",))
    body = await read_json_body(request, svc.settings.max_body_bytes)
    _same_entity(body.data, entity_id)
    ctx = await svc.contexts.resolve(body.context)
    fragment = parse_fragment(body.data, ctx, patch=False)
    guard, now = _type_guard(request, ctx), svc.now()

    def change(current: Entity) -> tuple[Entity, UpdateResult]:
        guard(current)
        return append_attrs(current, fragment, now, overwrite=overwrite)

    result = await svc.store.modify_entity(tenant, entity_id, change)
    return _update_result(result, ctx, request)


@router.patch("/entities/{entity_id:path}/attrs", summary="Update attributes")
async def patch_attrs(request: Request, entity_id: str) -> Response:
    """Replace existing attributes; those that do not exist are reported (207)."""
    svc = services(request)
    tenant = tenant_of(request)
    entity_id = _entity_id(entity_id)
    body = await read_json_body(request, svc.settings.max_body_bytes, patch=True)
    _same_entity(body.data, entity_id)
    ctx = await svc.contexts.resolve(body.context)
    fragment = parse_fragment(body.data, ctx, patch=True)
    guard, now = _type_guard(request, ctx), svc.now()

    def change(current: Entity) -> tuple[Entity, UpdateResult]:
        guard(current)
        return update_attrs(current, fragment, now)

    result = await svc.store.modify_entity(tenant, entity_id, change)
    return _update_result(result, ctx, request)


@router.get("/entities/{entity_id:entity_id}", summary="Retrieve an entity")
async def get_entity(request: Request, entity_id: str) -> Response:
    """One entity in the representation asked for (normalized, concise, keyValues, GeoJSON)."""
    svc = services(request)
    tenant = tenant_of(request)
    accept = negotiate(request, (JSON, JSON_LD, GEO_JSON))
    link = link_context_url(request)
    ctx = await svc.contexts.resolve(link)
    options, attrs = render_options(request, ctx)
    entity = await svc.store.get_entity(tenant, _entity_id(entity_id))
    if entity is None:
        raise ResourceNotFound(f"Entity {entity_id} was not found")
    _type_guard(request, ctx)(entity)
    if attrs is not None and not any(name in entity.attrs for name in attrs):
        raise ResourceNotFound(f"Entity {entity_id} has none of the attributes asked for")
    prefer = request.headers.get("prefer", "").replace(" ", "")
    return entity_response(
        entity,
        ctx=ctx,
        options=options,
        accept=accept,
        request_context=link,
        geometry_property=request.query_params.get("geometryProperty"),
        prefer_link="body=json" in prefer,
        headers=_tenant_headers(request),
    )


@router.delete("/entities/{entity_id:entity_id}", status_code=204, summary="Delete an entity")
async def delete_entity(request: Request, entity_id: str) -> Response:
    """Delete an entity and all its attributes."""
    svc = services(request)
    tenant = tenant_of(request)
    ctx = await _read_context(svc, request)
    guard = _type_guard(request, ctx)

    def change(current: Entity) -> tuple[Entity | None, None]:
        guard(current)
        return None, None

    await svc.store.modify_entity(tenant, _entity_id(entity_id), change)
    return _no_content(request)


@router.put("/entities/{entity_id:entity_id}", status_code=204, summary="Replace an entity")
async def put_entity(request: Request, entity_id: str) -> Response:
    """Replace all of an entity's attributes (its creation time is kept)."""
    svc = services(request)
    tenant = tenant_of(request)
    entity_id = _entity_id(entity_id)
    body = await read_json_body(request, svc.settings.max_body_bytes)
    ctx = await svc.contexts.resolve(body.context)
    _same_entity(body.data, entity_id)
    new = parse_entity(body.data, ctx, require_id=False)
    guard, now = _type_guard(request, ctx), svc.now()

    def change(current: Entity) -> tuple[Entity, None]:
        guard(current)
        return replace_entity(current, new, now), None

    await svc.store.modify_entity(tenant, entity_id, change)
    return _no_content(request)


@router.patch("/entities/{entity_id:entity_id}", status_code=204, summary="Merge an entity")
async def patch_entity(request: Request, entity_id: str) -> Response:
    """Merge a fragment into an entity: new attributes added, existing ones merged,
    NGSI-LD Null (``urn:ngsi-ld:null``) deleting."""
    svc = services(request)
    tenant = tenant_of(request)
    entity_id = _entity_id(entity_id)
    options = request_options(request)
    body = await read_json_body(request, svc.settings.max_body_bytes, patch=True)
    if not isinstance(body.data, dict):
        raise BadRequestData("An entity fragment must be a JSON object")
    _same_entity(body.data, entity_id)
    ctx = await svc.contexts.resolve(body.context)
    simplified = request.query_params.get("format") in ("simplified", "keyValues") or bool(
        {"keyValues", "simplified"} & options
    )
    lang = request.query_params.get("lang")
    raw_observed = request.query_params.get("observedAt")
    observed_at = canonical_datetime(raw_observed, "observedAt") if raw_observed else None
    if not simplified and lang is None:
        parse_fragment(body.data, ctx, patch=True)  # bad input fails before the store is touched
    guard, now = _type_guard(request, ctx), svc.now()

    def change(current: Entity) -> tuple[Entity, None]:
        guard(current)
        data: dict[str, Any] = body.data
        if simplified or lang is not None:
            data = simplified_patch(current, data, ctx.expand, lang)
        fragment = parse_fragment(data, ctx, patch=True)
        return merge_entity(current, fragment, now, observed_at=observed_at), None

    await svc.store.modify_entity(tenant, entity_id, change)
    return _no_content(request)
