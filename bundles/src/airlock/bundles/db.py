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
    """Yields a session that commits on success and rolls back on any exception."""
    session = Session(engine, expire_on_commit=False)
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
