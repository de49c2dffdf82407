"""The site director: the spoke signs each node's assignment as TUF metadata with the
site key, and keeps the site's freshness statements for the hub's metadata current (their format,
a contract with the nodes, is :mod:`airlock.bundles.protocol`).

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.spoke.director._director import (
    ensure_site_root,
    forget_node,
    load_node,
    node_metadata,
    publish_pending,
    refresh_expiring,
    site_root,
)
from airlock.spoke.director._image_freshness import stored_statement
from airlock.spoke.director._meta import NodeRepository, meta_file, sign_node

__all__ = [
    "NodeRepository",
    "ensure_site_root",
    "forget_node",
    "load_node",
    "meta_file",
    "node_metadata",
    "publish_pending",
    "refresh_expiring",
    "sign_node",
    "site_root",
    "stored_statement",
]
