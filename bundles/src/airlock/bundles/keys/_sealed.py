"""Passphrase-sealed secrets with a fixed, bounded key-derivation cost.

A sealed file is canonical JSON::

    {"header": {"format": "airlock-sealed/v1", "kdf": "scrypt", "n": 65536, "r": 8,
                "p": 2, "salt": <b64>, "cipher": "chacha20-poly1305", "nonce": <b64>},
     "ciphertext": <b64>}

The key is scrypt(passphrase, salt, n, r, p) and the secret is sealed with
ChaCha20-Poly1305 under that key, the canonical header as associated data, so
a changed parameter is as detectable as a changed byte of ciphertext. Both
primitives come from ``cryptography``; this module only fixes their
parameters and the file layout.

Why not the age passphrase format: rage picks the scrypt work factor at
encryption time to take about a second on the machine at hand, which on a
fast machine means 2^20 (1 GiB of memory) for every later unlock; an import
that must stay under 200 MiB cannot afford that. Here the cost is fixed at
OWASP's scrypt recommendation N=2^16, r=8, p=2 (64 MiB, about half a second).

That cost is paid on every command that opens the secret. :class:`PendingUnseal`
pays it on a thread of its own: the derivation runs in ``cryptography``'s native
code, which releases the GIL, so on a second core it overlaps with what the
command does meanwhile (loading its modules, reading the envelope) and the
unlock costs next to nothing in wall time, at the same strength.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from airlock.bundles.canonical import canonical_bytes
from airlock.bundles.errors import MediaError, SecretError

FORMAT = "airlock-sealed/v1"
SCRYPT_N = 2**16
SCRYPT_R = 8
SCRYPT_P = 2
MAX_LOG2_N = 20
"""Refuse files asking for more than 2^20 (1 GiB of scrypt memory)."""


def seal(secret: bytes, passphrase: str) -> bytes:
    """Returns the sealed-file bytes of ``secret`` under ``passphrase``."""
    header: dict[str, Any] = {
        "format": FORMAT,
        "kdf": "scrypt",
        "n": SCRYPT_N,
        "r": SCRYPT_R,
        "p": SCRYPT_P,
        "salt": _b64(os.urandom(16)),
        "cipher": "chacha20-poly1305",
        "nonce": _b64(os.urandom(12)),
    }
    key = _derive(passphrase, header)
    ciphertext = ChaCha20Poly1305(key).encrypt(
        base64.b64decode(header["nonce"]), secret, canonical_bytes(header)
    )
    return canonical_bytes({"header": header, "ciphertext": _b64(ciphertext)})


def unseal(
    data: bytes, passphrase: str, what: str, hint: str = "check the passphrase and try again"
) -> bytes:
    """Returns the secret sealed in ``data``.

    Args:
        data: The sealed file's bytes.
        passphrase: The passphrase it was sealed with.
        what: Names the secret in error messages (e.g. "the site's age identity").
        hint: What to do about a wrong passphrase (e.g. which variable holds it).

    Raises:
        SecretError: the passphrase is wrong (or the file was altered).
        MediaError: the file is not a sealed secret of this format.
    """
    try:
        doc = json.loads(data)
        header = doc["header"]
        if header["format"] != FORMAT or header["kdf"] != "scrypt":
            raise ValueError(f"unsupported format {header['format']!r}/{header['kdf']!r}")
        if header["cipher"] != "chacha20-poly1305":
            raise ValueError(f"unsupported cipher {header['cipher']!r}")
        nonce = base64.b64decode(header["nonce"], validate=True)
        ciphertext = base64.b64decode(doc["ciphertext"], validate=True)
        key = _derive(passphrase, header)
        aad = canonical_bytes(header)
    except (ValueError, KeyError, TypeError) as exc:
        raise MediaError(
            f"{what} is not readable ({exc})",
            hint="the key file is damaged; restore it from backup",
        ) from None
    try:
        return ChaCha20Poly1305(key).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        raise SecretError(
            f"cannot open {what}: wrong passphrase (or the key file was altered)", hint=hint
        ) from None


def _derive(passphrase: str, header: dict[str, Any]) -> bytes:
    n, r, p = (int(header[k]) for k in ("n", "r", "p"))
    if n < 2 or n & (n - 1) or n > 2**MAX_LOG2_N or not 1 <= r <= 32 or not 1 <= p <= 16:
        raise ValueError(f"scrypt parameters out of bounds (n={n}, r={r}, p={p})")
    salt = base64.b64decode(header["salt"], validate=True)
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class PendingUnseal:
    """An :func:`unseal` started now on a thread of its own; :meth:`result` waits for it.

    The thread is a daemon: a command that fails before it needs the secret
    exits without waiting for the derivation.
    """

    def __init__(self, data: bytes, passphrase: str, what: str, hint: str) -> None:
        self._secret: bytes | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(data, passphrase, what, hint), name="unseal", daemon=True
        )
        self._thread.start()

    def _run(self, data: bytes, passphrase: str, what: str, hint: str) -> None:
        try:
            self._secret = unseal(data, passphrase, what, hint)
        except BaseException as exc:  # handed to the caller of result(), unchanged
            self._error = exc

    def result(self) -> bytes:
        """The secret, once derived.

        Raises:
            SecretError, MediaError: as :func:`unseal` would have.
        """
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._secret is not None
        return self._secret
