"""Hand-made age files for refusal tests, built from the spec's primitives alone.

An independent second writer (it shares no code with ``airlock.bundles.agestream``):
it lets a test put any stanza in a header with a correct MAC, and seal any sequence
of chunks with any counters and final flags, so that each refusal is tested on a file
that is wrong in exactly one way.
"""

from __future__ import annotations

import base64
import hmac
import os
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

CHUNK = 64 * 1024


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def stanza(args: list[str], body: bytes) -> bytes:
    """A stanza as the spec writes it: body wrapped at 64 columns, a final short line."""
    text = b64(body)
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    if len(text) % 64 == 0:
        lines.append("")
    return ("-> " + " ".join(args) + "\n" + "".join(line + "\n" for line in lines)).encode()


@dataclass
class Craft:
    """One file key and payload nonce; compose headers and chunks freely."""

    file_key: bytes = field(default_factory=lambda: os.urandom(16))
    nonce: bytes = field(default_factory=lambda: os.urandom(16))

    def x25519(self, recipient: bytes, share: bytes | None = None) -> bytes:
        """A correct X25519 stanza to ``recipient`` (or one claiming ``share``)."""
        eph = X25519PrivateKey.generate()
        mine = eph.public_key().public_bytes_raw()
        secret = eph.exchange(X25519PublicKey.from_public_bytes(recipient))
        key = hkdf(secret, mine + recipient, b"age-encryption.org/v1/X25519")
        body = ChaCha20Poly1305(key).encrypt(bytes(12), self.file_key, None)
        return stanza(["X25519", b64(share if share is not None else mine)], body)

    def header(self, *stanzas: bytes) -> bytes:
        """Intro, the stanzas, and a correct MAC line."""
        covered = b"age-encryption.org/v1\n" + b"".join(stanzas) + b"---"
        key = hkdf(self.file_key, b"", b"header")
        return covered + b" " + b64(hmac.digest(key, covered, "sha256")).encode() + b"\n"

    def seal(self, counter: int, data: bytes, final: bool) -> bytes:
        """One payload chunk with any counter and final flag."""
        aead = ChaCha20Poly1305(hkdf(self.file_key, self.nonce, b"payload"))
        return aead.encrypt(counter.to_bytes(11, "big") + bytes([final]), data, None)

    def payload(self, plain: bytes) -> bytes:
        """The nonce and the chunks of ``plain`` as age writes them."""
        pieces = [plain[i : i + CHUNK] for i in range(0, len(plain), CHUNK)] or [b""]
        last = len(pieces) - 1
        return self.nonce + b"".join(self.seal(i, p, i == last) for i, p in enumerate(pieces))
