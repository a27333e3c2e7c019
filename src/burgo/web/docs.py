"""The interactive API documentation (/docs), served with no CDN, and the API index."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import HTMLResponse

from burgo import __version__

SWAGGER_UI = "/static/vendor/swagger-ui-5.35.0"

router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def docs(request: Request) -> HTMLResponse:
    """Swagger UI over Burgo's OpenAPI document, from the assets shipped in the package."""
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url,
        title="Burgo API",
        swagger_js_url=f"{SWAGGER_UI}/swagger-ui-bundle.js",
        swagger_css_url=f"{SWAGGER_UI}/swagger-ui.css",
        swagger_favicon_url=f"{SWAGGER_UI}/favicon-32x32.png",
    )


def api_index() -> dict[str, str]:
    """Where to go from here: the API, its documentation, health and metrics (the front page
    for clients that do not ask for HTML)."""
    return {
        "name": "Burgo",
        "version": __version__,
        "ngsi-ld": "/ngsi-ld/v1/entities",
        "dashboard": "/",
        "docs": "/docs",
        "openapi": "/openapi.json",
        "health": "/health",
        "metrics": "/metrics",
    }
