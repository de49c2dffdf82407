"""Site identities for tests: a real age X25519 identity and a real Ed25519 key."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyrage import x25519
from securesystemslib.signer import CryptoSigner

from airlock.bundles.models import SiteIdentity


@dataclass(frozen=True)
class SiteKeys:
    """What a spoke holds (private) and what it gives the hub (``identity``)."""

    identity: SiteIdentity
    age_identity: Any
    signer: CryptoSigner

    def write_age_identity(self, path: Path) -> Path:
        """Writes the age identity in the stock ``age-keygen`` format (for ``age -d -i``)."""
        path.write_text(f"{self.age_identity}\n")
        path.chmod(0o600)
        return path


def make_site(site_id: str = "plant-7") -> SiteKeys:
    """Generates a site's age identity and Ed25519 signing key."""
    age_identity = x25519.Identity.generate()
    signer = CryptoSigner.generate_ed25519()
    identity = SiteIdentity(
        site_id=site_id,
        age_recipient=str(age_identity.to_public()),
        signing_keyid=signer.public_key.keyid,
        signing_key=signer.public_key.to_dict(),
    )
    return SiteKeys(identity=identity, age_identity=age_identity, signer=signer)
