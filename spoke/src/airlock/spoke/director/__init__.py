"""The site director: the spoke signs each node's assignment as TUF metadata with the
site key, and keeps the site's freshness statements for the hub's metadata current.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.bundles.protocol import (
    FRESHNESS_FILE,
    ImageBinding,
    parse_statement,
    sign_statement,
)
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
    "FRESHNESS_FILE",
    "ImageBinding",
    "NodeRepository",
    "ensure_site_root",
    "forget_node",
    "load_node",
    "meta_file",
    "node_metadata",
    "parse_statement",
    "publish_pending",
    "refresh_expiring",
    "sign_node",
    "sign_statement",
    "site_root",
    "stored_statement",
]
