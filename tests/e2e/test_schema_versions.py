"""The migration histories themselves, and homes behind, at and ahead of this release.

- The baseline revision makes exactly the schema the previous release's
  ``create_all`` made (compared with the fixture databases that release made).
- A new home is made at head, on SQLite and PostgreSQL, and head is what the
  SQLModel tables say (Alembic's own comparison finds nothing to add).
- A home one revision behind is refused and upgraded by that one revision.
- A home at a revision this release does not know (a newer release upgraded
  it) is refused on open and by ``db upgrade``, and nothing changes.
- An upgrade that fails half-way changes nothing but its failure audit entry.
- The head each history package records (``HEAD``: what every open compares the
  database's version with, without loading Alembic) is the history's head.
Real SQLite files, the real PostgreSQL server, the real CLI.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from helpers.pgenv import TEST_DATABASE, schema_prefix
from helpers.schemaenv import (
    BASELINES,
    HEADS,
    REVISIONS,
    airlock,
    contents,
    drift,
    old_home,
    row_counts,
    schema_of,
)
from sqlalchemy import Engine, inspect, text
from sqlmodel import Session, col, select

from airlock.bundles.audit import AuditRecord
from airlock.bundles.config import HomeConfig, write_config
from airlock.bundles.db import make_engine
from airlock.bundles.schema import create_at_head, create_home_database, recorded_head

ROLES = ("hub", "spoke")


def new_home(role: str, home: Path, database: dict[str, str] | None = None) -> HomeConfig:
    """An ``airlock.toml`` for a ``role`` home (its database made by the caller)."""
    settings: dict[str, object] = {"site_id": "plant-7"} if role == "spoke" else {}
    return write_config(home, role, settings | ({"database": database} if database else {}))


def home_at(role: str, home: Path, revision: str) -> Engine:
    """A SQLite ``role`` home whose tables the history made up to ``revision``."""
    config = new_home(role, home)
    engine = make_engine(config.database_url)
    create_at_head(engine, role, revision)
    return engine


def entries(engine: Engine) -> list[AuditRecord]:
    with Session(engine) as session:
        return list(session.exec(select(AuditRecord).order_by(col(AuditRecord.seq))))


@pytest.mark.parametrize("role", ROLES)
def test_each_history_is_one_line_of_numbered_revisions(role: str) -> None:
    count = len(REVISIONS[role])
    assert count >= 2
    assert REVISIONS[role] == [f"{role}_{number:04d}" for number in range(1, count + 1)]


@pytest.mark.parametrize("role", ROLES)
def test_the_recorded_head_is_the_head_of_the_history(role: str) -> None:
    """A new revision without its ``HEAD`` would make every command refuse a current home."""
    assert recorded_head(role) == HEADS[role]


@pytest.mark.parametrize("role", ROLES)
def test_the_baseline_is_the_schema_the_previous_release_made(role: str, tmp_path: Path) -> None:
    made_then = make_engine(f"sqlite:///{old_home(role, tmp_path / 'then') / f'{role}.db'}")
    baseline = home_at(role, tmp_path / "baseline", BASELINES[role])
    try:
        assert schema_of(baseline) == schema_of(made_then)
        assert len(schema_of(baseline)) > 15
    finally:
        made_then.dispose()
        baseline.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@pytest.mark.parametrize("role", ROLES)
def test_a_new_home_is_made_at_head_and_head_is_the_models(
    role: str, backend: str, tmp_path: Path
) -> None:
    with schema_prefix() as prefix:
        database = {"url": TEST_DATABASE, "schema": f"{prefix}_{role}"}
        config = new_home(role, tmp_path / role, database if backend == "postgresql" else None)
        engine = create_home_database(config, AuditRecord)
        try:
            assert drift(engine, role) == []
            with engine.connect() as conn:
                assert conn.execute(text("SELECT version_num FROM alembic_version")).all() == [
                    (HEADS[role],)
                ]
            status = airlock(role, "db", "status", "--home", str(config.home), "--json")
            assert status.exit_code == 0, status.output
            assert json.loads(status.stdout)["state"] == "current"
        finally:
            engine.dispose()


@pytest.mark.parametrize("role", ROLES)
def test_a_home_one_revision_behind_is_refused_then_upgraded_by_that_revision(
    role: str, tmp_path: Path
) -> None:
    home = tmp_path / role
    previous = REVISIONS[role][-2]
    engine = home_at(role, home, previous)
    before = contents(engine)
    refused = airlock("audit", "query", "--home", str(home))
    assert refused.exit_code == 8, refused.output
    assert f"is at schema revision {previous}; this release needs {HEADS[role]} (1 " in (
        refused.stderr
    )
    assert f"`airlock {role} db upgrade --home {home}`" in refused.stderr
    assert contents(engine) == before

    upgraded = airlock(role, "db", "upgrade", "--home", str(home))
    assert upgraded.exit_code == 0, upgraded.output
    assert f"from {previous} to {HEADS[role]}: applied {HEADS[role]}" in upgraded.stdout
    [entry] = entries(engine)
    details = json.loads(entry.details)
    assert (entry.action, details["from"], details["to"], details["applied"]) == (
        f"{role}.db.upgrade",
        previous,
        HEADS[role],
        [HEADS[role]],
    )
    assert drift(engine, role) == []
    assert airlock("audit", "query", "--home", str(home)).exit_code == 0
    engine.dispose()


@pytest.mark.parametrize("role", ROLES)
def test_a_schema_newer_than_this_release_is_refused_and_left_alone(
    role: str, tmp_path: Path
) -> None:
    home = tmp_path / role
    engine = home_at(role, home, "head")
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": f"{role}_9999"})
    before = contents(engine)
    for args in (
        ["audit", "verify", "--home", str(home)],
        [role, "db", "upgrade", "--home", str(home)],
    ):
        refused = airlock(*args)
        assert refused.exit_code == 8, refused.output
        assert f"is at schema revision {role}_9999, which this release does not know" in (
            refused.stderr
        )
        assert "install that newer release" in refused.stderr
    status = airlock(role, "db", "status", "--home", str(home), "--json")
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["state"] == "newer"
    assert contents(engine) == before
    engine.dispose()


def test_an_upgrade_that_fails_half_way_changes_nothing_but_its_audit_entry(
    tmp_path: Path,
) -> None:
    """The name the second revision's index needs is taken: it fails after the baseline ran."""
    home = old_home("spoke", tmp_path / "spoke")
    with sqlite3.connect(home / "spoke.db") as conn:
        conn.execute("CREATE TABLE ix_event_outbox_written_at_seq (x INTEGER)")
    engine = make_engine(f"sqlite:///{home / 'spoke.db'}")
    before = contents(engine)
    counts = row_counts(engine)

    failed = airlock("spoke", "db", "upgrade", "--home", str(home))
    assert failed.exit_code == 1, failed.output
    assert "error: the spoke database could not be upgraded (" in failed.stderr
    assert "it was left as it was" in failed.stderr

    after = contents(engine)
    assert "alembic_version" not in inspect(engine).get_table_names()
    assert after["schema"] == before["schema"]
    assert {k: v for k, v in after["rows"].items() if k != "audit_log"} == {
        k: v for k, v in before["rows"].items() if k != "audit_log"
    }
    assert row_counts(engine)["audit_log"] == counts["audit_log"] + 1
    last = entries(engine)[-1]
    assert (last.action, last.outcome) == ("spoke.db.upgrade", "failure")
    assert airlock("audit", "verify", "--home", str(home)).exit_code == 8  # still behind
    engine.dispose()
