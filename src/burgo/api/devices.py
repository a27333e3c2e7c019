"""/api/v1/devices and /api/v1/lorawan: the device registry, measurements over HTTP, and the
LoRaWAN network-server webhooks (The Things Stack v3, ChirpStack v4).

The routes are HTTP glue only: what a device is and how its data is taken in belongs to the
ingestion service, which ``create_app`` puts on the application as ``state.devices``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from urllib.parse import quote

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from burgo.api.http import JSON, json_response, read_json, tenant_of
from burgo.api.services import services

router = APIRouter(prefix="/api/v1", tags=["Devices"])

KEY_HEADER = "X-Api-Key"
SECRET_HEADER = "X-Burgo-Secret"  # noqa: S105 - a header name, not a secret


class DeviceApi(Protocol):
    """What these routes ask of the ingestion service."""

    def profiles(self) -> list[dict[str, Any]]: ...

    def decoders(self) -> list[str]: ...

    async def add(self, tenant: str, body: Any) -> tuple[dict[str, Any], str]: ...

    async def show(self, tenant: str, device_id: str) -> dict[str, Any]: ...

    async def list_devices(self, tenant: str) -> list[dict[str, Any]]: ...

    async def remove(self, tenant: str, device_id: str) -> None: ...

    async def http_measurements(
        self, tenant: str, device_id: str, key: str | None, read_body: Callable[[], Awaitable[Any]]
    ) -> int: ...

    def check_secret(self, network: str, secret: str | None) -> None: ...

    async def lorawan_uplink(
        self, network: str, tenant: str, secret: str | None, body: Any
    ) -> str: ...


def _devices(request: Request) -> DeviceApi:
    found: DeviceApi = request.app.state.devices
    return found


async def _body(request: Request) -> Any:
    return await read_json(request, services(request).settings.max_body_bytes, (JSON,))


def _key(request: Request) -> str | None:
    key = request.headers.get(KEY_HEADER)
    if key:
        return key
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@router.get("/devices/profiles", summary="List the device profiles")
async def list_profiles(request: Request) -> Response:
    """The built-in templates (sensor kinds) a device can be registered from."""
    return json_response(_devices(request).profiles())


@router.get("/devices/decoders", summary="List the payload decoders")
async def list_decoders(request: Request) -> Response:
    """The payload decoders available: built in and installed as ``burgo.decoders`` plug-ins."""
    return json_response(_devices(request).decoders())


@router.post("/devices", status_code=201, summary="Register a device")
async def post_device(request: Request) -> Response:
    """Register a device; the answer carries its API key, which is never shown again."""
    body, key = await _devices(request).add(tenant_of(request), await _body(request))
    location = f"/api/v1/devices/{quote(body['id'])}"
    return json_response({**body, "apiKey": key}, status=201, headers={"Location": location})


@router.get("/devices", summary="List devices")
async def get_devices(request: Request) -> Response:
    """The tenant's devices with their health status."""
    return json_response(await _devices(request).list_devices(tenant_of(request)))


@router.get("/devices/{device_id}", summary="Show a device")
async def get_device(request: Request, device_id: str) -> Response:
    """One device with its health status."""
    return json_response(await _devices(request).show(tenant_of(request), device_id))


@router.delete("/devices/{device_id}", status_code=204, summary="Remove a device")
async def delete_device(request: Request, device_id: str) -> Response:
    """Forget a device and its Device entity; the data it sent stays in its target entity."""
    await _devices(request).remove(tenant_of(request), device_id)
    return Response(status_code=204)


@router.post("/devices/{device_id}/measurements", status_code=202, summary="Send measurements")
async def post_measurements(request: Request, device_id: str) -> Response:
    """One reading (an object) or a batch (an array), authenticated by the device's API key;
    answered once the data is durably stored."""
    stored = await _devices(request).http_measurements(
        tenant_of(request), device_id, _key(request), lambda: _body(request)
    )
    return json_response({"stored": stored}, status=202)


@router.post("/lorawan/tts", status_code=202, summary="The Things Stack v3 webhook")
async def post_tts(request: Request) -> Response:
    """An uplink (``uplink_message``) from a The Things Stack webhook; other messages are
    acknowledged and ignored."""
    result = await _devices(request).lorawan_uplink(
        "tts", tenant_of(request), _secret(request), await _body(request)
    )
    return json_response({"result": result}, status=202)


@router.post("/lorawan/chirpstack", status_code=202, summary="ChirpStack v4 HTTP integration")
async def post_chirpstack(request: Request) -> Response:
    """An event of a ChirpStack v4 HTTP integration: ``?event=up`` uplinks are taken in, other
    events acknowledged and ignored."""
    event = request.query_params.get("event", "")
    body = await _body(request)
    devices = _devices(request)
    if event != "up":
        # Still authenticated, so a wrong secret shows in ChirpStack's logs at once.
        devices.check_secret("chirpstack", _secret(request))
        return json_response({"result": "ignored"}, status=202)
    result = await devices.lorawan_uplink("chirpstack", tenant_of(request), _secret(request), body)
    return json_response({"result": result}, status=202)


def _secret(request: Request) -> str | None:
    return request.headers.get(SECRET_HEADER)
