"""``airlock spoke``: the site admin's commands.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.spoke.cli._main import spoke
from airlock.spoke.cli._serve import periodic_tasks

__all__ = [
    "periodic_tasks",
    "spoke",
]
