"""Alembic environment of the spoke's schema history: its tables, the runner's connection."""

from airlock.bundles.schema_migrations import run_environment
from airlock.spoke.state import SPOKE_TABLES

run_environment(SPOKE_TABLES)
