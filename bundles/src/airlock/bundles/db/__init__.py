"""The database layer shared by every home: one SQLAlchemy engine per home, SQLite or
PostgreSQL.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.bundles.db._engine import (
    create_home_database,
    create_tables,
    make_engine,
    open_home_database,
    session_scope,
)

__all__ = [
    "create_home_database",
    "create_tables",
    "make_engine",
    "open_home_database",
    "session_scope",
]
