"""``airlock hub``: the release engineer's commands.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.hub.cli._fleet import render_html
from airlock.hub.cli._main import hub

__all__ = [
    "hub",
    "render_html",
]
