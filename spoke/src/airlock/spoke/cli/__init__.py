"""``airlock spoke``: the site admin's commands.

Modules here are private (``_name.py``); other components import the names below.
``periodic_tasks`` (the service's loop) is imported on first use: the commands
that do not serve never load the service.
"""

from typing import TYPE_CHECKING

from airlock.bundles.lazy import lazy_exports
from airlock.spoke.cli._main import spoke

if TYPE_CHECKING:
    from airlock.spoke.cli._serve import periodic_tasks

__all__ = [
    "periodic_tasks",
    "spoke",
]

__getattr__, __dir__ = lazy_exports(__name__, {"periodic_tasks": "_serve"})
