"""A home's database schema: made at the newest version by ``init``, checked on every open,
brought up by ``airlock hub|spoke db upgrade`` (Alembic, one history per home kind).

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.bundles.schema._homes import (
    DatabaseError,
    create_home_database,
    home_engine,
    open_home_database,
)
from airlock.bundles.schema._migrations import (
    HEAD_ATTRIBUTE,
    SchemaStatus,
    alembic_config,
    create_at_head,
    history_dir,
    home_metadata,
    recorded_head,
    run_environment,
)
from airlock.bundles.schema._upgrade import SchemaUpgrade, home_status, upgrade_home

__all__ = [
    "HEAD_ATTRIBUTE",
    "DatabaseError",
    "SchemaStatus",
    "SchemaUpgrade",
    "alembic_config",
    "create_at_head",
    "create_home_database",
    "history_dir",
    "home_engine",
    "home_metadata",
    "home_status",
    "open_home_database",
    "recorded_head",
    "run_environment",
    "upgrade_home",
]
