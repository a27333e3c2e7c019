"""The ``burgo`` command line."""

from __future__ import annotations

import asyncio
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
    workers: Annotated[
        int | None,
        typer.Option(help="Server processes sharing the port (more than 1 needs PostgreSQL)."),
    ] = None,
    log_level: Annotated[
        str | None, typer.Option(help="debug, info, warning, error or critical.")
    ] = None,
    config: ConfigOption = Path(DEFAULT_CONFIG_FILE),
) -> None:
    """Run the Burgo server (NGSI-LD API at /ngsi-ld/v1, metrics at /metrics)."""
    flags = {"host": host, "port": port, "db": db, "workers": workers, "log_level": log_level}
    settings = _settings(flags, config)
    if settings.workers > 1 and not settings.uses_postgresql:
        typer.echo(
            f"burgo: setting 'workers' is {settings.workers}, but {settings.db} is a SQLite "
            "file, which has one writer: run one worker on SQLite, or several on a "
            "postgresql:// database (see docs/scaling.md)",
            err=True,
        )
        raise typer.Exit(2)

    import uvicorn

    from burgo import serve as serving
    from burgo.logs import configure_logging

    configure_logging(settings.log_level, json_lines=settings.log_json)
    _prepare_database(settings)
    server: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "access_log": False,
        "loop": "uvloop",
        "http": "httptools",
        "server_header": False,
    }
    if settings.workers > 1:
        # Each worker process builds its own app from the same settings.
        serving.hand_down(settings)
        uvicorn.run(serving.WORKER_APP, factory=True, workers=settings.workers, **server)
        return
    app = serving.build_app(settings)
    uvicorn.run(app, **server)


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


@db_app.command("copy")
def db_copy(
    source: Annotated[Path, typer.Option("--from", help="The town's SQLite database file.")],
    target: Annotated[str, typer.Option("--to", help="The postgresql:// database to fill.")],
    force: Annotated[
        bool, typer.Option(help="Replace the data a non-empty target database holds.")
    ] = False,
) -> None:
    """Copy a town's data from its SQLite file into PostgreSQL, then compare the rows per table
    (exit 1 when a count differs)."""
    from burgo.config import is_postgresql_url

    if not is_postgresql_url(target):
        raise typer.BadParameter("must be a postgresql:// URL", param_hint="--to")
    try:
        counts = _run_copy(source, target, replace=force)
    except NgsiLdError as exc:
        typer.echo(f"burgo: {exc.detail}", err=True)
        raise typer.Exit(1) from exc
    if not all(count.matches for count in counts):
        typer.echo("burgo: the copy does not match its source (see the counts above)", err=True)
        raise typer.Exit(1)


def _run_copy(source: Path, target: str, *, replace: bool) -> list[Any]:
    """Migrate the target, copy the tables, then the history where both keep one, with a
    progress bar per table; print and return the counts."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from rich.table import Table

    from burgo.store import copy
    from burgo.store.postgres import PostgresStore
    from burgo.store.sqlite import SqliteStore

    console = Console(stderr=True)
    conn = copy.open_source(source)
    try:
        totals = copy.source_counts(conn)
        asyncio.run(PostgresStore(target).upgrade())
        columns = (TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, console=console) as bar:
            tasks = {name: bar.add_task(name, total=n) for name, n in totals.items()}
            counts = copy.copy_tables(
                conn,
                target,
                replace=replace,
                progress=lambda name, done: bar.update(tasks[name], completed=done),
            )

            async def history() -> Any:
                sqlite, postgres = SqliteStore(source), PostgresStore(target)
                await sqlite.open()
                await postgres.open()
                try:
                    if not await copy.keeps_history(postgres):
                        return None
                    tenants = await sqlite.list_tenants()
                    task = bar.add_task(copy.HISTORY, total=None)
                    return await copy.copy_history(
                        sqlite,
                        postgres,
                        tenants,
                        progress=lambda _, done: bar.update(task, completed=done),
                    )
                finally:
                    await postgres.close()
                    await sqlite.close()

            history_count = asyncio.run(history())
    finally:
        conn.close()
    if history_count is not None:
        counts.append(history_count)
    table = Table("table", "source", "target", "", title=f"{source} -> {_redacted(target)}")
    for count in counts:
        mark = "ok" if count.matches else "DIFFERS"
        table.add_row(count.table, str(count.source), str(count.target), mark)
    Console().print(table)
    if history_count is None:
        typer.echo("History not copied: the target database keeps no history (schema too old).")
    return counts


def _redacted(url: str) -> str:
    """A postgresql:// URL without its password."""
    from burgo.store.postgres.core import redacted

    return redacted(url)


def _history_store(db: str | None, config: Path) -> tuple[Settings, Any]:
    settings = _settings({"db": db}, config)
    if settings.uses_postgresql:
        from burgo.store.postgres import PostgresStore

        return settings, PostgresStore(settings.db, max_connections=2)
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

    try:
        policies = asyncio.run(run())
    except NgsiLdError as exc:
        typer.echo(f"burgo: {exc.detail}", err=True)
        raise typer.Exit(1) from exc
    for policy in policies:
        kind = policy.entity_type or "(all types)"
        typer.echo(f"tenant {policy.tenant or '(default)'}: {kind}: {policy.raw_days} days")


SIZES = ("full", "small")
DEMO_ENVIRONMENT = ("BURGO_MAP_TILE_URL", "BURGO_MAP_TILE_ATTRIBUTION")
"""The variables `burgo demo` takes from the environment: where the map's tiles come from."""


def _span(text: str) -> float:
    from burgo.sim.run import parse_span

    try:
        return parse_span(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


HistoryOption = Annotated[
    str, typer.Option(help="Past data to import first, e.g. 30d, 12h, 0 for none.")
]
SizeOption = Annotated[
    str, typer.Option(help="Town size: full (about 150 devices) or small (about 20).")
]
SeedOption = Annotated[int, typer.Option(help="Seed: the same seed gives the same town and data.")]
IntervalOption = Annotated[
    float, typer.Option(min=0, help="Seconds between live readings; 0 stops after the first.")
]


def _size(size: str) -> Any:
    if size not in SIZES:
        raise typer.BadParameter(f"{size!r}: choose full or small", param_hint="--size")
    return size


@app.command()
def simulate(
    target: Annotated[str, typer.Option(help="Address of the Burgo server to feed.")],
    history: HistoryOption = "30d",
    size: SizeOption = "full",
    seed: SeedOption = 42,
    interval: IntervalOption = 60.0,
    tenant: Annotated[str | None, typer.Option(help="Tenant (NGSILD-Tenant).")] = None,
    tts_secret: Annotated[
        str | None,
        typer.Option(
            envvar="BURGO_LORAWAN_TTS_SECRET",
            help="The server's The Things Stack webhook secret (else those devices use HTTP).",
        ),
    ] = None,
    chirpstack_secret: Annotated[
        str | None,
        typer.Option(
            envvar="BURGO_LORAWAN_CHIRPSTACK_SECRET",
            help="The server's ChirpStack webhook secret (else those devices use HTTP).",
        ),
    ] = None,
    mqtt: Annotated[
        str | None,
        typer.Option(help="MQTT broker the server listens to, e.g. mqtt://user:pw@host:1883."),
    ] = None,
    state: Annotated[
        Path | None, typer.Option(help="File keeping device keys and progress between runs.")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Parallel requests.")] = 2,
    wait: Annotated[
        float, typer.Option(min=0, help="Seconds to wait for the server to answer at first.")
    ] = 60.0,
) -> None:
    """Feed a Burgo server with a simulated town, through its device and LoRaWAN APIs."""
    from rich.console import Console

    from burgo.sim.feed import FeedError, Secrets
    from burgo.sim.run import Simulation, run

    sim = Simulation(
        target=target.rstrip("/"),
        seed=seed,
        size=_size(size),
        history=_span(history),
        interval=interval,
        tenant=tenant,
        secrets=Secrets(tts_secret, chirpstack_secret),
        mqtt_url=mqtt,
        state_path=state,
        workers=workers,
        wait=wait,
    )
    try:
        run(sim, Console())
    except FeedError as exc:
        typer.echo(f"burgo: {exc}", err=True)
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


@app.command()
def demo(
    directory: Annotated[
        Path, typer.Option("--dir", help="Folder of the demo's database and state.")
    ] = Path("burgo-demo"),
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port to listen on.")] = 8000,
    history: HistoryOption = "30d",
    size: SizeOption = "full",
    seed: SeedOption = 42,
    interval: IntervalOption = 60.0,
) -> None:
    """Run Burgo with a simulated town (Fundão, Portugal): its past month, then live data."""
    import os
    import subprocess
    import sys

    import uvicorn

    from burgo.app import create_app
    from burgo.logs import configure_logging
    from burgo.sim.run import demo_secrets

    _span(history)
    _size(size)
    directory.mkdir(parents=True, exist_ok=True)
    db = directory / "burgo.db"
    state = directory / "simulator.json"
    if not db.exists():
        state.unlink(missing_ok=True)  # a new database: register and import everything again
    secrets = demo_secrets(directory / "secrets.json")
    flags = {
        "host": host,
        "port": port,
        "db": str(db),
        "log_level": "warning",
        "sqlite_synchronous": "NORMAL",
        "lorawan_tts_secret": secrets.tts,
        "lorawan_chirpstack_secret": secrets.chirpstack,
    }
    # The demo ignores the environment and burgo.toml, but for the map's tiles.
    tiles = {k: v for k, v in os.environ.items() if k in DEMO_ENVIRONMENT}
    settings = load_settings(flags=flags, environ=tiles, config_path=None)
    configure_logging(settings.log_level, json_lines=settings.log_json)
    _prepare_database(settings)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
    url = f"http://{shown}:{port}"
    env = {
        **os.environ,
        "BURGO_LORAWAN_TTS_SECRET": secrets.tts or "",
        "BURGO_LORAWAN_CHIRPSTACK_SECRET": secrets.chirpstack or "",
    }
    command = [sys.executable, "-m", "burgo", "simulate", "--target", url, "--state", str(state)]
    command += ["--history", history, "--size", size, "--seed", str(seed)]
    command += ["--interval", str(interval)]
    typer.echo(f"Burgo demo town: open {url}/ in a browser (Ctrl+C stops). Data in {directory}/")
    feeder = subprocess.Popen(command, env=env)  # noqa: S603 - our own command line
    try:
        uvicorn.run(
            create_app(settings),
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            loop="uvloop",
            http="httptools",
            server_header=False,
        )
    finally:
        if feeder.poll() is None:
            feeder.terminate()
        try:
            feeder.wait(10)
        except subprocess.TimeoutExpired:
            feeder.kill()


@app.command()
def version() -> None:
    """Print Burgo's version."""
    typer.echo(__version__)


def main() -> None:
    """Entry point of the ``burgo`` console script."""
    app()
