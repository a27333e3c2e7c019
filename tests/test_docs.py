"""The documentation keeps up with the code: every setting and every route is documented."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from fastapi import APIRouter
from starlette.routing import BaseRoute, Mount, Route
from typer.testing import CliRunner

from burgo.app import create_app
from burgo.cli import app as cli_app
from burgo.config import ENV_PREFIX, Settings

DOCS = Path(__file__).resolve().parents[1] / "docs"
FASTAPI_OWN = {"/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"}


def undocumented_settings(text: str, names: Iterable[str]) -> list[str]:
    """The settings whose name (in backquotes) or BURGO_ variable is missing from ``text``."""
    return [
        name
        for name in names
        if f"`{name}`" not in text or f"`{ENV_PREFIX}{name.upper()}`" not in text
    ]


def operations(routes: Iterable[BaseRoute], prefix: str = "") -> list[str]:
    """``METHOD /path`` for every route of the app, FastAPI's own documentation pages excluded.

    Walks mounts and included routers too (recent FastAPI keeps included routers as one entry).
    """
    found = []
    for route in routes:
        if isinstance(route, Route):
            path = prefix + route.path_format
            if path not in FASTAPI_OWN:
                found += [f"{m} {path}" for m in sorted(route.methods or ()) if m != "HEAD"]
        elif isinstance(route, Mount):
            found += operations(route.routes, prefix + route.path)
        elif hasattr(route, "original_router"):
            inner = prefix + getattr(getattr(route, "include_context", None), "prefix", "")
            found += operations(route.original_router.routes, inner)
    return found


def undocumented_operations(text: str, ops: Iterable[str]) -> list[str]:
    """The operations not written as ``METHOD /path`` anywhere in ``text``."""
    return [op for op in ops if op not in text]


def test_every_setting_is_in_configuration_md() -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert undocumented_settings(text, Settings.model_fields) == []


def test_every_serve_flag_is_in_configuration_md() -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    shown = CliRunner().invoke(cli_app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    flags = set(re.findall(r"(--[a-z][a-z-]*)", shown.output)) - {"--help"}
    assert "--port" in flags
    assert sorted(flag for flag in flags if f"`{flag}" not in text) == []


def test_every_route_is_in_api_md(settings: Settings) -> None:
    text = (DOCS / "api.md").read_text(encoding="utf-8")
    ops = operations(create_app(settings).routes)
    assert "POST /ngsi-ld/v1/entities" in ops
    assert undocumented_operations(text, ops) == []


def test_the_route_walk_sees_every_operation_of_the_openapi_schema(settings: Settings) -> None:
    app = create_app(settings)
    ops = set(operations(app.routes))
    in_schema = {
        f"{method.upper()} {path}"
        for path, item in app.openapi()["paths"].items()
        for method in item
    }
    assert in_schema - ops == set()


def test_a_new_setting_without_docs_is_caught() -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert undocumented_settings(text, ["port", "brand_new_setting"]) == ["brand_new_setting"]


def test_a_new_route_without_docs_is_caught(settings: Settings) -> None:
    app = create_app(settings)
    router = APIRouter(prefix="/ngsi-ld/v1")

    @router.get("/brandNewThings/{thing_id}")
    async def brand_new() -> None:  # pragma: no cover - never called
        """A route nobody documented."""

    app.include_router(router)
    text = (DOCS / "api.md").read_text(encoding="utf-8")
    missing = undocumented_operations(text, operations(app.routes))
    assert missing == ["GET /ngsi-ld/v1/brandNewThings/{thing_id}"]


def test_fastapi_pages_are_left_out(settings: Settings) -> None:
    ops = operations(create_app(settings).routes)
    assert not [op for op in ops if op.split()[1] in FASTAPI_OWN]
