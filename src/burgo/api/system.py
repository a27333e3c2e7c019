"""Operational endpoints: /version, /health and /metrics (Prometheus text)."""

from __future__ import annotations

import platform
import sqlite3

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from burgo import __version__
from burgo.api.http import json_response
from burgo.api.services import services

router = APIRouter(tags=["system"])


@router.get("/version", summary="Version of this Burgo")
async def version(request: Request) -> Response:
    """Burgo's version and what it runs on."""
    svc = services(request)
    return json_response(
        {
            "name": "Burgo",
            "version": __version__,
            "ngsiLd": "1.8.1",
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "backend": type(svc.store).__name__,
        }
    )


@router.get("/health", summary="Liveness")
async def health(request: Request) -> Response:
    """200 while the server runs and its store answers."""
    svc = services(request)
    await svc.store.count_entities("")
    return json_response({"status": "ok"})


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    """Request counts and latencies, store queue and database size, in Prometheus text format."""
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
