"""Sites and tenants: registering the sites a hub exports to, the tenants whose keys
sign their model families, and the hub's status over all of them.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.hub.sites._sites import add_site, add_site_from_file, list_sites
from airlock.hub.sites._status import hub_status
from airlock.hub.sites._tenants import (
    DEFAULT_TENANT,
    add_tenant,
    family_tenants,
    list_tenants,
    tenant_signer,
)

__all__ = [
    "DEFAULT_TENANT",
    "add_site",
    "add_site_from_file",
    "add_tenant",
    "family_tenants",
    "hub_status",
    "list_sites",
    "list_tenants",
    "tenant_signer",
]
