"""Signed import receipts: what a site verified when it imported a bundle, provable later.

Every successful ``airlock spoke import`` writes a receipt into the details of
its ``spoke.import`` audit entry (and, with ``--receipt FILE``, into a file a
security officer can keep). It has the envelope's shape::

    {"signed": {"format": "airlock-import-receipt/1", "site_id": …, "bundle_id": …,
                "sequence": …, "kind": …, "format_version": 1|2,
                "envelope_sha256": …, "airlock_version": …, "imported_at": "…Z",
                "volumes": {"read": […], "rebuilt": […], "resumed": […]},
                "files": [{"sha256", "length", "index_sha256", "chunks"}, …],
                "keys": {"envelope_keyids": […], "director_root_version": n,
                         "image_root_version": n},
                "staged": ["name@version", …]},
     "signatures": [{"keyid": …, "sig": …}]}

The signature is the site's Ed25519 key over the canonical JSON of ``signed``
(the key the hub registered from ``site-identity.json``). A format-1 import
lists its payload parts as the volumes read and its files without a chunk
index (``index_sha256`` and ``chunks`` are null: each file was checked whole).

:func:`verify_receipt` takes bytes and a key, does no I/O, and returns the
parsed receipt or raises.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from securesystemslib.exceptions import FormatError, UnverifiedSignatureError
from securesystemslib.signer import Key, Signature, Signer

from airlock.bundles.canonical import canonical_bytes, pretty_bytes
from airlock.bundles.clock import parse_utc, utc_iso
from airlock.bundles.errors import MediaError, SignatureError, WrongSiteError
from airlock.bundles.models import BUNDLE_ID_PATTERN, SHA256_PATTERN, SITE_PATTERN
from airlock.bundles.strict import exact_keys, get_int, get_str, get_utc, strict_json

RECEIPT_FORMAT = "airlock-import-receipt/1"
MAX_RECEIPT_BYTES = 64 << 20
"""A receipt lists one line per file: far below this even for thousands of files."""
_VOLUME_LISTS = ("read", "rebuilt", "resumed")
_NOT_A_RECEIPT = "give the receipt file the import wrote (`airlock spoke import --receipt FILE`)"
_FORGED_HINT = (
    "the receipt was altered after the site signed it, or another key signed it: do not rely "
    "on it; compare with the site's audit log (`airlock audit query --action spoke.import`)"
)


@dataclass(frozen=True)
class ReceiptFile:
    """One file the import checked: its signed hash and length, and its chunk index (format 2)."""

    sha256: str
    length: int
    index_sha256: str | None = None
    """SHA-256 of the chunk index checked against the signed binding (None: format 1)."""
    chunks: int | None = None
    """How many chunks were checked against that index (None: the file was checked whole)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "sha256": self.sha256,
            "length": self.length,
            "index_sha256": self.index_sha256,
            "chunks": self.chunks,
        }

    @classmethod
    def from_dict(cls, data: Any) -> ReceiptFile:
        """Parses :meth:`to_dict` output strictly (TypeError/ValueError)."""
        exact_keys(data, "a receipt file", ("sha256", "length", "index_sha256", "chunks"))
        index = data["index_sha256"]
        chunks = data["chunks"]
        if (index is None) != (chunks is None):
            raise ValueError("index_sha256 and chunks are both set or both null")
        found = cls(
            sha256=get_str(data, "sha256"),
            length=get_int(data, "length"),
            index_sha256=get_str(data, "index_sha256") if index is not None else None,
            chunks=get_int(data, "chunks") if chunks is not None else None,
        )
        for digest in (found.sha256, found.index_sha256):
            if digest is not None and not SHA256_PATTERN.fullmatch(digest):
                raise ValueError("a file's hashes must be 64 lower-case hex digits")
        return found


@dataclass(frozen=True)
class ImportReceipt:
    """The signed part of an import receipt (see the module docstring)."""

    site_id: str
    bundle_id: str
    sequence: int
    kind: str
    format_version: int
    envelope_sha256: str
    airlock_version: str
    imported_at: dt.datetime
    volumes: dict[str, tuple[str, ...]]
    """``read`` (verified from the media in this run), ``rebuilt`` (from parity),
    ``resumed`` (verified by an earlier, interrupted run): file names."""
    files: tuple[ReceiptFile, ...]
    envelope_keyids: tuple[str, ...]
    director_root_version: int
    image_root_version: int
    staged: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what the site signs, in canonical JSON)."""
        return {
            "format": RECEIPT_FORMAT,
            "site_id": self.site_id,
            "bundle_id": self.bundle_id,
            "sequence": self.sequence,
            "kind": self.kind,
            "format_version": self.format_version,
            "envelope_sha256": self.envelope_sha256,
            "airlock_version": self.airlock_version,
            "imported_at": utc_iso(self.imported_at),
            "volumes": {name: list(self.volumes.get(name, ())) for name in _VOLUME_LISTS},
            "files": [f.to_dict() for f in self.files],
            "keys": {
                "envelope_keyids": list(self.envelope_keyids),
                "director_root_version": self.director_root_version,
                "image_root_version": self.image_root_version,
            },
            "staged": list(self.staged),
        }

    @classmethod
    def from_dict(cls, data: Any) -> ImportReceipt:
        """Parses :meth:`to_dict` output strictly.

        Raises:
            MediaError: not a well-formed receipt (the message names the field).
        """
        try:
            doc = exact_keys(
                data,
                "the receipt",
                (
                    "format",
                    "site_id",
                    "bundle_id",
                    "sequence",
                    "kind",
                    "format_version",
                    "envelope_sha256",
                    "airlock_version",
                    "imported_at",
                    "volumes",
                    "files",
                    "keys",
                    "staged",
                ),
            )
            if get_str(doc, "format") != RECEIPT_FORMAT:
                raise ValueError(f"format is not {RECEIPT_FORMAT!r}")
            volumes = exact_keys(doc["volumes"], "volumes", _VOLUME_LISTS)
            keys = exact_keys(
                doc["keys"],
                "keys",
                ("envelope_keyids", "director_root_version", "image_root_version"),
            )
            receipt = cls(
                site_id=get_str(doc, "site_id"),
                bundle_id=get_str(doc, "bundle_id"),
                sequence=get_int(doc, "sequence", low=1),
                kind=get_str(doc, "kind"),
                format_version=get_int(doc, "format_version", low=1),
                envelope_sha256=get_str(doc, "envelope_sha256"),
                airlock_version=get_str(doc, "airlock_version"),
                imported_at=parse_utc(get_utc(doc, "imported_at")),
                volumes={name: _strings(volumes[name], name) for name in _VOLUME_LISTS},
                files=tuple(ReceiptFile.from_dict(f) for f in _list(doc["files"], "files")),
                envelope_keyids=_strings(keys["envelope_keyids"], "envelope_keyids"),
                director_root_version=get_int(keys, "director_root_version", low=1),
                image_root_version=get_int(keys, "image_root_version", low=1),
                staged=_strings(doc["staged"], "staged"),
            )
            if not SITE_PATTERN.fullmatch(receipt.site_id):
                raise ValueError("site_id is not a site id")
            if not BUNDLE_ID_PATTERN.fullmatch(receipt.bundle_id):
                raise ValueError("bundle_id is not a bundle id")
            if not SHA256_PATTERN.fullmatch(receipt.envelope_sha256):
                raise ValueError("envelope_sha256 is not a SHA-256")
            return receipt
        except (KeyError, TypeError, ValueError, RecursionError) as exc:
            raise MediaError(f"not a valid import receipt: {exc}", hint=_NOT_A_RECEIPT) from None

    def summary(self) -> dict[str, Any]:
        """What the receipt attests, in short (for the auditor's terminal)."""
        checked_chunks = sum(f.chunks or 0 for f in self.files)
        return {
            "site_id": self.site_id,
            "bundle_id": self.bundle_id,
            "sequence": self.sequence,
            "kind": self.kind,
            "format_version": self.format_version,
            "imported_at": utc_iso(self.imported_at),
            "airlock_version": self.airlock_version,
            "files": len(self.files),
            "bytes": sum(f.length for f in self.files),
            "chunks": checked_chunks,
            "volumes": {name: len(self.volumes[name]) for name in _VOLUME_LISTS},
            "staged": list(self.staged),
        }


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"{what} is not a list")
    return value


def _strings(value: Any, what: str) -> tuple[str, ...]:
    items = _list(value, what)
    if not all(isinstance(item, str) for item in items):
        raise TypeError(f"{what} must list strings")
    return tuple(items)


def _signature(value: Any) -> Signature:
    entry = exact_keys(value, "a receipt signature", ("keyid", "sig"))
    return Signature(get_str(entry, "keyid"), get_str(entry, "sig"))


def sign_receipt(receipt: ImportReceipt, signer: Signer) -> dict[str, Any]:
    """The signed receipt document (``signed`` + ``signatures``), JSON-ready."""
    signed = receipt.to_dict()
    signature = signer.sign(canonical_bytes(signed))
    return {"signed": signed, "signatures": [signature.to_dict()]}


def receipt_bytes(document: dict[str, Any]) -> bytes:
    """The bytes of a receipt file (indented JSON; only ``signed``'s canonical form is signed)."""
    return pretty_bytes(document)


def verify_receipt(data: bytes, key: Key, site_id: str | None = None) -> ImportReceipt:
    """Verifies a receipt file against the site's public key and returns what it attests.

    Args:
        data: The receipt file's bytes (untrusted).
        key: The site's Ed25519 public key (from its ``site-identity.json``).
        site_id: The site that key belongs to (when known): the receipt must name it.

    Raises:
        MediaError: not a well-formed receipt.
        SignatureError: no valid signature by ``key`` over the signed part (altered,
            or signed by another key).
        WrongSiteError: validly signed, but it names another site than ``site_id``.
    """
    if len(data) > MAX_RECEIPT_BYTES:
        raise MediaError(f"the receipt has {len(data)} bytes: too large", hint=_NOT_A_RECEIPT)
    try:
        doc = exact_keys(strict_json(data), "the receipt file", ("signed", "signatures"))
        signatures = [_signature(s) for s in _list(doc["signatures"], "signatures")]
        payload = canonical_bytes(doc["signed"])
    except (KeyError, TypeError, ValueError, RecursionError, FormatError) as exc:
        raise MediaError(f"not a valid import receipt: {exc}", hint=_NOT_A_RECEIPT) from None
    good = False
    for signature in signatures:
        if signature.keyid != key.keyid:
            continue
        try:
            key.verify_signature(signature, payload)
        except UnverifiedSignatureError:
            continue
        good = True
    if not good:
        raise SignatureError(
            f"the receipt is not signed by the site key {key.keyid[:16]}…", hint=_FORGED_HINT
        )
    receipt = ImportReceipt.from_dict(doc["signed"])
    if site_id is not None and receipt.site_id != site_id:
        raise WrongSiteError(
            f"the receipt names site {receipt.site_id}, but the key is site {site_id}'s",
            hint="verify it with the identity of the site the receipt names",
        )
    return receipt
