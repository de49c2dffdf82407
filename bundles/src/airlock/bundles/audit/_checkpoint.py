"""Signed checkpoints of the audit log: C2SP ``tlog-checkpoint`` bodies in C2SP signed notes.

A checkpoint commits to the Merkle tree (:mod:`airlock.bundles.audit._merkle`) of the
first ``size`` audit entries::

    airlock/hub/hub-1.example           <- origin (also the key name)
    1234                                <- tree size, decimal
    3q2+7w...=                          <- base64 root hash (RFC 6962)
                                        <- blank line
    — airlock/hub/hub-1.example AbCd...  <- em dash, key name, base64(key ID || Ed25519 sig)

The key ID is ``SHA-256(key name || 0x0A || 0x01 || 32-byte Ed25519 public
key)[:4]`` (c2sp.org/signed-note), so the notes also open with Go's
``golang.org/x/mod/sumdb/note`` given :func:`verifier_key`. Signing goes
through a securesystemslib ``Signer`` (a key file or an HSM); verifying needs
only the public ``Key``.

This module is the pure format: no database, no files. Writing checkpoints of
a home's log and publishing its key are in :mod:`airlock.bundles.audit._checkpoint_store`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from securesystemslib.exceptions import UnverifiedSignatureError
from securesystemslib.signer import Key, Signature, Signer, SSlibKey

from airlock.bundles.errors import MediaError, SignatureError

SIGNATURE_PREFIX = "\u2014 "  # em dash, space
ED25519_TYPE = b"\x01"
MAX_SIGNATURES = 100
MAX_NOTE_BYTES = 1 << 20


@dataclass(frozen=True)
class Checkpoint:
    """A signed tree head: ``size`` entries of ``origin``'s log have Merkle root ``root``."""

    origin: str
    size: int
    root: bytes
    note: str = ""
    """The whole signed note (body, blank line, signature lines); empty before signing."""

    @property
    def body(self) -> str:
        """The C2SP tlog-checkpoint note text (what is signed)."""
        return checkpoint_body(self.origin, self.size, self.root)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (root in hex and base64)."""
        return {
            "origin": self.origin,
            "size": self.size,
            "root": self.root.hex(),
            "root_base64": base64.b64encode(self.root).decode("ascii"),
            "note": self.note,
        }


def checkpoint_body(origin: str, size: int, root: bytes) -> str:
    """The note text ``<origin>\\n<size>\\n<base64 root>\\n``.

    Raises:
        ValueError: an empty origin or one with spaces or ``+``, a negative size,
            or a root that is not 32 bytes.
    """
    _check_name(origin)
    if size < 0 or len(root) != 32:
        raise ValueError("a checkpoint needs a size >= 0 and a 32-byte root hash")
    return f"{origin}\n{size}\n{base64.b64encode(root).decode('ascii')}\n"


def parse_checkpoint_body(text: str) -> Checkpoint:
    """Parses a checkpoint note text (extension lines are allowed and ignored).

    Raises:
        MediaError: not a checkpoint body.
    """
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "" or any(line == "" for line in lines[:-1]):
        raise MediaError("the checkpoint text is not three or more non-empty lines")
    origin, size_text, root_text = lines[0], lines[1], lines[2]
    if not size_text.isdigit() or (size_text.startswith("0") and size_text != "0"):
        raise MediaError(f"the checkpoint tree size {size_text!r} is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error:
        raise MediaError("the checkpoint root hash is not base64") from None
    if len(root) != 32 or base64.b64encode(root).decode("ascii") != root_text:
        raise MediaError("the checkpoint root hash is not a canonical 32-byte base64 value")
    return Checkpoint(origin=origin, size=int(size_text), root=root)


def _check_name(name: str) -> None:
    if not name or "+" in name or any(c.isspace() for c in name):
        raise ValueError(f"a key name or origin must be non-empty, without spaces or '+': {name!r}")


def ed25519_public_bytes(key: Key) -> bytes:
    """The 32 raw bytes of an Ed25519 public key.

    Raises:
        SignatureError: ``key`` is not an Ed25519 key.
    """
    if not isinstance(key, SSlibKey) or key.keytype != "ed25519" or key.scheme != "ed25519":
        raise SignatureError(
            f"key {key.keyid[:16]} is not an Ed25519 key; signed notes need one",
            hint="use the home's audit checkpoint key (audit-checkpoint-key.pem)",
        )
    raw = bytes.fromhex(str(key.keyval["public"]))
    if len(raw) != 32:
        raise SignatureError(f"key {key.keyid[:16]} is not a 32-byte Ed25519 key")
    return raw


def note_key_id(name: str, key: Key) -> bytes:
    """The 4-byte signed-note key ID of Ed25519 ``key`` under ``name``."""
    material = name.encode("utf-8") + b"\n" + ED25519_TYPE + ed25519_public_bytes(key)
    return hashlib.sha256(material).digest()[:4]


def verifier_key(name: str, key: Key) -> str:
    """The note verifier key string ``<name>+<hex key ID>+<base64(0x01 || key)>`` (Go's vkey)."""
    encoded = base64.b64encode(ED25519_TYPE + ed25519_public_bytes(key)).decode("ascii")
    return f"{name}+{note_key_id(name, key).hex()}+{encoded}"


def sign_note(text: str, name: str, signer: Signer) -> str:
    """Signs ``text`` as a C2SP signed note with one Ed25519 signature line.

    Raises:
        ValueError: the text is empty, lacks its final newline, or has control
            characters; the name has spaces or ``+``.
        SignatureError: the signer's key is not Ed25519.
    """
    _check_name(name)
    _check_text(text)
    key_id = note_key_id(name, signer.public_key)
    signature = bytes.fromhex(signer.sign(text.encode("utf-8")).signature)
    encoded = base64.b64encode(key_id + signature).decode("ascii")
    return f"{text}\n{SIGNATURE_PREFIX}{name} {encoded}\n"


def _check_text(text: str) -> None:
    if not text.endswith("\n") or any(ord(c) < 0x20 and c != "\n" for c in text):
        raise ValueError("note text must end with a newline and have no control characters")


def open_note(note: str, keys: Mapping[str, Key]) -> str:
    """Verifies a signed note and returns its text.

    ``keys`` maps key names to Ed25519 keys. A signature line whose name and key
    ID match a known key must verify; lines of unknown keys are ignored; at least
    one known key must have signed. With a name of ``""``, the key is accepted
    under whatever name a signature line gives (for a bare PEM key: the key ID,
    computed from that name and the key, must still match).

    Raises:
        MediaError: not a signed note.
        SignatureError: no known key signed it, or a known key's signature is bad.
    """
    text, lines = split_note(note)
    verified = False
    for line in lines:
        name, key_id, signature = parse_signature_line(line)
        key = keys.get(name, keys.get(""))
        if key is None or note_key_id(name, key) != key_id:
            continue
        try:
            key.verify_signature(Signature(key.keyid, signature.hex()), text.encode("utf-8"))
        except UnverifiedSignatureError:
            raise SignatureError(
                f"the signature of {name!r} on the checkpoint does not verify",
                hint="the checkpoint was altered or signed by another key; do not trust it",
            ) from None
        verified = True
    if not verified:
        raise SignatureError(
            "the checkpoint is not signed by the expected key",
            hint="check you have the right audit-checkpoint-key.pem for this hub or site",
        )
    return text


def split_note(note: str) -> tuple[str, list[str]]:
    """Splits a signed note into its text and its signature lines (C2SP signed-note).

    The text keeps its final newline; the signature lines are the lines after the
    last blank line, without the note's final newline. Nothing is verified.

    Raises:
        MediaError: too large, control characters, no final newline, no blank line
            before the signatures, no text, or no (or too many) signature lines.
    """
    if len(note.encode("utf-8")) > MAX_NOTE_BYTES:
        raise MediaError("the signed note is too large")
    if any(ord(c) < 0x20 and c != "\n" for c in note) or not note.endswith("\n"):
        raise MediaError("not a signed note: control characters or no final newline")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise MediaError("not a signed note: no blank line before the signatures")
    text, lines = note[: cut + 1], note[cut + 2 : -1].split("\n")
    if not text.strip("\n") or not lines or len(lines) > MAX_SIGNATURES:
        raise MediaError("not a signed note: no text, or no (or too many) signature lines")
    return text, lines


def parse_signature_line(line: str) -> tuple[str, bytes, bytes]:
    """Parses one signature line (``— <name> <base64(key id || signature)>``).

    Returns:
        The key name, the 4-byte key id and the signature bytes (not verified).

    Raises:
        MediaError: no em dash prefix, bad base64, or a malformed line.
    """
    if not line.startswith(SIGNATURE_PREFIX):
        raise MediaError("not a signed note: a signature line does not start with an em dash")
    name, _, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise MediaError(f"the signature of {name!r} is not base64") from None
    if not name or " " in encoded or len(raw) < 5:
        raise MediaError("not a signed note: malformed signature line")
    return name, raw[:4], raw[4:]


def sign_checkpoint(origin: str, size: int, root: bytes, signer: Signer) -> Checkpoint:
    """Makes the signed checkpoint of a tree (key name = origin, as C2SP recommends)."""
    body = checkpoint_body(origin, size, root)
    return Checkpoint(origin, size, root, sign_note(body, origin, signer))


def verify_checkpoint(note: str, keys: Mapping[str, Key]) -> Checkpoint:
    """Verifies a signed checkpoint note (see :func:`open_note`) and parses its body.

    Raises:
        MediaError: not a signed checkpoint.
        SignatureError: not validly signed by a key in ``keys``.
    """
    parsed = parse_checkpoint_body(open_note(note, keys))
    return Checkpoint(parsed.origin, parsed.size, parsed.root, note)


def read_checkpoint(note: str) -> Checkpoint:
    """Parses a signed checkpoint note *without* checking its signature.

    Raises:
        MediaError: not a signed checkpoint.
    """
    text, lines = split_note(note)
    for line in lines:
        parse_signature_line(line)
    parsed = parse_checkpoint_body(text)
    return Checkpoint(parsed.origin, parsed.size, parsed.root, note)
