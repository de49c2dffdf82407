"""The database engine layer shared by every home: one SQLAlchemy engine per home, SQLite
or PostgreSQL, sessions and the write lock. Opening a home's database and its schema
version: :mod:`airlock.bundles.schema`.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.bundles.db._engine import create_tables, make_engine, session_scope, take_write_lock

__all__ = [
    "create_tables",
    "make_engine",
    "session_scope",
    "take_write_lock",
]
