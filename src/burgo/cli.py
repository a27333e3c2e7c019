"""The ``burgo`` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from burgo import __version__
from burgo.config import DEFAULT_CONFIG_FILE, SettingsError, load_settings

app = typer.Typer(
    help="Burgo: an open IoT data platform for small and medium-sized cities.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port to listen on.")] = None,
    db: Annotated[str | None, typer.Option(help="SQLite database file.")] = None,
    log_level: Annotated[
        str | None, typer.Option(help="debug, info, warning, error or critical.")
    ] = None,
    config: Annotated[Path, typer.Option(help="Settings file (TOML); missing is fine.")] = Path(
        DEFAULT_CONFIG_FILE
    ),
) -> None:
    """Run the Burgo server (NGSI-LD API at /ngsi-ld/v1, metrics at /metrics)."""
    try:
        settings = load_settings(
            flags={"host": host, "port": port, "db": db, "log_level": log_level},
            config_path=config,
        )
    except SettingsError as exc:
        typer.echo(f"burgo: {exc}", err=True)
        raise typer.Exit(2) from exc

    import uvicorn

    from burgo.app import create_app
    from burgo.logs import configure_logging

    configure_logging(settings.log_level, json_lines=settings.log_json)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        loop="uvloop",
        http="httptools",
        server_header=False,
    )


@app.command()
def version() -> None:
    """Print Burgo's version."""
    typer.echo(__version__)


def main() -> None:
    """Entry point of the ``burgo`` console script."""
    app()
