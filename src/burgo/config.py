"""Settings, built once: defaults < burgo.toml < BURGO_* environment < command-line flags.

>>> settings = load_settings(flags={"port": 8080}, environ={}, config_path=None)
>>> settings.port
8080
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ENV_PREFIX = "BURGO_"
DEFAULT_CONFIG_FILE = "burgo.toml"


class SettingsError(Exception):
    """A setting has a bad value; the message names the key and where it came from."""


class Settings(BaseModel):
    """Every setting of a Burgo server, typed, with its default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(default="127.0.0.1", description="Address the HTTP server listens on.")
    port: int = Field(default=8000, ge=1, le=65535, description="TCP port of the HTTP server.")
    db: str = Field(
        default="./burgo-data/burgo.db", description="Path of the SQLite database file."
    )
    log_level: Literal["debug", "info", "warning", "error", "critical"] = Field(
        default="info", description="Least severe log level written."
    )
    log_json: bool = Field(default=False, description="Write logs as JSON lines.")
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Largest request body accepted (bytes); over it: 413.",
    )
    context_fetch_timeout: float = Field(
        default=5.0, gt=0, le=120, description="Seconds to wait for a remote JSON-LD @context."
    )
    context_cache_size: int = Field(
        default=256, ge=1, description="Remote @contexts kept processed in memory."
    )
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        default="FULL",
        description="SQLite durability: FULL survives power loss; NORMAL survives crashes only.",
    )
    public_url: str | None = Field(
        default=None, description="Base URL clients reach Burgo at (for served @context URLs)."
    )

    @field_validator("db")
    @classmethod
    def _db_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name a database file")
        return value


def _env_values(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, raw in environ.items():
        if key.startswith(ENV_PREFIX):
            name = key[len(ENV_PREFIX) :].lower()
            if name not in Settings.model_fields:
                raise SettingsError(
                    f"Unknown setting {key} in the environment; known: "
                    + ", ".join(ENV_PREFIX + field.upper() for field in Settings.model_fields)
                )
            values[name] = raw
    return values


def _file_values(path: Path | None) -> dict[str, Any]:
    if path is None or not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"Cannot read {path}: {exc}") from exc
    section = data.get("burgo", data)
    if not isinstance(section, dict):
        raise SettingsError(f"{path}: [burgo] must be a table")
    stray = [key for key in data if key != "burgo"] if section is not data else []
    if stray:
        raise SettingsError(
            f"Invalid settings: setting '{stray[0]}' from {path} is outside the [burgo] table"
        )
    return {key.replace("-", "_"): value for key, value in section.items()}


def load_settings(
    *,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    config_path: str | Path | None = DEFAULT_CONFIG_FILE,
) -> Settings:
    """Merge every source of settings and validate them, naming the key of any bad value."""
    sources: list[tuple[str, dict[str, Any]]] = [
        (str(config_path), _file_values(Path(config_path) if config_path else None)),
        ("environment", _env_values(os.environ if environ is None else environ)),
        ("command line", {k: v for k, v in (flags or {}).items() if v is not None}),
    ]
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for where, values in sources:
        for key, value in values.items():
            merged[key] = value
            origin[key] = where
    try:
        return Settings(**merged)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            key = str(error["loc"][0]) if error["loc"] else "?"
            source = origin.get(key, "defaults")
            env_hint = f" ({ENV_PREFIX}{key.upper()})" if source == "environment" else ""
            problems.append(f"setting '{key}'{env_hint} from {source}: {error['msg']}")
        raise SettingsError("Invalid settings: " + "; ".join(problems)) from exc
