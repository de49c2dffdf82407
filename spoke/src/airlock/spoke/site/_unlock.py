"""Opening the site's age identity ahead of need, on a thread of its own.

Its key derivation (scrypt, 64 MiB, :mod:`airlock.bundles.keys`) is the largest
single cost of ``airlock spoke import`` on a small bundle, and it releases the
GIL: started first, it runs on the second core while the command loads its
modules and checks the envelope, and :meth:`SpokeHome.age_identity
<airlock.spoke.site.SpokeHome.age_identity>` takes the result. This module
imports nothing heavy, so that it can start before everything else.
"""

from __future__ import annotations

from pathlib import Path

from airlock.bundles.keys import PendingUnseal
from airlock.spoke.site._names import AGE_IDENTITY_FILE, IDENTITY_WHAT, PASSPHRASE_HINT


def unlock_ahead(home: Path, passphrase: str) -> PendingUnseal | None:
    """Starts unsealing ``home``'s age identity with ``passphrase``; None without the file.

    A wrong passphrase or a damaged file is reported by :meth:`PendingUnseal.result`,
    that is where and as :meth:`SpokeHome.age_identity` would report it.
    """
    try:
        sealed = (Path(home) / AGE_IDENTITY_FILE).read_bytes()
    except OSError:
        return None  # SpokeHome.age_identity() says what is wrong, when it is asked
    return PendingUnseal(sealed, passphrase, IDENTITY_WHAT, hint=PASSPHRASE_HINT)
