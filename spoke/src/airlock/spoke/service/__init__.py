"""The spoke's HTTP API for its nodes (``airlock spoke serve``): the local TUF mirror,
node authentication, signed uploads and Prometheus metrics.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.spoke.service._app import create_app
from airlock.spoke.service._mirror import image_metadata, image_target

__all__ = [
    "create_app",
    "image_metadata",
    "image_target",
]
