"""/ngsi-ld/v1/types and /ngsi-ld/v1/attributes: what entity types and attributes a tenant holds
(ETSI GS CIM 009, 5.7.5-5.7.10; HTTP binding 6.25-6.28)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

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
    query_flag,
    tenant_of,
)
from burgo.api.representation import context_reference
from burgo.api.services import services
from burgo.ngsild.context import Context
from burgo.ngsild.errors import ResourceNotFound
from burgo.store.discovery import AttributeDetails, TypeDetails

router = APIRouter(prefix="/ngsi-ld/v1", tags=["NGSI-LD discovery"])


class _Reply:
    """What a discovery request needs: tenant, @context, and how to answer."""

    def __init__(self, request: Request, ctx: Context) -> None:
        self.request = request
        self.ctx = ctx
        self.tenant = tenant_of(request)
        self.accept = negotiate(request, (JSON, JSON_LD))
        self.reference = context_reference(link_context_url(request))

    def send(self, body: dict[str, Any] | list[dict[str, Any]]) -> Response:
        """The body in the negotiated media type, its @context in the body or a Link header."""
        headers: dict[str, str] = {}
        tenant = self.request.headers.get(TENANT_HEADER)
        if tenant:
            headers[TENANT_HEADER] = tenant
        if self.accept == JSON_LD:
            for item in body if isinstance(body, list) else [body]:
                item["@context"] = self.reference
        elif isinstance(self.reference, str):
            headers["Link"] = context_link(self.reference)
        return json_response(body, media_type=self.accept, headers=headers)


async def _reply(request: Request) -> _Reply:
    negotiate(request, (JSON, JSON_LD))
    ctx = await services(request).contexts.resolve(link_context_url(request))
    return _Reply(request, ctx)


def _entity_type(details: TypeDetails, ctx: Context) -> dict[str, Any]:
    return {
        "id": details.name,
        "type": "EntityType",
        "typeName": ctx.compact(details.name),
        "attributeNames": [ctx.compact(name) for name in details.attributes],
    }


def _attribute(details: AttributeDetails, ctx: Context) -> dict[str, Any]:
    return {
        "id": details.name,
        "type": "Attribute",
        "attributeName": ctx.compact(details.name),
        "attributeCount": details.count,
        "attributeTypes": list(details.kinds),
        "typeNames": [ctx.compact(name) for name in details.entity_types],
    }


def _name_list(kind: str, member: str, names: Sequence[str], ctx: Context) -> dict[str, Any]:
    """An EntityTypeList or AttributeList: a new id and the names, compacted."""
    return {
        "id": f"urn:ngsi-ld:{kind}:{uuid.uuid4()}",
        "type": kind,
        member: [ctx.compact(name) for name in names],
    }


@router.get("/types", summary="List the entity types")
async def get_types(request: Request) -> Response:
    """The entity types in use (EntityTypeList), or each with its attributes (``details=true``)."""
    reply = await _reply(request)
    store = services(request).store
    if query_flag(request, "details"):
        details = await store.type_details(reply.tenant)
        return reply.send([_entity_type(d, reply.ctx) for d in details])
    names = await store.entity_types(reply.tenant)
    return reply.send(_name_list("EntityTypeList", "typeList", names, reply.ctx))


@router.get("/types/{type_name:path}", summary="Describe one entity type")
async def get_type(request: Request, type_name: str) -> Response:
    """How many entities have the type, and the kinds of their attributes (EntityTypeInfo)."""
    reply = await _reply(request)
    iri = reply.ctx.expand(type_name)
    found = await services(request).store.type_details(reply.tenant, [iri])
    if not found:
        raise ResourceNotFound(f"No entity has the type {type_name}")
    details = found[0]
    return reply.send(
        {
            "id": details.name,
            "type": "EntityTypeInfo",
            "typeName": reply.ctx.compact(details.name),
            "entityCount": details.entity_count,
            "attributeDetails": [
                {
                    "id": name,
                    "type": "Attribute",
                    "attributeName": reply.ctx.compact(name),
                    "attributeTypes": list(kinds),
                }
                for name, kinds in details.attributes.items()
            ],
        }
    )


@router.get("/attributes", summary="List the attributes")
async def get_attributes(request: Request) -> Response:
    """The attribute names in use (AttributeList), or each described (``details=true``)."""
    reply = await _reply(request)
    store = services(request).store
    if query_flag(request, "details"):
        details = await store.attribute_details(reply.tenant)
        return reply.send([_attribute(d, reply.ctx) for d in details])
    names = await store.attribute_names(reply.tenant)
    return reply.send(_name_list("AttributeList", "attributeList", names, reply.ctx))


@router.get("/attributes/{attr_id:path}", summary="Describe one attribute")
async def get_attribute(request: Request, attr_id: str) -> Response:
    """How many instances the attribute has, their kinds, and the types of entities holding it."""
    reply = await _reply(request)
    iri = reply.ctx.expand(attr_id)
    found = await services(request).store.attribute_details(reply.tenant, [iri])
    if not found:
        raise ResourceNotFound(f"No entity has the attribute {attr_id}")
    return reply.send(_attribute(found[0], reply.ctx))
