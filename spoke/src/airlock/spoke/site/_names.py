"""The fixed names of a spoke home: its role, its passphrase variable, its key files.

Kept apart from :mod:`._home` (which brings the database) so that a command can
name them, and start opening the site's identity, before it loads anything heavy.
"""

ROLE = "spoke"
PASSPHRASE_ENV = "AIRLOCK_SPOKE_PASSPHRASE"  # noqa: S105 - the variable name, not a secret
IDENTITY_FILE = "site-identity.json"
AGE_IDENTITY_FILE = "keys/site-age-identity.sealed"
SIGNING_KEY_FILE = "keys/site-signing.pem"
SIGNING_KEYREF_FILE = "keys/site-signing.json"
IDENTITY_WHAT = "the site's age identity"
"""How errors name the sealed age identity."""
PASSPHRASE_HINT = f"check the passphrase (or {PASSPHRASE_ENV}) and try again"
"""The hint of a wrong site passphrase."""
