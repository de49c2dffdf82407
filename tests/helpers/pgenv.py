"""The machine's real PostgreSQL server, in databases and schemas private to one test.

Tests that point homes at PostgreSQL take a fresh database (:func:`fresh_database`)
or a unique schema prefix (:func:`schema_prefix`), so that parallel runs never
see each other's tables; both are dropped afterwards. Nothing is faked: the
server runs at 127.0.0.1:5432 with trust authentication.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator

from sqlalchemy import text

from airlock.bundles.db import make_engine

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
TEST_DATABASE = f"{SERVER}/test"


def unique_name(prefix: str = "airlock_t") -> str:
    """A lower-case identifier no other test run uses."""
    return f"{prefix}_{secrets.token_hex(5)}"


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty database on the server; yields its URL and drops it at the end."""
    name = unique_name()
    admin = make_engine(TEST_DATABASE).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{SERVER}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.engine.dispose()


@contextlib.contextmanager
def schema_prefix() -> Iterator[str]:
    """A unique prefix for schemas in database ``test``; every schema it starts is dropped."""
    prefix = unique_name()
    try:
        yield prefix
    finally:
        admin = make_engine(TEST_DATABASE)
        with admin.begin() as conn:
            names = conn.execute(
                text("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, :p)"),
                {"p": prefix},
            ).scalars()
            for name in list(names):
                conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


def schema_tables(url: str, schema: str) -> list[str]:
    """The names of the tables in ``schema`` of the database at ``url`` (sorted)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return sorted(
                conn.execute(
                    text("SELECT tablename FROM pg_tables WHERE schemaname = :s"), {"s": schema}
                ).scalars()
            )
    finally:
        engine.dispose()


def schema_exists(url: str, schema: str) -> bool:
    """Whether ``schema`` exists in the database at ``url``."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            found = conn.execute(
                text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": schema}
            ).first()
            return found is not None
    finally:
        engine.dispose()
