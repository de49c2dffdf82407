"""The ``airlock`` command: the root group that gathers each installed component's
role group, the core's own ``audit`` and ``events`` groups, and the CLI toolkit
(options, JSON, tables, closing homes, lazy groups, progress) every role group builds on.

Modules here are private (``_name.py``); other components import the names below.
Every command imports this package, so it loads only the light modules (the root
group, options, JSON); the ``audit``, ``events`` and ``db`` groups, the tables
(rich) and the progress renderer are imported when first used (:mod:`airlock.bundles.lazy`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airlock.bundles.cli._main import AirlockGroup, main
from airlock.bundles.cli._toolkit import (
    LazyGroup,
    SupportsClose,
    closing_home,
    emit_json,
    home_database,
    home_option,
    json_option,
)
from airlock.bundles.lazy import lazy_exports

if TYPE_CHECKING:
    from airlock.bundles.cli._audit import audit
    from airlock.bundles.cli._bundle import bundle
    from airlock.bundles.cli._db import db_group
    from airlock.bundles.cli._events import events
    from airlock.bundles.cli._progress import progress_for
    from airlock.bundles.cli._tables import FittedTable, print_table, table

__all__ = [
    "AirlockGroup",
    "FittedTable",
    "LazyGroup",
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
    "progress_for",
    "table",
]


__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "FittedTable": "_tables",
        "audit": "_audit",
        "bundle": "_bundle",
        "db_group": "_db",
        "events": "_events",
        "print_table": "_tables",
        "progress_for": "_progress",
        "table": "_tables",
    },
)
