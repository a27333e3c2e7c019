"""Versioned schema migrations, as every backend ships them: numbered .sql files in a package of
its own (``0001_initial.sql``, ``0002_queries.sql``, ...), applied in order, once each."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: its version number, name and SQL."""

    version: int
    name: str
    sql: str


def shipped_migrations(package: str) -> list[Migration]:
    """The migrations in ``package`` (e.g. ``burgo.store.sqlite.schema``), in order."""
    found = []
    for entry in resources.files(package).iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)
