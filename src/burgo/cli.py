"""The ``burgo`` command line."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from burgo import __version__
from burgo.config import DEFAULT_CONFIG_FILE, Settings, SettingsError, load_settings
from burgo.ingest import cli as devices_cli
from burgo.ngsild.errors import NgsiLdError

app = typer.Typer(
    help="Burgo: an open IoT data platform for small and medium-sized cities.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Look after the database.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(devices_cli.app, name="devices")
history_app = typer.Typer(help="Look after the history (temporal API).", no_args_is_help=True)
app.add_typer(history_app, name="history")

ConfigOption = Annotated[Path, typer.Option(help="Settings file (TOML); missing is fine.")]
DbOption = Annotated[str | None, typer.Option(help="SQLite database file, or a postgresql:// URL.")]


def _settings(flags: Mapping[str, Any], config: Path) -> Settings:
    """The settings, or exit 2 with a message naming the bad key."""
    try:
        return load_settings(flags=flags, config_path=config)
    except SettingsError as exc:
        typer.echo(f"burgo: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port to listen on.")] = None,
    db: DbOption = None,
    log_level: Annotated[
        str | None, typer.Option(help="debug, info, warning, error or critical.")
    ] = None,
    config: ConfigOption = Path(DEFAULT_CONFIG_FILE),
) -> None:
    """Run the Burgo server (NGSI-LD API at /ngsi-ld/v1, metrics at /metrics)."""
    settings = _settings({"host": host, "port": port, "db": db, "log_level": log_level}, config)

    import uvicorn

    from burgo.app import create_app
    from burgo.logs import configure_logging

    configure_logging(settings.log_level, json_lines=settings.log_json)
    _prepare_database(settings)
    app = create_app(settings)
    _tune_garbage_collector()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        loop="uvloop",
        http="httptools",
        server_header=False,
    )


def _tune_garbage_collector() -> None:
    """Leave what start-up built (modules, the app) out of every later garbage collection."""
    # It lives as long as the process; big batches allocate enough to trigger full collections,
    # which would walk all of it again each time (bench/RESULTS.md, batch operations).
    gc.freeze()


def _upgrade(settings: Settings) -> tuple[int, list[int]]:
    """Create or upgrade the schema of the database the settings name, or exit 1 saying why."""
    from burgo.store.postgres import PostgresStore
    from burgo.store.sqlite import SqliteStore

    store = PostgresStore(settings.db) if settings.uses_postgresql else SqliteStore(settings.db)
    try:
        return asyncio.run(store.upgrade())
    except NgsiLdError as exc:
        typer.echo(f"burgo: {exc.detail}", err=True)
        raise typer.Exit(1) from exc


def _prepare_database(settings: Settings) -> None:
    """Create or upgrade the schema before serving, or exit 1 with a one-line reason."""
    from burgo.app import database_name

    version, applied = _upgrade(settings)
    if applied:
        steps = ", ".join(map(str, applied))
        logging.getLogger("burgo").info(
            "Database %s at schema version %d (applied %s)", database_name(settings), version, steps
        )


@db_app.command("migrate")
def db_migrate(db: DbOption = None, config: ConfigOption = Path(DEFAULT_CONFIG_FILE)) -> None:
    """Upgrade an existing database's schema in place and print its version."""
    settings = _settings({"db": db}, config)
    if not settings.uses_postgresql and not Path(settings.db).is_file():
        typer.echo(f"burgo: no database at {settings.db}", err=True)
        raise typer.Exit(1)
    from burgo.app import database_name

    version, applied = _upgrade(settings)
    steps = ", ".join(map(str, applied))
    done = f"upgraded (applied {steps})" if applied else "already up to date"
    typer.echo(f"{database_name(settings)}: schema version {version}, {done}")


def _history_store(db: str | None, config: Path) -> tuple[Settings, Any]:
    settings = _settings({"db": db}, config)
    if not Path(settings.db).is_file():
        typer.echo(f"burgo: no database at {settings.db}", err=True)
        raise typer.Exit(1)
    from burgo.store.sqlite import SqliteStore

    return settings, SqliteStore(settings.db)


@history_app.command("prune")
def history_prune(db: DbOption = None, config: ConfigOption = Path(DEFAULT_CONFIG_FILE)) -> None:
    """Remove raw history older than the retention policies allow (hourly and daily rollups
    stay), and print what was removed and what the history takes."""
    settings, store = _history_store(db, config)
    from datetime import UTC, datetime

    async def prune() -> tuple[Any, dict[str, float]]:
        await store.open()
        try:
            now = int(datetime.now(UTC).timestamp() * 1000)
            return await store.prune_history(now, settings.history_raw_days), store.stats()
        finally:
            await store.close()

    try:
        report, stats = asyncio.run(prune())
    except NgsiLdError as exc:
        typer.echo(f"burgo: {exc.detail}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(
        f"Removed {report.instances} raw instances from {report.series} series; history now "
        f"{int(stats['burgo_history_instances'])} instances, "
        f"{int(stats['burgo_history_bytes']) // 1024} KiB"
    )


@history_app.command("retention")
def history_retention(
    days: Annotated[int | None, typer.Option(min=1, help="Days of raw history to keep.")] = None,
    tenant: Annotated[str, typer.Option(help="Tenant (default: the default tenant).")] = "",
    entity_type: Annotated[
        str, typer.Option("--type", help="Entity type (short name or IRI); omit for all types.")
    ] = "",
    clear: Annotated[bool, typer.Option(help="Remove this policy.")] = False,
    db: DbOption = None,
    config: ConfigOption = Path(DEFAULT_CONFIG_FILE),
) -> None:
    """Set (``--days``), remove (``--clear``) or, with neither, list retention policies."""
    _, store = _history_store(db, config)
    from burgo.ngsild.context import core_context

    iri = core_context().expand(entity_type) if entity_type else ""

    async def run() -> list[Any]:
        await store.open()
        try:
            if days is not None or clear:
                await store.set_retention(tenant, iri, None if clear else days)
            return list(await store.list_retention())
        finally:
            await store.close()

    for policy in asyncio.run(run()):
        kind = policy.entity_type or "(all types)"
        typer.echo(f"tenant {policy.tenant or '(default)'}: {kind}: {policy.raw_days} days")


@app.command()
def version() -> None:
    """Print Burgo's version."""
    typer.echo(__version__)


def main() -> None:
    """Entry point of the ``burgo`` console script."""
    app()
