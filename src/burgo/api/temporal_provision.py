"""Writing history directly: import instances (``POST /temporal/entities``, how a city loads
historic data), add to one entity, delete an entity's or an attribute's history, correct one
instance."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from burgo.api.http import TENANT_HEADER, link_context_url, query_flag, read_json_body, tenant_of
from burgo.api.services import services
from burgo.ngsild.context import Context
from burgo.ngsild.errors import BadRequestData
from burgo.ngsild.model import Attribute, Instances
from burgo.ngsild.parse import (
    ENTITY_MEMBERS,
    attribute_iri,
    build_attribute,
    check_attribute_name,
    check_uri,
    normalize_attribute,
    parse_types,
)
from burgo.ngsild.update import merge_instance

router = APIRouter()


def _tenant_headers(request: Request) -> dict[str, str]:
    tenant = request.headers.get(TENANT_HEADER)
    return {TENANT_HEADER: tenant} if tenant else {}


def parse_temporal_attrs(body: dict[str, Any], ctx: Context) -> dict[str, Instances]:
    """The attributes of a temporal entity body: each a list of instances (or one), every
    instance with an observedAt that places it in time."""
    attrs: dict[str, Instances] = {}
    for name, raw in body.items():
        if name in ENTITY_MEMBERS or name in ("@id", "@type"):
            continue
        iri = attribute_iri(name, ctx)
        items = raw if isinstance(raw, list) else [raw]
        instances = []
        for item in items:
            if not isinstance(item, dict):
                raise BadRequestData(f"Each instance of {name!r} must be an attribute object")
            for doc in normalize_attribute(item, ctx, name=name):
                instance = build_attribute(doc, name)
                if instance.observed_at is None:
                    raise BadRequestData(
                        f"Each instance of {name!r} needs an observedAt to place it in time"
                    )
                instances.append(instance)
        if not instances:
            raise BadRequestData(f"Attribute {name!r} has no instance")
        attrs[iri] = tuple(instances)
    return attrs


@router.post("/temporal/entities", status_code=201, summary="Create or add to an entity's history")
async def post_temporal_entity(request: Request) -> Response:
    """Add the instances of a temporal entity (201 when the entity had no history, else 204)."""
    svc = services(request)
    tenant = tenant_of(request)
    body = await read_json_body(request, svc.settings.max_body_bytes)
    if not isinstance(body.data, dict):
        raise BadRequestData("A temporal entity must be a JSON object")
    ctx = await svc.contexts.resolve(body.context)
    entity_id = check_uri(body.data.get("id", body.data.get("@id")), "Entity id")
    raw_type = body.data.get("type", body.data.get("@type"))
    if raw_type is None:
        raise BadRequestData("A temporal entity needs a type")
    types = parse_types(raw_type, ctx)
    attrs = parse_temporal_attrs(body.data, ctx)
    created = await svc.store.add_history(tenant, entity_id, types, attrs)
    headers = _tenant_headers(request)
    if not created:
        return Response(status_code=204, headers=headers)
    location = f"/ngsi-ld/v1/temporal/entities/{quote(entity_id, safe=':')}"
    return Response(status_code=201, headers={"Location": location, **headers})


@router.post(
    "/temporal/entities/{entity_id:path}/attrs",
    status_code=204,
    summary="Add instances to an entity's history",
)
async def post_temporal_attrs(request: Request, entity_id: str) -> Response:
    """Add attribute instances to the history of an entity that has one."""
    svc = services(request)
    tenant = tenant_of(request)
    check_uri(entity_id, "Entity id")
    body = await read_json_body(request, svc.settings.max_body_bytes)
    if not isinstance(body.data, dict):
        raise BadRequestData("A temporal entity fragment must be a JSON object")
    ctx = await svc.contexts.resolve(body.context)
    attrs = parse_temporal_attrs(body.data, ctx)
    await svc.store.add_history(tenant, entity_id, None, attrs)
    return Response(status_code=204, headers=_tenant_headers(request))


@router.delete(
    "/temporal/entities/{entity_id:entity_id}",
    status_code=204,
    summary="Delete an entity's history",
)
async def delete_temporal_entity(request: Request, entity_id: str) -> Response:
    """Forget the whole history of an entity (its current state is not touched)."""
    svc = services(request)
    tenant = tenant_of(request)
    check_uri(entity_id, "Entity id")
    await svc.store.delete_history(tenant, entity_id)
    return Response(status_code=204, headers=_tenant_headers(request))


@router.delete(
    "/temporal/entities/{entity_id:path}/attrs/{attr_id}",
    status_code=204,
    summary="Delete an attribute's history",
)
async def delete_temporal_attr(request: Request, entity_id: str, attr_id: str) -> Response:
    """Forget the history of one attribute: its default instance, ``datasetId``, or all
    (``deleteAll=true``)."""
    svc = services(request)
    tenant = tenant_of(request)
    check_uri(entity_id, "Entity id")
    check_attribute_name(attr_id)
    ctx = await svc.contexts.resolve(link_context_url(request))
    dataset_id = request.query_params.get("datasetId")
    if dataset_id is not None:
        check_uri(dataset_id, "datasetId")
    delete_all = query_flag(request, "deleteAll")
    if delete_all and dataset_id is not None:
        raise BadRequestData("Give datasetId or deleteAll=true, not both")
    await svc.store.delete_history_attr(
        tenant, entity_id, ctx.expand(attr_id), dataset_id, delete_all
    )
    return Response(status_code=204, headers=_tenant_headers(request))


@router.patch(
    "/temporal/entities/{entity_id:path}/attrs/{attr_id}/{instance_id}",
    status_code=204,
    summary="Modify one recorded instance",
)
async def patch_temporal_instance(
    request: Request, entity_id: str, attr_id: str, instance_id: str
) -> Response:
    """Correct one recorded instance (its value, unitCode, sub-attributes; not its time)."""
    svc = services(request)
    tenant = tenant_of(request)
    check_uri(entity_id, "Entity id")
    check_uri(instance_id, "instanceId")
    check_attribute_name(attr_id)
    body = await read_json_body(request, svc.settings.max_body_bytes, patch=True)
    if not isinstance(body.data, dict):
        raise BadRequestData("An attribute fragment must be a JSON object")
    ctx = await svc.contexts.resolve(body.context)
    data = {k: v for k, v in body.data.items() if k not in ("@context", "instanceId")}
    docs = normalize_attribute(data, ctx, name=attr_id, patch=True)
    if len(docs) != 1 or "datasetId" in docs[0]:
        raise BadRequestData("An instance patch is one attribute fragment without datasetId")
    name = ctx.expand(attr_id)
    patch = docs[0]

    def change(current: Attribute) -> Attribute:
        return merge_instance(current, patch, attr_id)

    await svc.store.modify_history_instance(tenant, entity_id, name, instance_id, change)
    return Response(status_code=204, headers=_tenant_headers(request))
