"""q and scopeQ in SQLite: the store selects exactly what the reference evaluator selects."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from burgo.ngsild.model import Entity
from burgo.ngsild.qlang import evaluate, evaluate_scope, parse_q, parse_scope_q
from burgo.ngsild.query import EntityQuery, EntitySelector, matches, parse_type_expression
from burgo.store.sqlite import SqliteStore
from burgo.store.sqlite.migrations import available_migrations
from burgo.store.sqlite.qindex import entity_rows
from burgo.store.sqlite.qsql import q_candidates, q_to_sql, scope_to_sql
from burgo.store.sqlite.queries import run_query
from tests.q_strategies import entity_lists, expand, q_entities, q_texts, scope_texts

T = TypeVar("T")


class _Store:
    """A real SqliteStore driven from synchronous tests, one new tenant per example."""

    def __init__(self, path: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.store = SqliteStore(path, synchronous="OFF")
        self.loop.run_until_complete(self.store.open())
        self.tenants = (f"t{n}" for n in itertools.count())

    def load(self, entities: list[Entity]) -> tuple[str, list[Entity]]:
        tenant = next(self.tenants)
        for entity in entities:
            self.loop.run_until_complete(self.store.create_entity(tenant, entity))
        stored = [
            self.loop.run_until_complete(self.store.get_entity(tenant, e.id)) for e in entities
        ]
        return tenant, [e for e in stored if e is not None]

    def run(self, job: Awaitable[T]) -> T:
        return self.loop.run_until_complete(job)

    def select(self, tenant: str, sql: str, params: list[Any]) -> set[str]:
        rows = self.store._read(
            lambda conn: conn.execute(
                "SELECT e.id FROM entities e WHERE e.tenant = ? AND " + sql, [tenant, *params]
            ).fetchall()
        )
        return {row[0] for row in rows}

    def close(self) -> None:
        self.loop.run_until_complete(self.store.close())
        self.loop.close()


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Store]:
    store = _Store(tmp_path_factory.mktemp("qsql") / "q.db")
    yield store
    store.close()


_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(entities=entity_lists(), texts=st.lists(q_texts(), min_size=1, max_size=4))
def test_sqlite_selects_what_the_reference_evaluator_selects(
    db: _Store, entities: list[Entity], texts: list[str]
) -> None:
    tenant, stored = db.load(entities)
    for text in texts:
        expr = parse_q(text, expand)
        expected = {e.id for e in stored if evaluate(expr, e)}
        # Indexed terms as lists of keys, then as look-ups of each row's own index entries.
        for probe in (lambda _: False, lambda _: True):
            sql, params = q_to_sql(expr, "e", probe)
            assert db.select(tenant, sql, params) == expected, text
        for candidates in q_candidates(expr):
            held = db.select(tenant, f"e.pk IN ({candidates.sql})", candidates.params)
            assert expected <= held, (text, candidates.term)


@_SETTINGS
@given(
    entities=entity_lists(),
    text=q_texts(),
    typed=st.booleans(),
    limit=st.integers(1, 4),
    offset=st.integers(0, 3),
)
def test_every_query_plan_gives_the_reference_page_and_count(
    db: _Store, entities: list[Entity], text: str, typed: bool, limit: int, offset: int
) -> None:
    """Driven by a q term's keys (rare matches) or by walking the type: the same answer."""
    tenant, stored = db.load(entities)
    selectors = (EntitySelector(types=parse_type_expression("Thing", expand)),)
    query = EntityQuery(
        selectors=selectors if typed else (),
        q=parse_q(text, expand),
        limit=limit,
        offset=offset,
        count=True,
    )
    expected = sorted(e.id for e in stored if matches(e, query))
    # few=0 never drives from q keys; 3 drives from a term with 0 to 2 index rows and looks up
    # the longer terms per candidate; a million drives whenever a term is indexed.
    for few in (0, 3, 1_000_000):
        result = db.store._read(
            lambda conn, few=few: run_query(conn, tenant, query, few=few)  # type: ignore[misc]
        )
        assert [e.id for e in result.entities] == expected[offset : offset + limit], (text, few)
        assert result.count == len(expected), (text, few)
        assert result.more == (offset + limit < len(expected)), (text, few)


@settings(max_examples=60, deadline=None)
@given(entities=entity_lists(), texts=st.lists(scope_texts(), min_size=1, max_size=4))
def test_sqlite_scope_q_selects_what_the_reference_selects(
    db: _Store, entities: list[Entity], texts: list[str]
) -> None:
    tenant, stored = db.load(entities)
    for text in texts:
        expr = parse_scope_q(text)
        sql, params = scope_to_sql(expr, "e")
        expected = {e.id for e in stored if evaluate_scope(expr, e.scope)}
        assert db.select(tenant, sql, params) == expected, text


# One write between queries: replace entity i by a new one, delete it, or create it again.
_writes = st.lists(
    st.tuples(st.sampled_from(["replace", "delete", "create"]), st.integers(0, 3)),
    min_size=1,
    max_size=4,
)


def _write(db: _Store, tenant: str, what: str, new: Entity) -> None:
    exists = db.run(db.store.tenant_exists(tenant))
    current = db.run(db.store.get_entity(tenant, new.id)) if exists else None
    if what == "create" or current is None:
        if current is None:
            db.run(db.store.create_entity(tenant, new))
        return
    if what == "delete":
        db.run(db.store.delete_entity(tenant, new.id))
        return
    db.run(db.store.modify_entity(tenant, new.id, lambda _: (new, None)))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tenants=st.lists(
        st.tuples(*(q_entities(i) for i in range(4))).map(list), min_size=2, max_size=3
    ),
    steps=st.lists(
        st.tuples(_writes, st.integers(0, 2), st.booleans(), st.data()), min_size=1, max_size=3
    ),
)
def test_the_value_index_follows_writes_in_every_tenant(
    db: _Store,
    tenants: list[list[Entity]],
    steps: list[tuple[list[tuple[str, int]], int, bool, st.DataObject]],
) -> None:
    """Entities with the same ids in several tenants, changed and deleted between queries."""
    names = [db.load(entities)[0] for entities in tenants]
    for writes, which, plain, data in steps:
        tenant = names[which % len(names)]
        for what, index in writes:
            _write(db, tenant, what, data.draw(q_entities(index)))
        indexed = {
            (pk, attr, kind, None if num is None else float(num), txt)
            for entity, pk in _with_keys(db, tenant)
            for pk, attr, kind, num, txt in entity_rows(pk, entity)
        }
        assert _index_rows(db, tenant) == indexed
        text = data.draw(q_texts(plain=plain))
        expr = parse_q(text, expand)
        sql, params = q_to_sql(expr, "e")
        for name in names:
            stored = _all(db, name) if db.run(db.store.tenant_exists(name)) else []
            expected = {e.id for e in stored if evaluate(expr, e)}
            assert db.select(name, sql, params) == expected, (name, text)


def _with_keys(db: _Store, tenant: str) -> list[tuple[Entity, int]]:
    rows = db.store._read(
        lambda conn: conn.execute(
            "SELECT id, pk FROM entities WHERE tenant = ?", (tenant,)
        ).fetchall()
    )
    found = [(db.run(db.store.get_entity(tenant, i)), pk) for i, pk in rows]
    return [(e, pk) for e, pk in found if e is not None]


def _all(db: _Store, tenant: str) -> list[Entity]:
    ids = db.store._read(
        lambda conn: [
            r[0] for r in conn.execute("SELECT id FROM entities WHERE tenant = ?", (tenant,))
        ]
    )
    found = [db.run(db.store.get_entity(tenant, i)) for i in ids]
    return [e for e in found if e is not None]


def _index_rows(db: _Store, tenant: str) -> set[tuple[Any, ...]]:
    rows = db.store._read(
        lambda conn: conn.execute(
            "SELECT v.entity_pk, v.attr, v.kind, v.num, v.txt FROM attr_values AS v "
            "JOIN entities AS e ON e.pk = v.entity_pk WHERE e.tenant = ?",
            (tenant,),
        ).fetchall()
    )
    return {
        (pk, attr, kind, None if num is None else float(num), txt)
        for pk, attr, kind, num, txt in rows
    }


_BACKFILL = [
    statement
    for statement in available_migrations()[1].sql.split(";")
    if "INSERT INTO attr_values" in statement
]


@settings(max_examples=60, deadline=None)
@given(entities=entity_lists())
def test_the_migration_backfills_what_the_change_hook_writes(
    db: _Store, entities: list[Entity]
) -> None:
    """Migration 0002 indexes entities written before it exactly as the hook indexes new ones."""
    tenant, _ = db.load(entities)
    by_hook = _index_rows(db, tenant)

    def backfill() -> None:
        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "DELETE FROM attr_values WHERE entity_pk IN "
                "(SELECT pk FROM entities WHERE tenant = ?)",
                (tenant,),
            )
            for statement in _BACKFILL:
                conn.execute(
                    statement.replace(
                        "FROM entities AS e", "FROM (SELECT * FROM entities WHERE tenant = ?) AS e"
                    ),
                    [tenant] * statement.count("FROM entities AS e"),
                )

        db.run(db.store._write(job))

    backfill()
    assert _index_rows(db, tenant) == by_hook
