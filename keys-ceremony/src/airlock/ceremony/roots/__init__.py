"""The trust roots themselves: building and signing the Image and Director roots, and
the options and key names a ceremony uses.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.bundles.ceremony_output import ONLINE_KEY_NAMES
from airlock.ceremony.roots._build import next_root, sign_all, sign_new_root
from airlock.ceremony.roots._options import CeremonyOptions

__all__ = [
    "ONLINE_KEY_NAMES",
    "CeremonyOptions",
    "next_root",
    "sign_all",
    "sign_new_root",
]
