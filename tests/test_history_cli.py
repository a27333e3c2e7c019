"""``burgo history``: retention policies and pruning from the command line, on a real file."""

from __future__ import annotations

import asyncio
from pathlib import Path

from typer.testing import CliRunner

from burgo.cli import app
from burgo.ngsild.duration import DAY
from burgo.ngsild.model import Attribute, AttrKind
from burgo.ngsild.temporal import TemporalQuery, from_millis, to_millis
from burgo.store.sqlite import SqliteStore
from burgo.store.temporal import HistorySelection

ROOM = "https://uri.etsi.org/ngsi-ld/default-context/Room"
TEMPERATURE = "https://uri.etsi.org/ngsi-ld/default-context/temperature"


def _seed(path: Path) -> int:
    """Twenty days of daily readings ending today; returns today's start (epoch ms)."""
    from datetime import UTC, datetime

    today = to_millis(datetime.now(UTC))
    today -= today % DAY

    async def seed() -> None:
        store = SqliteStore(path)
        await store.open()
        points = tuple(
            Attribute(AttrKind.PROPERTY, n, observed_at=from_millis(today - n * DAY))
            for n in range(20)
        )
        await store.add_history("", "urn:ngsi-ld:Room:1", (ROOM,), {TEMPERATURE: points})
        await store.close()

    asyncio.run(seed())
    return today


def _remaining(path: Path) -> list[int]:
    async def read() -> list[int]:
        store = SqliteStore(path)
        await store.open()
        page = await store.query_history("", HistorySelection(), TemporalQuery(), max_instances=99)
        await store.close()
        return [i.attribute.value for i in page.entities[0].attrs[TEMPERATURE]]

    return asyncio.run(read())


def test_retention_and_prune(tmp_path: Path) -> None:
    db = tmp_path / "burgo.db"
    _seed(db)
    runner = CliRunner()
    none = tmp_path / "none.toml"
    base = ["--db", str(db), "--config", str(none)]
    listed = runner.invoke(app, ["history", "retention", *base])
    assert listed.exit_code == 0 and listed.output == ""
    set_policy = runner.invoke(
        app, ["history", "retention", "--type", "Room", "--days", "7", *base]
    )
    assert set_policy.exit_code == 0, set_policy.output
    assert "Room: 7 days" in set_policy.output
    pruned = runner.invoke(app, ["history", "prune", *base])
    assert pruned.exit_code == 0, pruned.output
    assert pruned.output.startswith("Removed 12 raw instances from 1 series")
    assert _remaining(db) == [7, 6, 5, 4, 3, 2, 1, 0]
    cleared = runner.invoke(app, ["history", "retention", "--type", "Room", "--clear", *base])
    assert cleared.exit_code == 0 and cleared.output == ""


def test_prune_needs_a_database(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["history", "prune", "--db", str(tmp_path / "no.db"),
                                      "--config", str(tmp_path / "none.toml")])  # fmt: skip
    assert result.exit_code == 1
    assert "no database" in result.output
