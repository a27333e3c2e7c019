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
        default="./burgo-data/burgo.db",
        description="Path of the SQLite database file, or a postgresql:// URL.",
    )
    db_pool_size: int = Field(
        default=10, ge=1, le=1000, description="PostgreSQL: most connections one worker opens."
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Server processes sharing the port; more than one needs PostgreSQL.",
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
    query_default_limit: int = Field(
        default=20, ge=1, description="Entities per page of a query when it gives no limit."
    )
    query_max_limit: int = Field(
        default=1000, ge=1, description="Largest limit a query may ask for; over it: 403."
    )
    temporal_max_instances: int = Field(
        default=10_000,
        ge=1,
        description="Most instances per attribute in one temporal answer; past it: 206 and a page.",
    )
    history_raw_days: int | None = Field(
        default=None,
        ge=1,
        description="Days raw history is kept where no retention policy says (unset: forever).",
    )
    history_prune_interval: float = Field(
        default=3600.0, ge=1, description="Seconds between runs of the history retention job."
    )

    notification_allowed_networks: list[str] = Field(
        default=["0.0.0.0/0", "::/0"],
        description="Networks (CIDRs, comma-separated) notification endpoints may be in.",
    )
    notification_timeout: float = Field(
        default=10.0, gt=0, le=300, description="Seconds to wait for an endpoint to answer."
    )
    notification_retry_min: float = Field(
        default=1.0, gt=0, description="First wait (seconds) before retrying a failed delivery."
    )
    notification_retry_max: float = Field(
        default=60.0, gt=0, description="Longest wait (seconds) between delivery retries."
    )
    notification_concurrency: int = Field(
        default=64, ge=1, description="Notifications in flight at once (to distinct subscriptions)."
    )

    @field_validator("notification_allowed_networks", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> Any:
        import ipaddress

        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list):
            return items
        try:
            return [str(ipaddress.ip_network(str(item).strip(), strict=False)) for item in items]
        except ValueError as exc:
            raise ValueError(f"not a network (CIDR): {exc}") from exc

    lorawan_tts_secret: str | None = Field(
        default=None,
        description="Secret The Things Stack sends in X-Burgo-Secret; unset disables its webhook.",
    )
    lorawan_chirpstack_secret: str | None = Field(
        default=None,
        description="Secret ChirpStack sends in X-Burgo-Secret; unset disables its integration.",
    )
    mqtt_url: str | None = Field(
        default=None,
        description="MQTT broker to take device readings from (mqtt://user:pass@host:1883).",
    )
    mqtt_topic: str = Field(
        default="burgo/{tenant}/{device}/attrs",
        description="Topic layout of device readings: one {device} segment, optional {tenant}.",
    )
    mqtt_shared_group: str | None = Field(
        default="burgo",
        description="MQTT 5 shared-subscription group ($share/<group>/...); empty: none.",
    )
    mqtt_client_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9._-]{1,100}$",
        description="MQTT client id, before its -<slot>; unset: burgo-<host>-<db hash>",
    )
    device_missed_reports: int = Field(
        default=3, ge=1, description="Expected reports a device may miss before it is offline."
    )
    device_health_period: float = Field(
        default=60.0, gt=0, description="Seconds between device health checks."
    )
    map_tile_url: str | None = Field(
        default=None,
        description="Map tile URL template ({z}/{x}/{y}) of the dashboard; unset: no tiles.",
    )
    map_tile_attribution: str | None = Field(
        default=None, description="Attribution text the dashboard map shows for its tiles."
    )

    @field_validator("mqtt_topic")
    @classmethod
    def _topic_layout(cls, value: str) -> str:
        segments = value.split("/")
        if segments.count("{device}") != 1 or segments.count("{tenant}") > 1:
            raise ValueError("needs one {device} segment and at most one {tenant} segment")
        if any(c in value for c in "+#$"):
            raise ValueError("cannot hold the MQTT wildcards + and # or '$'")
        return value

    @field_validator("mqtt_client_id", mode="before")
    @classmethod
    def _client_id_or_default(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("db")
    @classmethod
    def _db_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name a database file")
        return value

    @property
    def uses_postgresql(self) -> bool:
        """Whether ``db`` names a PostgreSQL database rather than a SQLite file."""
        return is_postgresql_url(self.db)


def is_postgresql_url(db: str) -> bool:
    """Whether a ``db`` setting is a postgresql:// (or postgres://) URL."""
    return db.startswith(("postgresql://", "postgres://"))


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
