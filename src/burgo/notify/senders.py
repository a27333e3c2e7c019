"""Sending one notification to its endpoint: HTTP(S) POST or an MQTT(S) publish (ETSI GS CIM 009,
6.3.x headers, clause 7 MQTT binding). A send either returns or raises :class:`DeliveryFailed`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomqtt
import httpx
import orjson

from burgo.ngsild.subscription import MQTT_QOS, MQTT_VERSION, Endpoint

log = logging.getLogger(__name__)


class DeliveryFailed(Exception):
    """The endpoint did not take the notification (unreachable, refused, error status)."""


class HttpSender:
    """POSTs notifications with a shared HTTP client."""

    def __init__(self, client: httpx.AsyncClient, timeout: float) -> None:
        self._client = client
        self._timeout = timeout

    async def send(self, endpoint: Endpoint, headers: Mapping[str, str], body: bytes) -> None:
        """POST ``body``; any non-2xx answer or transport error is a failure."""
        all_headers = {**headers, **dict(endpoint.receiver_info)}
        try:
            response = await self._client.post(
                endpoint.uri, content=body, headers=all_headers, timeout=self._timeout
            )
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{endpoint.uri}: {type(exc).__name__} {exc}") from exc
        if not 200 <= response.status_code < 300:
            raise DeliveryFailed(f"{endpoint.uri} answered {response.status_code}")


_ClientKey = tuple[str, str, int, str | None, str | None, str]


class MqttSender:
    """Publishes notifications, keeping one connection per broker (and credentials)."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._clients: dict[_ClientKey, aiomqtt.Client] = {}
        self._locks: dict[_ClientKey, asyncio.Lock] = {}

    async def send(self, endpoint: Endpoint, headers: Mapping[str, str], body: bytes) -> None:
        """Publish {metadata, body} to the endpoint's topic with its QoS."""
        parts = urlsplit(endpoint.uri)
        secure = parts.scheme.lower() == "mqtts"
        version = endpoint.notifier(MQTT_VERSION) or "mqtt5.0"
        key: _ClientKey = (
            parts.scheme.lower(),
            parts.hostname or "",
            parts.port or (8883 if secure else 1883),
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None,
            version,
        )
        metadata = {**headers, **dict(endpoint.receiver_info)}
        message = b'{"metadata":' + orjson.dumps(metadata) + b',"body":' + body + b"}"
        qos = int(endpoint.notifier(MQTT_QOS) or "0")
        topic = unquote(parts.path.lstrip("/"))
        try:
            client = await self._client(key)
            await client.publish(topic, message, qos=qos, timeout=self._timeout)
        except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
            await self._drop(key)
            raise DeliveryFailed(f"{key[1]}:{key[2]}/{topic}: {exc}") from exc

    async def _client(self, key: _ClientKey) -> aiomqtt.Client:
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            client = self._clients.get(key)
            if client is None:
                scheme, host, port, username, password, version = key
                client = aiomqtt.Client(
                    host,
                    port,
                    username=username,
                    password=password,
                    protocol=aiomqtt.ProtocolVersion.V5
                    if version == "mqtt5.0"
                    else aiomqtt.ProtocolVersion.V311,
                    tls_context=ssl.create_default_context() if scheme == "mqtts" else None,
                    timeout=self._timeout,
                )
                await client.__aenter__()
                self._clients[key] = client
            return client

    async def _drop(self, key: _ClientKey) -> None:
        client = self._clients.pop(key, None)
        if client is not None:
            await _close(client)

    async def close(self) -> None:
        """Disconnect from every broker."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await _close(client)


async def _close(client: aiomqtt.Client) -> None:
    try:
        await client.__aexit__(None, None, None)
    except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
        log.debug("Closing an MQTT connection: %s", exc)


def headers_for(
    tenant: str, accept: str, link: str | None, *, extra: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """The headers (or MQTT metadata) of a notification."""
    headers = {"Content-Type": accept}
    if link is not None:
        headers["Link"] = link
    if tenant:
        headers["NGSILD-Tenant"] = tenant
    headers.update({k: str(v) for k, v in (extra or {}).items()})
    return headers
