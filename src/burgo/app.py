"""Builds the Burgo application: ``create_app(settings)`` wires every part; the lifespan starts
and stops the background work (store writer, HTTP client)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.telemetry import TelemetryConfig
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from burgo import __version__
from burgo.api import devices as devices_api
from burgo.api import discovery, entities, entity_operations, jsonld_contexts, system
from burgo.api import query as query_api
from burgo.api import subscriptions as subscriptions_api
from burgo.api import temporal as temporal_api
from burgo.api.context_resolver import ContextResolver
from burgo.api.http import problem_response
from burgo.api.metrics import Metrics, MetricsMiddleware
from burgo.api.services import Services
from burgo.clock import Clock, SystemClock
from burgo.config import Settings
from burgo.ingest.health import HealthWorker, IngestCollector
from burgo.ingest.mqtt import MqttListener
from burgo.ingest.mqtt_identity import default_client_id
from burgo.ingest.service import DeviceService
from burgo.ngsild.errors import (
    BadRequestData,
    InternalError,
    InvalidRequest,
    NgsiLdError,
    NotAcceptable,
    ResourceNotFound,
    ServiceUnavailable,
    UnsupportedMediaType,
)
from burgo.notify.worker import DeliverySettings, NotificationWorker
from burgo.store.base import Store
from burgo.store.temporal import HistoryRetention
from burgo.web import dashboard, docs, downloads
from burgo.worker import Worker

log = logging.getLogger(__name__)


# Burgo reports through Prometheus (/metrics) and its logs; FastAPI's native OpenTelemetry
# hooks would otherwise ask the global OpenTelemetry providers on every request whether they
# are configured (about 2% of a GET's CPU time).
_NO_OPENTELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}


def open_store(settings: Settings, clock: Clock) -> Store:
    """The store the settings name: the embedded SQLite file by default, PostgreSQL for a
    postgresql:// URL."""
    if settings.uses_postgresql:
        from burgo.store.postgres import PostgresStore

        return PostgresStore(settings.db, clock=clock, max_connections=settings.db_pool_size)
    from burgo.store.sqlite import SqliteStore

    return SqliteStore(settings.db, synchronous=settings.sqlite_synchronous, clock=clock)


def database_name(settings: Settings) -> str:
    """The database for logs and messages: the file, or the URL without its password."""
    if settings.uses_postgresql:
        from burgo.store.postgres.core import redacted

        return redacted(settings.db)
    return settings.db


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    clock: Clock | None = None,
    http_client: httpx.AsyncClient | None = None,
) -> FastAPI:
    """The Burgo ASGI application for ``settings``."""
    the_clock = clock if clock is not None else SystemClock()
    the_store = store if store is not None else open_store(settings, the_clock)
    client = http_client if http_client is not None else httpx.AsyncClient()
    resolver = ContextResolver(
        the_store,
        client,
        now=the_clock.now,
        timeout=settings.context_fetch_timeout,
        cache_size=settings.context_cache_size,
    )
    services = Services(settings=settings, store=the_store, contexts=resolver, clock=the_clock)
    metrics = Metrics(the_store.stats)
    workers: list[Worker] = []
    workers.append(
        NotificationWorker(
            the_store,
            resolver.resolve,
            the_clock,
            client,
            DeliverySettings(
                timeout=settings.notification_timeout,
                retry_min=settings.notification_retry_min,
                retry_max=settings.notification_retry_max,
                concurrency=settings.notification_concurrency,
            ),
        )
    )

    workers.append(
        HistoryRetention(
            the_store,
            the_clock,
            interval=settings.history_prune_interval,
            default_raw_days=settings.history_raw_days,
            claim=the_store.claim_job,
        )
    )

    devices = DeviceService(
        the_store,
        the_clock,
        resolve=resolver.resolve,
        missed_reports=settings.device_missed_reports,
        secrets={
            "tts": settings.lorawan_tts_secret,
            "chirpstack": settings.lorawan_chirpstack_secret,
        },
    )
    metrics.registry.register(IngestCollector(devices))
    workers.append(HealthWorker(devices, period=settings.device_health_period))
    if settings.mqtt_url:
        workers.append(
            MqttListener(
                devices,
                settings.mqtt_url,
                client_id=settings.mqtt_client_id or default_client_id(settings.db),
                topic=settings.mqtt_topic,
                shared_group=settings.mqtt_shared_group or None,
            )
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await the_store.open()
        started: list[Worker] = []
        log.info("Burgo %s serving %s", __version__, database_name(settings))
        try:
            for worker in workers:
                await worker.start()
                started.append(worker)
            yield
        finally:
            for worker in reversed(started):
                await worker.stop()
            await the_store.close()
            if http_client is None:
                await client.aclose()

    app = FastAPI(
        title="Burgo",
        version=__version__,
        description="Open IoT data platform for small and medium-sized cities: NGSI-LD broker.",
        lifespan=lifespan,
        telemetry=_NO_OPENTELEMETRY,
        docs_url=None,
        redoc_url=None,
    )
    app.state.services = services
    app.state.metrics = metrics
    app.state.workers = workers
    app.state.devices = devices
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    _install_error_handlers(app)
    # Routes are matched in order: the device routes take the most requests (every reading and
    # uplink), so they are tried first; no other route shares their /api/v1 paths.
    app.include_router(devices_api.router)
    app.include_router(query_api.router)
    app.include_router(entities.router)
    app.include_router(entity_operations.router)
    app.include_router(discovery.router)
    app.include_router(jsonld_contexts.router)
    app.include_router(subscriptions_api.router)
    app.include_router(temporal_api.router)
    app.include_router(docs.router)
    app.include_router(dashboard.router)
    app.include_router(downloads.router)
    app.mount("/static", StaticFiles(packages=[("burgo.web", "static")]), name="static")
    app.include_router(system.router)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    async def ngsi_ld_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, NgsiLdError)
        if isinstance(exc, InternalError | ServiceUnavailable):
            log.error("%s %s failed: %s", request.method, request.url.path, exc.detail)
        return problem_response(exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        mapped: NgsiLdError
        if exc.status_code == 404:
            mapped = ResourceNotFound(f"No resource at {request.url.path}")
        elif exc.status_code == 405:
            return problem_response(
                InvalidRequest(f"{request.method} is not allowed on {request.url.path}"),
                status=405,
                headers=exc.headers,
            )
        elif exc.status_code == 406:
            mapped = NotAcceptable(str(exc.detail))
        elif exc.status_code == 415:
            mapped = UnsupportedMediaType(str(exc.detail))
        else:
            return problem_response(InvalidRequest(str(exc.detail)), status=exc.status_code)
        return problem_response(mapped)

    async def validation_error(request: Request, exc: Exception) -> Response:
        return problem_response(BadRequestData(f"Invalid request: {exc}"))

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("Unexpected error in %s %s", request.method, request.url.path)
        return problem_response(InternalError("An unexpected error occurred; see the server log"))

    app.add_exception_handler(NgsiLdError, ngsi_ld_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected)
