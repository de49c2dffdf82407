"""An officer's own key directory, kept on the officer's offline machine.

Layout::

    KEYS/airlock.toml           role "ceremony"; its database is the audit log
    KEYS/officer-audit.db       every keygen and signing step on this machine
    KEYS/officer.json           the officer's name and every key: role, URI, public key
    KEYS/keys/<role>-<n>.pem    file keys, encrypted PKCS#8 (mode 0600)

HSM keys stay on their token; ``officer.json`` records their ``hsm:`` URI.
Keys accumulate over ceremonies: a rotation is signed with the old keys (the
old root's threshold) and the new ones. Private keys are opened only through
:class:`~airlock.bundles.keys._signers.KeyStore`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securesystemslib.signer import Signature, Signer

from airlock.bundles.atomic import atomic_write_json
from airlock.bundles.errors import ConflictError, NotFoundError, SecretError, UsageError
from airlock.bundles.keys import FILE_SCHEME, KeyRef, KeyStore

OFFICER_FILE = "officer.json"
AUDIT_DB = "officer-audit.db"
KEYS_SUBDIR = "keys"

SCHEME_ALGORITHMS = {
    "ed25519": "ed25519",
    "ecdsa-sha2-nistp256": "ecdsa-p256",
    "ecdsa-sha2-nistp384": "ecdsa-p384",
}


def algorithm_of(ref: KeyRef) -> str:
    """The plan's name for a key's algorithm (``ed25519``, ``ecdsa-p256``, ``ecdsa-p384``)."""
    scheme = str(ref.public_key.scheme)
    return SCHEME_ALGORITHMS.get(scheme, scheme)


def storage_of(ref: KeyRef) -> str:
    """``file`` or ``hsm``: where the private half lives."""
    return "file" if ref.uri.startswith(f"{FILE_SCHEME}:") else ref.uri.split(":", 1)[0]


@dataclass(frozen=True)
class OfficerKey:
    """One of the officer's keys, for one role."""

    role: str
    ref: KeyRef

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (public data only)."""
        return {"role": self.role, **self.ref.to_dict()}


class OfficerKeys:
    """The officer's key directory (see the module docstring)."""

    def __init__(self, directory: Path, officer: str, keys: list[OfficerKey]) -> None:
        self.directory = Path(directory)
        self.officer = officer
        self.keys = keys

    @classmethod
    def open(cls, directory: Path, officer: str, create: bool = False) -> OfficerKeys:
        """Opens (or, with ``create``, starts) the key directory of ``officer``.

        Raises:
            NotFoundError: no key directory there (and not ``create``).
            ConflictError: the directory belongs to another officer.
        """
        directory = Path(directory)
        path = directory / OFFICER_FILE
        if not path.exists():
            if not create:
                cls.require(directory)
            return cls(directory, officer, [])
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            owner = str(data["officer"])
            keys = [
                OfficerKey(role=str(item["role"]), ref=KeyRef.from_dict(dict(item)))
                for item in data["keys"]
            ]
        except (ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"{path} is malformed ({type(exc).__name__})") from None
        if owner != officer:
            raise ConflictError(
                f"{directory} holds the keys of officer {owner!r}, not {officer!r}",
                hint="each officer uses their own key directory; check --officer and --keys",
            )
        return cls(directory, officer, keys)

    @staticmethod
    def require(directory: Path) -> None:
        """Checks ``directory`` is an officer key directory (before anything is audited there).

        Raises:
            NotFoundError: it is not.
        """
        if not (Path(directory) / OFFICER_FILE).is_file():
            raise NotFoundError(
                f"{directory} is not an officer key directory (no {OFFICER_FILE})",
                hint="pass the --keys directory you used for `airlock ceremony keygen`",
            )

    def save(self) -> None:
        """Writes ``officer.json`` atomically."""
        atomic_write_json(
            self.directory / OFFICER_FILE,
            {"officer": self.officer, "keys": [key.to_dict() for key in self.keys]},
        )

    def latest(self, role: str) -> OfficerKey | None:
        """The officer's newest key for ``role``, if any."""
        matching = [key for key in self.keys if key.role == role]
        return matching[-1] if matching else None

    def by_keyid(self) -> dict[str, OfficerKey]:
        """Every key of the officer by key id."""
        return {key.ref.keyid: key for key in self.keys}

    def next_key_path(self, role: str) -> str:
        """A fresh relative path for a new file key of ``role``."""
        number = 1 + sum(1 for key in self.keys if key.role == role)
        while (self.directory / KEYS_SUBDIR / f"{role}-{number}.pem").exists():
            number += 1
        return f"{KEYS_SUBDIR}/{role}-{number}.pem"

    def store(self, secrets_handler: Callable[[str], str]) -> KeyStore:
        """A key store rooted here (relative ``airlock-file:`` URIs resolve against it)."""
        return KeyStore(self.directory, secrets_handler)


def sign_with(signer: Signer, payload: bytes, key_name: str) -> Signature:
    """Signs ``payload``; a PIN or token problem becomes a :class:`SecretError`.

    HSM signers ask for the PIN only when they sign, so a wrong PIN surfaces
    here (``PinIncorrect``) rather than when the key is opened.
    """
    try:
        return signer.sign(payload)
    except Exception as exc:
        reason = type(exc).__name__
        if reason.startswith("Pin"):  # PinIncorrect, PinInvalid, PinLenRange, PinLocked, …
            reason = f"the token refused the PIN: {reason}"
        raise SecretError(
            f"cannot sign with key {key_name!r} ({reason})",
            hint="check the PIN or passphrase, and that the token is inserted",
        ) from None
