"""``burgo devices``: register, list, show, remove and import devices on a running Burgo server.

The commands talk to the server's device API (so they work against a remote Burgo as well), at
the address of ``--url`` or, by default, the one the settings say the server listens on.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from burgo.config import DEFAULT_CONFIG_FILE, SettingsError, load_settings

app = typer.Typer(help="Register and look after devices (sensors).", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)

UrlOption = Annotated[
    str | None, typer.Option(help="Burgo server address (default: from the settings).")
]
TenantOption = Annotated[str | None, typer.Option(help="Tenant (NGSILD-Tenant).")]
ConfigOption = Annotated[Path, typer.Option(help="Settings file (TOML); missing is fine.")]
FIELDS = (
    "id",
    "name",
    "profile",
    "protocol",
    "devEUI",
    "entityId",
    "entityType",
    "context",
    "decoder",
    "interval",
)


def _base_url(url: str | None, config: Path) -> str:
    if url:
        return url.rstrip("/")
    try:
        settings = load_settings(config_path=config)
    except SettingsError as exc:
        errors.print(f"burgo: {exc}")
        raise typer.Exit(2) from exc
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host  # noqa: S104
    return f"http://{host}:{settings.port}"


def _client(url: str | None, tenant: str | None, config: Path) -> httpx.Client:
    headers = {"NGSILD-Tenant": tenant} if tenant else {}
    return httpx.Client(base_url=_base_url(url, config), headers=headers, timeout=30.0)


def _call(client: httpx.Client, method: str, path: str, body: Any = None) -> Any:
    """Send one request; exit 1 with the server's problem detail when it refuses."""
    try:
        response = client.request(method, path, json=body)
    except httpx.HTTPError as exc:
        errors.print(f"burgo: cannot reach Burgo at {client.base_url}: {exc}")
        raise typer.Exit(1) from exc
    if response.status_code >= 400:
        errors.print(f"burgo: {_problem(response)}")
        raise typer.Exit(1)
    return response.json() if response.content else None


def _problem(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    return f"{response.status_code} {detail or response.text}"


@app.command("add")
def add(
    device_id: Annotated[str, typer.Argument(help="Device id, e.g. aq-praca-01.")],
    profile: Annotated[
        str | None, typer.Option(help="Profile (see `burgo devices profiles`).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Human name.")] = None,
    protocol: Annotated[str, typer.Option(help="http, mqtt or lorawan.")] = "http",
    dev_eui: Annotated[str | None, typer.Option("--dev-eui", help="LoRaWAN DevEUI.")] = None,
    entity_id: Annotated[str | None, typer.Option(help="Target entity id.")] = None,
    entity_type: Annotated[str | None, typer.Option(help="Target entity type.")] = None,
    latitude: Annotated[float | None, typer.Option(help="Latitude (degrees).")] = None,
    longitude: Annotated[float | None, typer.Option(help="Longitude (degrees).")] = None,
    decoder: Annotated[str | None, typer.Option(help="Payload decoder (e.g. cayenne-lpp).")] = None,
    interval: Annotated[int | None, typer.Option(help="Expected seconds between reports.")] = None,
    url: UrlOption = None,
    tenant: TenantOption = None,
    config: ConfigOption = Path(DEFAULT_CONFIG_FILE),
) -> None:
    """Register one device and print its API key (shown this once)."""
    body: dict[str, Any] = {
        "id": device_id,
        "name": name,
        "profile": profile,
        "protocol": protocol,
        "devEUI": dev_eui,
        "entityId": entity_id,
        "entityType": entity_type,
        "decoder": decoder,
        "interval": interval,
    }
    if latitude is not None or longitude is not None:
        body["location"] = {"latitude": latitude, "longitude": longitude}
    with _client(url, tenant, config) as client:
        created = _call(
            client, "POST", "/api/v1/devices", {k: v for k, v in body.items() if v is not None}
        )
    console.print(f"Registered {created['id']} -> {created['entityId']}")
    console.print(f"API key (shown once, keep it): {created['apiKey']}")


@app.command("list")
def list_devices(
    url: UrlOption = None,
    tenant: TenantOption = None,
    config: ConfigOption = Path(DEFAULT_CONFIG_FILE),
) -> None:
    """List devices with their state, last report, battery and signal."""
    with _client(url, tenant, config) as client:
        found = _call(client, "GET", "/api/v1/devices")
    table = Table("id", "profile / type", "protocol", "state", "last seen", "battery", "rssi")
    for device in found:
        status = device.get("status", {})
        table.add_row(
            device["id"],
            device.get("profile") or device["entityType"],
            device["protocol"],
            status.get("state", "?"),
            status.get("lastSeen", "-"),
            _text(status.get("battery")),
            _text(status.get("rssi")),
        )
    console.print(table)
    console.print(f"{len(found)} devices")


def _text(value: Any) -> str:
    return "-" if value is None else str(value)


@app.command("show")
def show(
    device_id: str,
    url: UrlOption = None,
    tenant: TenantOption = None,
    config: ConfigOption = Path(DEFAULT_CONFIG_FILE),
) -> None:
    """Print one device (mapping, target entity, status) as JSON."""
    with _client(url, tenant, config) as client:
        found = _call(client, "GET", f"/api/v1/devices/{device_id}")
    console.print_json(orjson.dumps(found).decode())


@app.command("remove")
def remove(
    device_id: str,
    url: UrlOption = None,
    tenant: TenantOption = None,
    config: ConfigOption = Path(DEFAULT_CONFIG_FILE),
) -> None:
    """Remove a device (the data it sent stays in its target entity)."""
    with _client(url, tenant, config) as client:
        _call(client, "DELETE", f"/api/v1/devices/{device_id}")
    console.print(f"Removed {device_id}")


@app.command("profiles")
def profiles(url: UrlOption = None, config: ConfigOption = Path(DEFAULT_CONFIG_FILE)) -> None:
    """List the device profiles and the measurements each one maps."""
    with _client(url, None, config) as client:
        found = _call(client, "GET", "/api/v1/devices/profiles")
    table = Table("profile", "entity type", "measurements", "interval (s)")
    for profile in found:
        measurements = ", ".join(m["measurement"] for m in profile["mapping"])
        table.add_row(
            profile["name"], profile["entityType"], measurements, str(profile["interval"])
        )
    console.print(table)


def row_body(row: dict[str, str]) -> dict[str, Any]:
    """The registration body of one CSV row (empty cells left out; ``attr:NAME`` columns are
    static attributes; ``latitude``/``longitude`` the location)."""
    body: dict[str, Any] = {}
    for column in FIELDS:
        value = (row.get(column) or "").strip()
        if value:
            body[column] = int(value) if column == "interval" else value
    lat, lon = (row.get("latitude") or "").strip(), (row.get("longitude") or "").strip()
    if lat or lon:
        body["location"] = {"latitude": float(lat), "longitude": float(lon)}
    static = {
        key[len("attr:") :]: value.strip()
        for key, value in row.items()
        if key and key.startswith("attr:") and value and value.strip()
    }
    if static:
        body["staticAttributes"] = static
    return body


@app.command("import")
def import_csv(
    file: Annotated[Path, typer.Argument(help="CSV with a header row: id,profile,devEUI,...")],
    keys: Annotated[
        Path | None, typer.Option(help="Write the new API keys here (CSV: id,apiKey).")
    ] = None,
    url: UrlOption = None,
    tenant: TenantOption = None,
    config: ConfigOption = Path(DEFAULT_CONFIG_FILE),
) -> None:
    """Register every device of a CSV file, reporting each bad row with its line number."""
    try:
        text = file.read_text(encoding="utf-8-sig")
    except OSError as exc:
        errors.print(f"burgo: cannot read {file}: {exc}")
        raise typer.Exit(1) from exc
    rows = list(csv.DictReader(text.splitlines()))
    new_keys: list[tuple[str, str]] = []
    bad: list[str] = []
    with (
        _client(url, tenant, config) as client,
        Progress(
            TextColumn("Importing"), BarColumn(), MofNCompleteColumn(), console=errors
        ) as progress,
    ):
        task = progress.add_task("devices", total=len(rows))
        for line, row in enumerate(rows, start=2):
            try:
                body = row_body(row)
                response = client.post("/api/v1/devices", json=body)
            except ValueError as exc:
                bad.append(f"line {line}: {exc}")
            except httpx.HTTPError as exc:
                errors.print(f"burgo: cannot reach Burgo at {client.base_url}: {exc}")
                raise typer.Exit(1) from exc
            else:
                if response.status_code == 201:
                    created = response.json()
                    new_keys.append((created["id"], created["apiKey"]))
                else:
                    bad.append(f"line {line}: {_problem(response)}")
            progress.advance(task)
    if keys is not None:
        with keys.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(["id", "apiKey"])
            writer.writerows(new_keys)
    elif new_keys:
        table = Table("id", "API key (shown once)")
        for device_id, key in new_keys:
            table.add_row(device_id, key)
        console.print(table)
    for problem in bad:
        errors.print(problem)
    console.print(f"Imported {len(new_keys)} devices, {len(bad)} rows refused")
    if bad:
        raise typer.Exit(1)
