"""Homes made by the release before schema migrations: refused as they are, then upgraded.

The fixture homes (``tests/fixtures/old_release``, made by that release with
``make_old_release_db.py``) hold a hub's and a spoke's tables and rows, audit
entries and signed checkpoints included, but no ``alembic_version``. Opening
them refuses with exit 8 and changes nothing; ``airlock <role> db upgrade``
brings them to this release's head without losing a row, audits itself once,
does nothing the second time, and ``airlock audit verify`` still passes. The
same runs on PostgreSQL, on a schema the baseline revision made (the schema the
old release's ``create_all`` made, see test_schema_versions.py) filled with the
fixture's rows. Real SQLite files, the real PostgreSQL server, the real CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.pgenv import TEST_DATABASE, schema_prefix
from helpers.schemaenv import (
    BASELINES,
    HEADS,
    REVISIONS,
    airlock,
    contents,
    copy_rows,
    drift,
    old_home,
    row_counts,
)
from sqlalchemy import Engine, inspect, text
from sqlmodel import Session, col, select

from airlock.bundles.audit import AuditRecord
from airlock.bundles.db import make_engine
from airlock.bundles.errors import EXIT_CODES
from airlock.bundles.schema import create_at_head

ROLES = ("hub", "spoke")
OUTBOX_INDEXES = {"ix_event_outbox_written_at_seq", "ix_event_outbox_delivered_at_seq"}


def sqlite_of(home: Path, role: str) -> Engine:
    """The home's own SQLite database."""
    return make_engine(f"sqlite:///{home / f'{role}.db'}")


def last_entry(engine: Engine) -> AuditRecord:
    with Session(engine) as session:
        return session.exec(select(AuditRecord).order_by(col(AuditRecord.seq).desc())).first()


def upgrade_and_check(role: str, home: Path, engine: Engine, env: dict[str, str]) -> None:
    """Upgrades the pre-migration home and checks rows, audit entry, log, schema, idempotence."""
    before = row_counts(engine)
    assert before["audit_log"] > 5 and before["audit_checkpoint"] >= 2
    result = airlock(role, "db", "upgrade", "--home", str(home), "--json", env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "role": role,
        "from": None,
        "to": HEADS[role],
        "applied": REVISIONS[role],
        "changed": True,
    }
    assert row_counts(engine) == before | {"audit_log": before["audit_log"] + 1}
    entry = last_entry(engine)
    assert (entry.action, entry.outcome, entry.object) == (
        f"{role}.db.upgrade",
        "success",
        HEADS[role],
    )
    assert json.loads(entry.details)["from"] is None
    assert json.loads(entry.details)["to"] == HEADS[role]

    verified = airlock("audit", "verify", "--home", str(home), "--json", env=env)
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.stdout)["entries"] == before["audit_log"] + 1
    assert drift(engine, role) == []
    assert {i["name"] for i in inspect(engine).get_indexes("event_outbox")} >= OUTBOX_INDEXES

    again = airlock(role, "db", "upgrade", "--home", str(home), "--json", env=env)
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["changed"] is False
    assert row_counts(engine) == before | {"audit_log": before["audit_log"] + 1}
    status = airlock(role, "db", "status", "--home", str(home), "--json", env=env)
    assert json.loads(status.stdout) | {"database": ""} == {
        "role": role,
        "current": HEADS[role],
        "head": HEADS[role],
        "pending": [],
        "state": "current",
        "database": "",
    }


@pytest.mark.parametrize("role", ROLES)
def test_an_old_release_home_is_refused_and_left_unchanged(role: str, tmp_path: Path) -> None:
    home = old_home(role, tmp_path / role)
    engine = sqlite_of(home, role)
    before = contents(engine)
    for command in (["audit", "verify"], ["events", "list"], ["audit", "query"]):
        refused = airlock(*command, "--home", str(home))
        assert refused.exit_code == EXIT_CODES["schema"] == 8, refused.output
        assert refused.stderr.startswith(f"error: the {role} database sqlite:///"), refused.stderr
        assert "has no schema version (made by a release before schema migrations)" in (
            refused.stderr
        )
        assert f"`airlock {role} db upgrade --home {home}`" in refused.stderr
    status = airlock(role, "db", "status", "--home", str(home), "--json")
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["state"] == "behind"
    assert json.loads(status.stdout)["pending"] == REVISIONS[role]
    assert contents(engine) == before
    assert "alembic_version" not in inspect(engine).get_table_names()
    engine.dispose()


@pytest.mark.parametrize("role", ROLES)
def test_upgrade_on_sqlite_keeps_every_row_and_the_log_verifies(role: str, tmp_path: Path) -> None:
    home = old_home(role, tmp_path / role)
    engine = sqlite_of(home, role)
    try:
        upgrade_and_check(role, home, engine, {})
    finally:
        engine.dispose()


@pytest.mark.parametrize("role", ROLES)
def test_upgrade_on_postgresql_keeps_every_row_and_the_log_verifies(
    role: str, tmp_path: Path
) -> None:
    home = old_home(role, tmp_path / role)
    with schema_prefix() as prefix:
        schema = f"{prefix}_{role}"
        env = {"AIRLOCK_DATABASE_URL": TEST_DATABASE, "AIRLOCK_DATABASE_SCHEMA": schema}
        engine = make_engine(TEST_DATABASE, schema)
        source = sqlite_of(home, role)
        try:
            with engine.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            create_at_head(engine, role, BASELINES[role])  # the old release's tables...
            with engine.begin() as conn:
                conn.execute(text("DROP TABLE alembic_version"))  # ...and no version
            copy_rows(source, engine)
            assert row_counts(engine) == row_counts(source)
            refused = airlock("audit", "verify", "--home", str(home), env=env)
            assert refused.exit_code == 8, refused.output
            assert f"(schema {schema}) has no schema version" in refused.stderr
            upgrade_and_check(role, home, engine, env)
        finally:
            source.dispose()
            engine.dispose()
