"""/ngsi-ld/v1/subscriptions: create, list, retrieve, update and delete subscriptions
(ETSI GS CIM 009, 5.8 and 6.10-6.11)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import uuid
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from burgo.api.http import (
    JSON_LD,
    TENANT_HEADER,
    context_link,
    json_response,
    link_context_url,
    negotiate,
    query_flag,
    read_json_body,
    tenant_of,
)
from burgo.api.representation import context_reference, request_options
from burgo.api.services import Services, services
from burgo.ngsild.errors import BadRequestData, ResourceNotFound
from burgo.ngsild.parse import check_uri
from burgo.ngsild.subscription import (
    Subscription,
    parse_subscription,
    patch_subscription,
    render_subscription,
)
from burgo.store.base import StoredSubscription

router = APIRouter(prefix="/ngsi-ld/v1", tags=["NGSI-LD subscriptions"])

BASE = "/ngsi-ld/v1/subscriptions"
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
_ALL_NETWORKS = frozenset({"0.0.0.0/0", "::/0"})


def _tenant_headers(request: Request) -> dict[str, str]:
    tenant = request.headers.get(TENANT_HEADER)
    return {TENANT_HEADER: tenant} if tenant else {}


async def check_endpoint_allowed(uri: str, networks: list[str]) -> None:
    """Refuse an endpoint whose host is (or resolves to) an address outside ``networks``."""
    if set(networks) >= _ALL_NETWORKS:
        return
    host = urlsplit(uri).hostname or ""
    allowed = [ipaddress.ip_network(n) for n in networks]
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None)
        except (socket.gaierror, UnicodeError) as exc:
            raise BadRequestData(f"The endpoint host {host!r} cannot be resolved") from exc
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for address in addresses:
        if not any(address in network for network in allowed):
            raise BadRequestData(
                f"Notifications may not be sent to {host} ({address}): it is outside the "
                f"allowed networks ({', '.join(networks)})"
            )


def _integer(request: Request, name: str, default: int, maximum: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise BadRequestData(f"{name} must be a non-negative integer, got {raw!r}")
    value = int(raw)
    if maximum is not None and value > maximum:
        raise BadRequestData(f"{name} must be at most {maximum}, got {value}")
    return value


def _response(
    svc: Services, request: Request, body: Any, headers: dict[str, str] | None = None
) -> Response:
    accept = negotiate(request)
    link = link_context_url(request)
    reference = context_reference(link)
    out_headers = {**_tenant_headers(request), **(headers or {})}
    if accept == JSON_LD:
        for item in body if isinstance(body, list) else [body]:
            item["@context"] = reference
    else:
        out_headers["Link"] = context_link(reference)
    return json_response(body, media_type=accept, headers=out_headers)


async def _render(
    svc: Services, request: Request, stored: list[StoredSubscription]
) -> list[dict[str, Any]]:
    ctx = await svc.contexts.resolve(link_context_url(request))
    sys_attrs = "sysAttrs" in request_options(request)
    now = svc.now()
    return [
        render_subscription(s.subscription, s.status, ctx, now=now, sys_attrs=sys_attrs)
        for s in stored
    ]


@router.post("/subscriptions", status_code=201, summary="Create a subscription")
async def post_subscription(request: Request) -> Response:
    """Subscribe an HTTP or MQTT endpoint to changes of entities."""
    svc = services(request)
    tenant = tenant_of(request)
    body = await read_json_body(request, svc.settings.max_body_bytes)
    ctx = await svc.contexts.resolve(body.context)
    data = body.data
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k != "@context"}
    sub = parse_subscription(
        data,
        ctx,
        now=svc.now(),
        new_id=f"urn:ngsi-ld:Subscription:{uuid.uuid4()}",
        context=body.context,
    )
    await _check_guard(svc, sub)
    await svc.store.create_subscription(tenant, sub)
    location = f"{BASE}/{quote(sub.id, safe=':')}"
    return Response(status_code=201, headers={"Location": location, **_tenant_headers(request)})


async def _check_guard(svc: Services, sub: Subscription) -> None:
    await check_endpoint_allowed(
        sub.notification.endpoint.uri, svc.settings.notification_allowed_networks
    )


@router.get("/subscriptions", summary="List subscriptions")
async def list_subscriptions(request: Request) -> Response:
    """The tenant's subscriptions, a page at a time (``limit``, ``offset``, ``count``)."""
    svc = services(request)
    tenant = tenant_of(request)
    negotiate(request)
    limit = _integer(request, "limit", DEFAULT_LIMIT, MAX_LIMIT)
    offset = _integer(request, "offset", 0)
    count = query_flag(request, "count")
    if limit == 0 and not count:
        raise BadRequestData("limit=0 is only allowed together with count=true")
    page, total = await svc.store.list_subscriptions(tenant, limit=limit, offset=offset)
    headers = {"NGSILD-Results-Count": str(total)} if count else {}
    links = []
    if offset + limit < total and limit > 0:
        links.append(f'<{BASE}?limit={limit}&offset={offset + limit}>; rel="next"')
    if offset > 0 and limit > 0:
        links.append(f'<{BASE}?limit={limit}&offset={max(offset - limit, 0)}>; rel="prev"')
    response = _response(svc, request, await _render(svc, request, page), headers)
    for value in links:
        response.headers.append("Link", value)
    return response


@router.get("/subscriptions/{subscription_id:path}", summary="Retrieve a subscription")
async def get_subscription(request: Request, subscription_id: str) -> Response:
    """One subscription with its delivery status."""
    svc = services(request)
    tenant = tenant_of(request)
    negotiate(request)
    stored = await svc.store.get_subscription(tenant, check_uri(subscription_id, "id"))
    if stored is None:
        raise ResourceNotFound(f"Subscription {subscription_id} was not found")
    return _response(svc, request, (await _render(svc, request, [stored]))[0])


@router.patch(
    "/subscriptions/{subscription_id:path}", status_code=204, summary="Update a subscription"
)
async def patch_subscription_route(request: Request, subscription_id: str) -> Response:
    """Replace the members given in the fragment (pause with ``isActive: false``, ...)."""
    svc = services(request)
    tenant = tenant_of(request)
    sub_id = check_uri(subscription_id, "id")
    body = await read_json_body(request, svc.settings.max_body_bytes, patch=True)
    ctx = await svc.contexts.resolve(body.context)
    data = body.data
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k != "@context"}
    now = svc.now()
    current = await svc.store.get_subscription(tenant, sub_id)
    if current is None:
        raise ResourceNotFound(f"Subscription {sub_id} was not found")
    checked = patch_subscription(current.subscription, data, ctx, now=now)
    await _check_guard(svc, checked)
    await svc.store.modify_subscription(
        tenant, sub_id, lambda sub: patch_subscription(sub, data, ctx, now=now)
    )
    return Response(status_code=204, headers=_tenant_headers(request))


@router.delete(
    "/subscriptions/{subscription_id:path}", status_code=204, summary="Delete a subscription"
)
async def delete_subscription(request: Request, subscription_id: str) -> Response:
    """Delete a subscription; notifications still queued for it are dropped."""
    svc = services(request)
    tenant = tenant_of(request)
    await svc.store.delete_subscription(tenant, check_uri(subscription_id, "id"))
    return Response(status_code=204, headers=_tenant_headers(request))
