"""The database layer: one SQLAlchemy engine per home directory, SQLite or PostgreSQL.

SQLite is the embedded default (WAL, foreign keys on, a busy timeout so that
two processes can share a file); any SQLAlchemy URL works, so the same code
runs on PostgreSQL when a site scales out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, create_engine

from airlock.bundles.errors import AirlockError


def make_engine(url: str) -> Engine:
    """Creates an engine for ``url`` with Airlock's connection settings.

    Args:
        url: A SQLAlchemy URL, e.g. ``sqlite:////path/hub.db`` or
            ``postgresql+psycopg://postgres@127.0.0.1:5432/test``.
    """
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def create_tables(engine: Engine, models: Sequence[type[SQLModel]]) -> None:
    """Creates the tables of ``models`` (and only those) if they do not exist."""
    tables = [model.__table__ for model in models]  # type: ignore[attr-defined]
    SQLModel.metadata.create_all(engine, tables=tables)


@contextlib.contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """Yields a session that commits on success and rolls back on any exception.

    This is the session for changing state. On SQLite it takes the database's
    write lock first (``BEGIN IMMEDIATE``): two processes (``spoke serve``'s
    rollout engine and an ``import`` or ``node enroll`` from the shell) then
    queue for the busy timeout instead of both reading the same state and one
    failing at commit (e.g. on the audit chain's next sequence number). Plain
    ``Session(engine)`` reads take no lock.
    """
    session = Session(engine, expire_on_commit=False)
    if engine.dialect.name == "sqlite":
        session.connection().exec_driver_sql("BEGIN IMMEDIATE")
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


class DatabaseError(AirlockError):
    """The database cannot be opened or written."""
