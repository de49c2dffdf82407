"""Revoking a model version everywhere: Image targets removed, sites re-pointed,
the revocation signed into every site's Director targets.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.hub.revocation._revoke import SiteRepoint, revoke

__all__ = [
    "SiteRepoint",
    "revoke",
]
