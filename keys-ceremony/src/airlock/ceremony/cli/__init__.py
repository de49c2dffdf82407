"""``airlock ceremony``: the security officers' and the coordinator's commands.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.ceremony.cli._main import ceremony

__all__ = [
    "ceremony",
]
