"""Alembic environment of the hub's schema history: its tables, the runner's connection."""

from airlock.bundles.schema import run_environment
from airlock.hub.store._tables import HUB_TABLES

run_environment(HUB_TABLES)
