"""``airlock hub``: the release engineer's commands.

Modules here are private (``_name.py``); other components import the names below.
``render_html`` (the fleet report's page) is imported on first use.
"""

from typing import TYPE_CHECKING

from airlock.bundles.lazy import lazy_exports
from airlock.hub.cli._main import hub

if TYPE_CHECKING:
    from airlock.hub.cli._fleet import render_html

__all__ = [
    "hub",
    "render_html",
]

__getattr__, __dir__ = lazy_exports(__name__, {"render_html": "_fleet"})
