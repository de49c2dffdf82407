"""Signing and verifying a bundle's ``envelope.json``.

The envelope is the only plaintext part of a bundle. It is checked before
anything is decrypted::

    {"signed": <Envelope.to_dict()>, "signatures": [{"keyid": …, "sig": …}],
     "roots": {"director": [<1.root.json>, …]}}

The signature is over the canonical JSON of ``signed``, by keys that a trusted
root anchors (for hub bundles: the Director root's envelope keys; for metrics
bundles: the site key registered at the hub). The optional, unsigned ``roots``
member carries the Director root chain (:mod:`airlock.bundles.tuf._root_chain`,
which checks its shape); this module only passes it through.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securesystemslib.exceptions import FormatError, UnverifiedSignatureError
from securesystemslib.signer import Key, Signature, Signer

from airlock.bundles.canonical import canonical_bytes, pretty_bytes
from airlock.bundles.errors import MediaError, SignatureError, UsageError
from airlock.bundles.models._envelope import BundleKind, Envelope
from airlock.bundles.strict import exact_keys, strict_json

ENVELOPE_FILE = "envelope.json"
MAX_ENVELOPE_BYTES = 1 << 20
TOP_LEVEL_KEYS = ("signed", "signatures")
ROOTS_MEMBER = "roots"
OPTIONAL_TOP_LEVEL_KEYS = (ROOTS_MEMBER,)
SIGNATURE_KEYS = ("keyid", "sig")
_READ_CHUNK = 1 << 16
_NOT_A_BUNDLE_HINT = "the medium is damaged or this is not an Airlock bundle"
_PLAIN_FILES_HINT = (
    "copy the bundle onto the medium as plain files (not links, pipes, devices or "
    "folders in place of envelope.json) and import that copy"
)


def sign_envelope(
    envelope: Envelope, signers: list[Signer], roots: dict[str, Any] | None = None
) -> bytes:
    """Returns the bytes of ``envelope.json``: the envelope signed by every signer.

    ``roots`` (``{"director": [root documents]}``) is added unsigned when given.
    """
    payload = canonical_bytes(envelope.to_dict())
    signatures = [signer.sign(payload).to_dict() for signer in signers]
    doc: dict[str, Any] = {"signed": envelope.to_dict(), "signatures": signatures}
    if roots is not None:
        doc[ROOTS_MEMBER] = roots
    return pretty_bytes(doc)


def envelope_roots(data: bytes) -> Any:
    """The raw, unsigned ``roots`` member of ``envelope.json`` bytes (None: absent).

    Raises:
        MediaError: not a well-formed envelope file.
    """
    return parse_envelope_document(data).roots


def _file_type(mode: int) -> str:
    for test, name in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _check_envelope_stat(path: Path, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise MediaError(
            f"{path} is {_file_type(info.st_mode)}, not a regular file", hint=_PLAIN_FILES_HINT
        )
    if info.st_size > MAX_ENVELOPE_BYTES:
        raise MediaError(
            f"{path} has {info.st_size} bytes, more than an envelope may have "
            f"({MAX_ENVELOPE_BYTES})",
            hint="an Airlock envelope is a few KiB: this is not one, or the medium is damaged; "
            "copy the bundle from the original media again",
        )


def read_envelope_file(bundle_dir: Path) -> bytes:
    """Reads ``envelope.json`` of a bundle directory, refusing anything but a small regular file.

    The file is checked with ``lstat`` before it is opened (a symbolic link, a
    directory, a FIFO or a device is refused, and so is a size above
    :data:`MAX_ENVELOPE_BYTES`), opened without following links and without
    blocking (a FIFO swapped in meanwhile cannot hang the caller), checked again
    on the open descriptor, and read with a bound. Memory stays at most
    :data:`MAX_ENVELOPE_BYTES` whatever is on the medium.

    Args:
        bundle_dir: The bundle directory (untrusted).

    Returns:
        The bytes of ``envelope.json`` (still untrusted: verify them).

    Raises:
        MediaError: there is no envelope, it is not a regular file, it is too
            large, it changed while being read, or it cannot be read.
    """
    path = Path(bundle_dir) / ENVELOPE_FILE
    try:
        info = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise MediaError(
            f"{bundle_dir} has no {ENVELOPE_FILE}: not an Airlock bundle",
            hint="point to the bundle directory on the removable medium",
        ) from None
    except OSError as exc:
        raise MediaError(f"cannot read {path}: {exc.strerror}", hint=_NOT_A_BUNDLE_HINT) from None
    _check_envelope_stat(path, info)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a link swapped in after lstat
            raise MediaError(
                f"{path} is a symbolic link, not a regular file", hint=_PLAIN_FILES_HINT
            ) from None
        raise MediaError(f"cannot open {path}: {exc.strerror}", hint=_NOT_A_BUNDLE_HINT) from None
    try:
        opened = os.fstat(fd)
        _check_envelope_stat(path, opened)
        if (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino):
            raise MediaError(
                f"{path} was replaced while it was being read",
                hint="something is changing the medium: import from a copy nothing else writes to",
            )
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_ENVELOPE_BYTES:
            chunk = os.read(fd, min(_READ_CHUNK, MAX_ENVELOPE_BYTES + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise MediaError(f"cannot read {path}: {exc.strerror}", hint=_NOT_A_BUNDLE_HINT) from None
    finally:
        os.close(fd)
    if size > MAX_ENVELOPE_BYTES:
        raise MediaError(
            f"{path} grew past {MAX_ENVELOPE_BYTES} bytes while it was being read",
            hint="something is changing the medium: import from a copy nothing else writes to",
        )
    return b"".join(chunks)


@dataclass(frozen=True)
class EnvelopeDocument:
    """``envelope.json`` split into its parts (nothing verified yet).

    Attributes:
        signed: The signed part, as JSON (checked against the strict schema by
            :meth:`Envelope.from_dict`).
        signatures: The signatures over its canonical form.
        roots: The optional top-level ``roots`` object, unsigned by the
            envelope key and returned untouched for the caller to verify.
    """

    signed: dict[str, Any]
    signatures: list[Signature]
    roots: dict[str, Any] | None = None


def parse_envelope_document(data: bytes) -> EnvelopeDocument:
    """Parses ``envelope.json``: exactly ``signed`` and ``signatures``, and optionally ``roots``.

    Raises:
        MediaError: not a well-formed envelope file (too large, not strict JSON,
            an unknown top-level key, a malformed signature, a signed part that
            has no canonical form).
    """
    if len(data) > MAX_ENVELOPE_BYTES:
        raise MediaError(
            f"envelope.json has {len(data)} bytes, more than an envelope may have "
            f"({MAX_ENVELOPE_BYTES})",
            hint=_NOT_A_BUNDLE_HINT,
        )
    try:
        doc = exact_keys(
            strict_json(data), "envelope.json", TOP_LEVEL_KEYS, OPTIONAL_TOP_LEVEL_KEYS
        )
        signed = doc["signed"]
        if not isinstance(signed, dict):
            raise TypeError("signed is not an object")
        roots = doc.get(ROOTS_MEMBER)
        if roots is not None and not isinstance(roots, dict):
            raise TypeError("roots is not an object")
        if not isinstance(doc["signatures"], list):
            raise TypeError("signatures is not a list")
        signatures = [_signature(s) for s in doc["signatures"]]
        canonical_bytes(signed)  # what gets verified must have a canonical form (no floats)
    except (ValueError, KeyError, TypeError, RecursionError, FormatError) as exc:
        raise MediaError(
            f"envelope.json is not a valid Airlock envelope ({exc})", hint=_NOT_A_BUNDLE_HINT
        ) from None
    return EnvelopeDocument(signed, signatures, roots)


def _signature(value: Any) -> Signature:
    entry = exact_keys(value, "an envelope signature", SIGNATURE_KEYS)
    if not all(isinstance(entry[k], str) for k in SIGNATURE_KEYS):
        raise TypeError("an envelope signature's keyid and sig must be strings")
    return Signature(entry["keyid"], entry["sig"])


def parse_signed_envelope(data: bytes) -> tuple[dict[str, Any], list[Signature]]:
    """Splits ``envelope.json`` bytes into the signed part and its signatures.

    See :func:`parse_envelope_document` (which also returns ``roots``).

    Raises:
        MediaError: not a well-formed envelope file.
    """
    doc = parse_envelope_document(data)
    return doc.signed, doc.signatures


def unverified_envelope(data: bytes) -> Envelope:
    """The envelope ``envelope.json`` claims, parsed strictly but NOT verified.

    Only for choosing which key to verify with and for wording a refusal; never
    act on it.

    Raises:
        MediaError: not a well-formed envelope.
    """
    return Envelope.from_dict(parse_envelope_document(data).signed)


HUB_KINDS = (BundleKind.FULL, BundleKind.DELTA, BundleKind.REVOCATION)
"""The kinds a hub exports to a site (``airlock spoke import`` takes them)."""


def check_direction(envelope: Envelope, expected: Collection[BundleKind]) -> None:
    """Refuses a bundle that travels the other way (a metrics bundle at a spoke, or vice versa).

    Decided from the (unverified) envelope before its signature is checked, so
    the operator is told which command takes the bundle instead of a
    signature failure; the bundle is refused either way.

    Raises:
        UsageError: ``envelope.kind`` is not in ``expected``.
    """
    if envelope.kind in expected:
        return
    if envelope.kind == BundleKind.METRICS:
        raise UsageError(
            "this is a metrics bundle (site → hub): import it at the hub with "
            "`airlock hub import-metrics`",
            hint="a spoke imports the bundles its hub exported (`airlock hub export`); if you "
            "expected one, the medium holds the wrong directory (or an altered bundle)",
        )
    raise UsageError(
        f"this is a {envelope.kind} bundle (hub → site): import it at the site with "
        "`airlock spoke import`",
        hint="`airlock hub import-metrics` takes the metrics bundles a site wrote with "
        "`airlock spoke export-metrics`; if you expected one, the medium holds the wrong "
        "directory (or an altered bundle)",
    )


DEFAULT_SIGNATURE_HINT = (
    "the bundle was altered or was not made by the hub this site trusts; "
    "ask the hub for a fresh export"
)


def verify_envelope(
    data: bytes,
    trusted_keys: dict[str, Key],
    threshold: int,
    hint: str = DEFAULT_SIGNATURE_HINT,
    kinds: Collection[BundleKind] | None = None,
) -> Envelope:
    """Verifies ``envelope.json`` against trusted keys and returns the envelope.

    Args:
        data: The raw bytes of ``envelope.json`` (untrusted).
        trusted_keys: Key id → public key of the keys allowed to sign it.
        threshold: How many distinct trusted keys must have signed.
        hint: What to do when the signature check fails.
        kinds: The bundle kinds the caller takes (None: any).

    Raises:
        MediaError: the file is malformed, or the signed part breaks the strict
            schema (checked before the signatures).
        UsageError: ``kinds`` is given and the bundle is of another kind
            (see :func:`check_direction`).
        SignatureError: fewer than ``threshold`` trusted keys signed it.
    """
    signed, signatures = parse_signed_envelope(data)
    envelope = Envelope.from_dict(signed)
    if kinds is not None:
        check_direction(envelope, kinds)
    payload = canonical_bytes(signed)
    good: set[str] = set()
    for signature in signatures:
        key = trusted_keys.get(signature.keyid)
        if key is None or signature.keyid in good:
            continue
        try:
            key.verify_signature(signature, payload)
        except UnverifiedSignatureError:
            continue
        good.add(signature.keyid)
    if len(good) < threshold:
        raise SignatureError(
            f"the bundle envelope is not signed by a trusted key ({len(good)} of {threshold})",
            hint=hint,
        )
    return envelope
