"""``burgo simulate``: register a town on a Burgo server, import its past, then keep it live.

The feeder's keys and how far it has fed are kept in a small state file, so a restarted
simulation reuses its devices and fills only the gap since it stopped.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from burgo.sim.feed import Counters, Feeder, FeedError, Secrets
from burgo.sim.town import FUNDAO, Size, build_town

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_span(text: str) -> float:
    """Seconds in a span such as ``30d``, ``12h``, ``90m``, ``45s`` or ``0``."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a span such as 30d, 12h, 90m or 0")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass(slots=True)
class Simulation:
    """What to simulate and where to send it."""

    target: str
    seed: int = 42
    size: Size = "full"
    history: float = 30 * 86400.0
    interval: float = 60.0
    tenant: str | None = None
    secrets: Secrets = field(default_factory=Secrets)
    mqtt_url: str | None = None
    state_path: Path | None = None
    workers: int = 2
    latitude: float = FUNDAO[0]
    longitude: float = FUNDAO[1]
    name: str = "Fundão"
    wait: float = 60.0
    """Seconds to wait for the server to answer before giving up."""


def _load_state(path: Path | None) -> dict[str, Any]:
    if path is None or not path.exists():
        return {}
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _save_state(path: Path | None, state: dict[str, Any]) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(state, indent=1), encoding="utf-8")
    partial.chmod(0o600)  # it holds the devices' API keys
    partial.replace(path)


def demo_secrets(path: Path) -> Secrets:
    """The demo's LoRaWAN webhook secrets: made once at random and kept in ``path``."""
    found = _load_state(path)
    if not (found.get("tts") and found.get("chirpstack")):
        found = {"tts": secrets.token_urlsafe(24), "chirpstack": secrets.token_urlsafe(24)}
        _save_state(path, found)
    return Secrets(str(found["tts"]), str(found["chirpstack"]))


def wait_for_server(client: httpx.Client, seconds: float) -> None:
    """Return once the server answers ``/version``; FeedError after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if client.get("/version").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise FeedError(f"No Burgo server answered at {client.base_url} in {seconds:.0f} s")
        time.sleep(0.2)


def _bar(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def run(
    sim: Simulation,
    console: Console,
    stop: threading.Event | None = None,
    ticks: int | None = None,
) -> Counters:
    """Register, backfill, then send live readings every ``sim.interval`` seconds until
    ``stop`` is set (or ``ticks`` live rounds are sent)."""
    stop = stop or threading.Event()
    state = _load_state(sim.state_path)
    if state.get("town") != [sim.seed, sim.size, sim.target, sim.tenant]:
        state = {"town": [sim.seed, sim.size, sim.target, sim.tenant]}
    town = build_town(sim.seed, sim.size, sim.latitude, sim.longitude, sim.name)
    now = time.time()
    with httpx.Client(base_url=sim.target, timeout=120.0) as client:
        wait_for_server(client, sim.wait)
        feeder = Feeder(
            client,
            town,
            anchor=now,
            secrets=sim.secrets,
            mqtt_url=sim.mqtt_url,
            tenant=sim.tenant,
            keys=state.get("keys"),
            workers=sim.workers,
        )
        began = time.monotonic()
        with _bar(console) as bar:
            task = bar.add_task("Registering devices", total=len(town.devices))
            keys = feeder.register(lambda n: bar.advance(task, n))
        state["keys"] = keys
        _save_state(sim.state_path, state)
        resume = state.get("fed_until")
        starts = feeder.starts(now - sim.history, float(resume) if resume else None)
        size = feeder.history_size(starts, now)
        if size:
            days = (now - min(starts.values())) / 86400
            with _bar(console) as bar:
                task = bar.add_task(f"Importing {days:.1f} days of history", total=size)
                feeder.backfill(starts, now, lambda n: bar.advance(task, n))
        sent = feeder.tick(now)
        state["fed_until"] = now
        _save_state(sim.state_path, state)
        took = time.monotonic() - began
        paths = ", ".join(f"{n} {p}" for p, n in sorted(feeder.counters.sent.items()))
        console.print(
            f"[green]Ready[/]: {town.name}, {len(town.devices)} devices, "
            f"{feeder.counters.history_instances:,} past values imported, {sent} live readings "
            f"sent ({paths}) in {took:.1f} s."
        )
        if sim.interval <= 0:
            return feeder.counters
        console.print(f"Sending live readings every {sim.interval:g} s (Ctrl+C stops).")
        done = 0
        while (ticks is None or done < ticks) and not stop.wait(sim.interval):
            moment = time.time()
            feeder.tick(moment)
            state["fed_until"] = moment
            _save_state(sim.state_path, state)
            done += 1
        return feeder.counters
