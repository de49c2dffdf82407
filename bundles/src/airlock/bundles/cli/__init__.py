"""The ``airlock`` command: the root group that gathers each installed component's
role group, and the core's own ``audit`` and ``events`` groups.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.bundles.cli._audit import audit
from airlock.bundles.cli._events import events
from airlock.bundles.cli._main import AirlockGroup, main

__all__ = [
    "AirlockGroup",
    "audit",
    "events",
    "main",
]
