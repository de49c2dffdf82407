"""Alembic environment of the spoke's schema history: its tables, the runner's connection."""

from airlock.bundles.schema import run_environment
from airlock.spoke.site._tables import SPOKE_TABLES

run_environment(SPOKE_TABLES)
