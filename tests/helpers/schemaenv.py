"""Homes at a given schema revision, for the schema migration tests.

:func:`old_home` copies a fixture home made by the release before schema
migrations (``tests/fixtures/old_release``, see ``make_old_release_db.py``
there): its SQLite database has tables and rows but no ``alembic_version``.
:func:`copy_rows` moves such a database's rows into another one (PostgreSQL)
whose tables the baseline revision made. :func:`schema_of` and
:func:`contents` describe a database so that tests can say "exactly the same
schema" and "nothing changed". Everything runs against real SQLite files and
the machine's real PostgreSQL server.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from click.testing import CliRunner, Result
from sqlalchemy import Engine, Integer, MetaData, func, inspect, select

from airlock.bundles.cli import main
from airlock.bundles.schema import history_dir, home_metadata
from airlock.hub.store._tables import HUB_TABLES
from airlock.spoke.site._tables import SPOKE_TABLES

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "old_release"
VERSION_TABLE = "alembic_version"
REVISIONS = {
    role: [
        step.revision
        for step in reversed(list(ScriptDirectory(history_dir(role)).walk_revisions()))
    ]
    for role in ("hub", "spoke")
}
"""Each history's revisions, oldest first."""
HEADS = {role: revisions[-1] for role, revisions in REVISIONS.items()}
BASELINES = {role: revisions[0] for role, revisions in REVISIONS.items()}


def old_home(role: str, dest: Path) -> Path:
    """A copy of the pre-migration ``role`` home (airlock.toml, database, checkpoint key)."""
    shutil.copytree(FIXTURES / role, dest)
    return dest


def airlock(*args: str, env: dict[str, str] | None = None) -> Result:
    """``airlock ARGS…`` in-process, with no Airlock variable but ``env`` set."""
    clean: dict[str, str | None] = {k: None for k in os.environ if k.startswith("AIRLOCK_")}
    clean.update({"AIRLOCK_PRINCIPAL": "site-admin", "COLUMNS": "200", "NO_COLOR": "1"})
    clean.update(env or {})
    return CliRunner().invoke(main, list(args), env=clean, catch_exceptions=False)


def tables(engine: Engine) -> list[str]:
    """The Airlock tables of a database (its default schema), without the version table."""
    return sorted(set(inspect(engine).get_table_names()) - {VERSION_TABLE})


def row_counts(engine: Engine) -> dict[str, int]:
    """Rows per Airlock table."""
    metadata = MetaData()
    metadata.reflect(engine, only=tables(engine))
    with engine.connect() as conn:
        return {
            name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for name, table in metadata.tables.items()
        }


def contents(engine: Engine) -> dict[str, Any]:
    """Every row of every table, the version table included, and the schema: "nothing changed"."""
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.connect() as conn:
        rows = {
            name: sorted(map(repr, conn.execute(select(table)).all()))
            for name, table in metadata.tables.items()
        }
    return {"schema": schema_of(engine), "rows": rows}


def schema_of(engine: Engine) -> dict[str, Any]:
    """Tables, columns (name, type, nullable), keys and indexes, as reflected."""
    found = inspect(engine)
    return {
        name: {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"]) for c in found.get_columns(name)
            ],
            "primary_key": found.get_pk_constraint(name)["constrained_columns"],
            "foreign_keys": sorted(
                (tuple(k["constrained_columns"]), k["referred_table"], tuple(k["referred_columns"]))
                for k in found.get_foreign_keys(name)
            ),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in found.get_indexes(name)
            ),
            "unique": sorted(tuple(u["column_names"]) for u in found.get_unique_constraints(name)),
        }
        for name in found.get_table_names()
        if name != VERSION_TABLE
    }


def copy_rows(source: Engine, target: Engine) -> None:
    """Copies every row of ``source``'s tables into the same, empty tables of ``target``.

    Parents before children (foreign keys); PostgreSQL's serial counters are
    moved past the copied ids, as if the rows had been inserted there.
    """
    names = tables(source)
    read, write = MetaData(), MetaData()
    read.reflect(source, only=names)
    write.reflect(target, only=names)
    with source.connect() as src, target.begin() as dst:
        for table in read.sorted_tables:
            rows = [dict(row._mapping) for row in src.execute(select(table))]
            if rows:
                dst.execute(write.tables[table.name].insert(), rows)
        for table in write.sorted_tables:  # serial ids: a no-op (NULL) for other keys
            for column in table.primary_key.columns:
                if not isinstance(column.type, Integer):
                    continue
                serial = func.pg_get_serial_sequence(table.name, column.name)
                dst.execute(select(func.setval(serial, func.coalesce(func.max(column), 1))))


def drift(engine: Engine, role: str) -> list[Any]:
    """What Alembic finds different between the database and the home's SQLModel tables."""
    models = HUB_TABLES if role == "hub" else SPOKE_TABLES
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), home_metadata(models)))
