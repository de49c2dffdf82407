"""What a minimal ceremony makes: its options, the key names and the output layout.

The output directory is read by the hub (``airlock hub init``) and by tests: the
names both sides use are defined once, in :mod:`airlock.bundles.ceremony_output`,
and re-exported here for the ceremony's modules::

    DIR/airlock.toml              role "ceremony"; its database is the audit log
    DIR/ceremony.json             the ceremony record (see airlock.bundles.ceremony_output)
    DIR/image/1.root.json         Image root v1, signed by every image-root key
    DIR/image/1.targets.json      Image top-level targets v1, signed by every image-targets key
    DIR/director/1.root.json      Director root v1, signed by every director-root key
    DIR/offline-keys/<name>.pem   officers' keys, encrypted PKCS#8, mode 0600
    DIR/online-keys/<name>.pem    the hub's keys, encrypted PKCS#8, mode 0600
    DIR/ceremony-audit.db         the ceremony's hash-chained audit log
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from airlock.bundles import tuf as tufrepo
from airlock.bundles.errors import UsageError
from airlock.bundles.keys import ALGORITHMS

AUDIT_DB = "ceremony-audit.db"
AUDIT_DB_URL = f"sqlite:///{AUDIT_DB}"
CONFIG_ROLE = "ceremony"

MAX_KEYS = 32
"""More keys than this per role is certainly a typo."""


@dataclass(frozen=True)
class CeremonyOptions:
    """The choices of a minimal ceremony (the CLI options of ``airlock ceremony init``).

    Attributes:
        algorithm: ``ed25519`` or ``ecdsa-p256``, used for every key.
        root_keys: Number of root keys per repository (Image and Director).
        root_threshold: Root signatures needed to accept a root.
        targets_keys: Number of offline Image top-level targets keys.
        targets_threshold: Targets signatures needed.
        root_expiry_days: Lifetime of both version-1 roots.
        targets_expiry_days: Lifetime of the version-1 Image targets.
    """

    algorithm: str = "ed25519"
    root_keys: int = 3
    root_threshold: int = 2
    targets_keys: int = 2
    targets_threshold: int = 1
    root_expiry_days: int = tufrepo.ROOT_EXPIRY_DAYS
    targets_expiry_days: int = tufrepo.TARGETS_EXPIRY_DAYS

    def validate(self) -> None:
        """Checks the options make a usable ceremony.

        Raises:
            UsageError: unknown algorithm, a threshold outside 1..keys, or a
                lifetime below one day.
        """
        if self.algorithm not in ALGORITHMS:
            raise UsageError(
                f"unsupported key algorithm {self.algorithm!r}",
                hint=f"use one of: {', '.join(ALGORITHMS)}",
            )
        _check_threshold("root", self.root_keys, self.root_threshold)
        _check_threshold("targets", self.targets_keys, self.targets_threshold)
        for name, days in (
            ("root", self.root_expiry_days),
            ("targets", self.targets_expiry_days),
        ):
            if days < 1:
                raise UsageError(
                    f"the {name} expiry must be at least one day (got {days})",
                    hint=f"pass --{name}-expiry-days 1 or more",
                )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for the audit log and ``--json`` output)."""
        return asdict(self)

    def image_root_keys(self) -> list[str]:
        """Names of the offline Image root keys."""
        return _numbered("image-root", self.root_keys)

    def director_root_keys(self) -> list[str]:
        """Names of the offline Director root keys."""
        return _numbered("director-root", self.root_keys)

    def image_targets_keys(self) -> list[str]:
        """Names of the offline Image top-level targets keys."""
        return _numbered("image-targets", self.targets_keys)

    def offline_key_names(self) -> list[str]:
        """Every offline key name, in creation order."""
        return self.image_root_keys() + self.director_root_keys() + self.image_targets_keys()


def _numbered(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{i}" for i in range(1, count + 1)]


def _check_threshold(role: str, keys: int, threshold: int) -> None:
    if not 1 <= keys <= MAX_KEYS:
        raise UsageError(
            f"the number of {role} keys must be between 1 and {MAX_KEYS} (got {keys})",
            hint=f"pass --{role}-keys N with 1 <= N <= {MAX_KEYS}",
        )
    if not 1 <= threshold <= keys:
        raise UsageError(
            f"the {role} threshold must be between 1 and the number of {role} keys "
            f"({keys}), got {threshold}",
            hint=f"pass --{role}-threshold T with 1 <= T <= --{role}-keys",
        )
