"""The ``airlock`` command: the root group that gathers each installed component's
role group, the core's own ``audit`` and ``events`` groups, and the CLI toolkit
(options, JSON, tables, closing homes) every role group builds on.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.bundles.cli._audit import audit
from airlock.bundles.cli._bundle import bundle
from airlock.bundles.cli._db import db_group
from airlock.bundles.cli._events import events
from airlock.bundles.cli._main import AirlockGroup, main
from airlock.bundles.cli._toolkit import (
    FittedTable,
    SupportsClose,
    closing_home,
    emit_json,
    home_database,
    home_option,
    json_option,
    print_table,
    table,
)

__all__ = [
    "AirlockGroup",
    "FittedTable",
    "SupportsClose",
    "audit",
    "bundle",
    "closing_home",
    "db_group",
    "emit_json",
    "events",
    "home_database",
    "home_option",
    "json_option",
    "main",
    "print_table",
    "table",
]
