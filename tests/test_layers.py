"""Imports go downward only (DESIGN.md, "Layers"), checked on the source with ``ast``."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "burgo"
ANYTHING = frozenset({"*"})
# Storage protocols (burgo.store.base and the per-concern protocol modules beside it), never a
# backend: see BACKENDS.
PROTOCOL_USERS = frozenset(
    {"burgo.ngsild", "burgo.store", "burgo.config", "burgo.clock", "burgo.worker"}
)

# What each part of Burgo may import of Burgo's own modules, besides itself. "burgo" alone is the
# root package (its __version__), never a licence for everything below it.
LAYERS: dict[str, frozenset[str]] = {
    "burgo": frozenset(),
    "burgo.data": frozenset(),
    "burgo.clock": frozenset(),
    "burgo.worker": frozenset(),
    "burgo.config": frozenset(),
    "burgo.logs": frozenset(),
    "burgo.ngsild": frozenset(),
    "burgo.store": frozenset({"burgo.ngsild", "burgo.clock"}),
    "burgo.api": PROTOCOL_USERS | {ROOT},
    "burgo.notify": PROTOCOL_USERS,
    "burgo.ingest": PROTOCOL_USERS,
    "burgo.rules": PROTOCOL_USERS,
    "burgo.app": ANYTHING,
    "burgo.cli": ANYTHING,
    "burgo.serve": ANYTHING,
    "burgo.__main__": ANYTHING,
}
# The top of the stack uses the layers below, but storage only through the protocol.
TOP = frozenset({"burgo.verticals", "burgo.kpi", "burgo.web", "burgo.sim"})
BACKENDS = ("burgo.store.sqlite", "burgo.store.postgres")


def module_name(path: Path) -> str:
    """The dotted name of the module in ``path`` under src/."""
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    """Every module of the burgo package, by dotted name."""
    return {module_name(path): path for path in sorted((SRC / ROOT).rglob("*.py"))}


def within(name: str, prefix: str) -> bool:
    """Whether module ``name`` is ``prefix`` or lies below it (the root package only itself)."""
    return name == prefix or (prefix != ROOT and name.startswith(prefix + "."))


def layer_of(module: str) -> str | None:
    """The most specific layer ``module`` belongs to."""
    owners = [layer for layer in [*LAYERS, *TOP] if within(module, layer)]
    return max(owners, key=len) if owners else None


def imported(module: str, source: str, is_package: bool, known: set[str]) -> Iterator[str]:
    """The burgo modules ``source`` imports: import statements (relative ones resolved, under
    TYPE_CHECKING too) and importlib.import_module / __import__ calls with a literal name."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield candidate if candidate in known else base
        elif isinstance(node, ast.Call) and _is_dynamic_import(node.func) and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield first.value


def _is_dynamic_import(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in {"import_module", "__import__"}
    return isinstance(func, ast.Attribute) and func.attr == "import_module"


def allowed(layer: str, target: str) -> bool:
    """Whether code of ``layer`` may import the burgo module ``target``."""
    if within(target, layer):
        return True
    permitted = LAYERS.get(layer, frozenset())
    if permitted != ANYTHING and any(within(target, backend) for backend in BACKENDS):
        return False
    if layer in TOP:
        return True
    return permitted == ANYTHING or any(within(target, p) for p in permitted)


def violations(module: str, source: str, is_package: bool, known: set[str]) -> list[str]:
    """``module -> target`` for each import of ``source`` that goes against the layers."""
    layer = layer_of(module)
    if layer is None:
        return [f"{module}: no layer rule; add it to LAYERS in tests/test_layers.py"]
    return [
        f"{module} -> {target}"
        for target in imported(module, source, is_package, known)
        if (target == ROOT or target.startswith(ROOT + ".")) and not allowed(layer, target)
    ]


def check(module: str, source: str, is_package: bool = False) -> list[str]:
    """Violations of a module's source, as if it were part of the package today."""
    return violations(module, source, is_package, set(modules()) | {module})


def test_the_walk_finds_every_layer() -> None:
    found = modules()
    assert {"burgo", "burgo.ngsild.model", "burgo.store.base", "burgo.store.sqlite.store"} <= set(
        found
    )
    assert {"burgo.api.entities", "burgo.config", "burgo.cli", "burgo.app"} <= set(found)


def test_imports_go_downward_only() -> None:
    known = set(modules())
    problems = [
        problem
        for name, path in modules().items()
        for problem in violations(
            name, path.read_text(encoding="utf-8"), path.name == "__init__.py", known
        )
    ]
    assert problems == []


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("burgo.ngsild.model", "from burgo.store.base import Store"),
        ("burgo.ngsild.model", "from burgo import __version__"),
        ("burgo.ngsild.model", "from ..config import Settings"),
        ("burgo.store.base", "import burgo.api.http"),
        ("burgo.store.sqlite.store", "from burgo.config import Settings"),
        ("burgo.api.entities", "from burgo.store.sqlite import SqliteStore"),
        ("burgo.api.entities", "from burgo.store import sqlite"),
        ("burgo.api.entities", "from ..store.sqlite.store import translate_error"),
        ("burgo.api.entities", "import burgo.app"),
        ("burgo.api.entities", "from burgo.logs import configure_logging"),
        ("burgo.api.entities", "importlib.import_module('burgo.store.sqlite')"),
        (
            "burgo.api.entities",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from burgo.cli import app",
        ),
        ("burgo.config", "from burgo.clock import Clock"),
        ("burgo.web.pages", "from burgo.store.sqlite import SqliteStore"),
    ],
)
def test_a_forbidden_import_is_caught(module: str, source: str) -> None:
    assert len(check(module, source)) == 1


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("burgo.ngsild.parse", "from burgo.ngsild.model import Entity\nfrom . import times"),
        ("burgo.store.sqlite.store", "from burgo.ngsild.errors import InternalError"),
        ("burgo.store.sqlite.store", "from ..base import Store\nfrom .writer import SqliteWriter"),
        ("burgo.api.entities", "from burgo.store.base import Store\nfrom burgo import __version__"),
        ("burgo.api.entities", "from burgo.store import base\nfrom burgo.clock import Clock"),
        ("burgo.api.subscriptions", "from burgo.store.subscriptions import SubscriptionStore"),
        ("burgo.api.entities", "from burgo.config import Settings\nfrom .http import JSON"),
        ("burgo.app", "from burgo.store.sqlite import SqliteStore"),
        ("burgo.web.pages", "from burgo.api.http import JSON\nfrom burgo.kpi import report"),
        ("burgo.ngsild.parse", "import json\nfrom pydantic import BaseModel"),
    ],
)
def test_an_allowed_import_passes(module: str, source: str) -> None:
    assert check(module, source) == []


def test_a_new_top_level_module_needs_a_rule() -> None:
    assert check("burgo.gadgets", "import os") == [
        "burgo.gadgets: no layer rule; add it to LAYERS in tests/test_layers.py"
    ]
