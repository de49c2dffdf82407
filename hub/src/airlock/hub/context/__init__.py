"""One open hub: :class:`HubContext` (home, config, engine, audit log, clock, blob store,
signers, repository loaders) and ``operation(ctx, …)``, the audited all-or-nothing
transaction every state-changing hub function runs in.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.hub.context._context import (
    HubContext,
    director_signers,
    load_director_roots,
    load_image_repo,
    load_site_metadata,
    online_signer,
    open_hub,
)

__all__ = [
    "HubContext",
    "director_signers",
    "load_director_roots",
    "load_image_repo",
    "load_site_metadata",
    "online_signer",
    "open_hub",
]
