"""The metrics bundle on media: writing it at the site, opening it at the hub.

A metrics bundle is a directory of exactly two files (bundle format v1, kind
``metrics``)::

    envelope.json   plaintext; signed with the site key: bundle id, kind "metrics",
                    source "site:<id>", site id, sequence, created, expires,
                    window {start, end}, and the size and SHA-256 of payload.age
    payload.age     the MetricsPayload as UTF-8 JSON, age-encrypted to the hub's
                    recipient (stock ``age -d`` reads it)

:func:`open_metrics_bundle` checks, in order, and raises at the first failure:

1. the directory holds exactly those two files, regular and of sane size;
2. the envelope is signed by the key registered for the site it names;
3. it is a metrics bundle from that site, not expired, with one payload part
   of plausible size (:class:`~airlock.bundles.bundle.EnvelopePolicy`);
4. ``payload.age`` has the signed size and SHA-256 (read once; the same bytes
   are decrypted);
5. it decrypts with the hub's identity;
6. the payload is a well-formed ``airlock-metrics/v1`` document naming the
   same site, sequence and window as the envelope.

Sequence (replay and gaps) and the audit checkpoint are checked by the caller
against its database.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import stat
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyrage
from securesystemslib.signer import Key, Signer

from airlock.bundles.atomic import atomic_write_bytes, fsync_dir
from airlock.bundles.bundle._envelope import (
    ENVELOPE_FILE,
    check_direction,
    read_envelope_file,
    sign_envelope,
    unverified_envelope,
)
from airlock.bundles.bundle._envelope import verify_envelope as verify_signed_envelope
from airlock.bundles.bundle._parts import check_parts
from airlock.bundles.bundle._policy import EnvelopePolicy
from airlock.bundles.clock import parse_utc
from airlock.bundles.errors import (
    ConflictError,
    DecryptionError,
    IntegrityError,
    MediaError,
    UnsafeArchiveError,
    UsageError,
)
from airlock.bundles.metrics._model import MetricsPayload
from airlock.bundles.models._envelope import BundleKind, Envelope, PayloadPart, envelope_source

PAYLOAD_FILE = "payload.age"
MAX_PAYLOAD_BYTES = 64 << 20
SIGNATURE_HINT = (
    "the bundle was altered, or was not made with the key registered for the site it "
    "names; keep it for investigation and export the metrics again at the site"
)
PAYLOAD_HINT = (
    "the site signed a payload this hub cannot read: it was made by a faulty or "
    "incompatible Airlock; keep the bundle and have the site export again"
)
DEFAULT_TRANSIT_DAYS = 90
"""How long a metrics bundle stays importable (``metrics.transit_days``)."""


def source_of_site(site_id: str) -> str:
    """The envelope ``source`` of a bundle a site made."""
    return envelope_source(BundleKind.METRICS, site_id)


def payload_bytes(payload: MetricsPayload) -> bytes:
    """The payload's plaintext: sorted, compact UTF-8 JSON."""
    return json.dumps(payload.to_dict(), sort_keys=True, separators=(",", ":")).encode("utf-8")


def write_metrics_bundle(
    out_dir: Path,
    payload: MetricsPayload,
    *,
    signer: Signer,
    recipient: str,
    created: dt.datetime,
    expires: dt.datetime,
    bundle_id: str | None = None,
) -> Envelope:
    """Encrypts ``payload`` to ``recipient``, signs the envelope, and writes the bundle.

    The bundle appears at ``out_dir`` complete or not at all (written next to
    it, then renamed).

    Raises:
        ConflictError: ``out_dir`` exists and is not an empty directory.
        UsageError: ``recipient`` is not an age recipient.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ConflictError(
            f"{out_dir} already exists and is not empty",
            hint="give --out a new directory (a metrics bundle is never written over another)",
        )
    ciphertext = pyrage.encrypt(payload_bytes(payload), [_recipient(recipient)])
    envelope = Envelope(
        bundle_id=bundle_id or str(uuid.uuid4()),
        kind=BundleKind.METRICS,
        source=source_of_site(payload.site_id),
        site_id=payload.site_id,
        sequence=payload.sequence,
        created=created,
        expires=expires,
        encrypted=True,
        parts=(PayloadPart(PAYLOAD_FILE, len(ciphertext), hashlib.sha256(ciphertext).hexdigest()),),
        window=(parse_utc(payload.window_start), parse_utc(payload.window_end)),
    )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = out_dir.parent / f".{out_dir.name}.{uuid.uuid4().hex[:8]}.tmp"
    work.mkdir()
    try:
        atomic_write_bytes(work / PAYLOAD_FILE, ciphertext)
        atomic_write_bytes(work / ENVELOPE_FILE, sign_envelope(envelope, [signer]))
        if out_dir.exists():
            out_dir.rmdir()
        work.rename(out_dir)
        fsync_dir(out_dir.parent)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return envelope


def _recipient(recipient: str) -> Any:
    try:
        return pyrage.x25519.Recipient.from_str(recipient)
    except Exception:
        raise UsageError(
            "the hub's age recipient is not valid",
            hint="import a newer bundle from the hub (it carries the hub's recipient)",
        ) from None


def peek_site(envelope_bytes: bytes) -> str:
    """The site id an (unverified) ``envelope.json`` names, to look up its key.

    The envelope is parsed under the strict schema first, and a bundle that
    travels the other way (a hub's bundle) is refused by name.

    Raises:
        MediaError: not a well-formed envelope.
        UsageError: a hub's bundle (hub → site), not a metrics bundle.
    """
    claimed = unverified_envelope(envelope_bytes)
    check_direction(claimed, (BundleKind.METRICS,))
    return claimed.site_id


def _read_envelope(bundle_dir: Path) -> bytes:
    _check_dir(bundle_dir)
    data = read_envelope_file(bundle_dir)  # lstat first, bounded, never blocks
    peek_site(data)  # a hub's bundle (even a split one) is named as such, before the file rule
    _check_files(bundle_dir)
    return data


def _check_dir(bundle_dir: Path) -> None:
    if not bundle_dir.is_dir():
        raise MediaError(
            f"{bundle_dir} is not a metrics bundle directory",
            hint="pass the directory `airlock spoke export-metrics --out` wrote",
        )


def _check_files(bundle_dir: Path) -> None:
    names = sorted(p.name for p in bundle_dir.iterdir())
    if names != sorted([ENVELOPE_FILE, PAYLOAD_FILE]):
        extra = sorted(set(names) - {ENVELOPE_FILE, PAYLOAD_FILE})
        missing = sorted({ENVELOPE_FILE, PAYLOAD_FILE} - set(names))
        raise UnsafeArchiveError(
            f"a metrics bundle holds exactly {ENVELOPE_FILE} and {PAYLOAD_FILE}"
            + (f"; unexpected: {', '.join(extra)}" if extra else "")
            + (f"; missing: {', '.join(missing)}" if missing else ""),
            hint="copy the bundle directory exactly as the site wrote it",
        )
    mode = os.lstat(bundle_dir / PAYLOAD_FILE).st_mode  # envelope.json: read_envelope_file
    if not stat.S_ISREG(mode):
        raise UnsafeArchiveError(
            f"{PAYLOAD_FILE} in the metrics bundle is not a regular file",
            hint="copy the bundle directory exactly as the site wrote it, as plain files",
        )


def open_metrics_bundle(
    bundle_dir: Path,
    site_key: Callable[[str], Key],
    identity: Any,
    now: dt.datetime,
) -> tuple[Envelope, MetricsPayload]:
    """Verifies and decrypts a metrics bundle (steps 1-6 of the module docstring).

    Args:
        bundle_dir: The bundle directory (untrusted).
        site_key: Returns the signing key registered for a site id; raises
            (e.g. NotFoundError) for a site the caller does not know.
        identity: The hub's age identity.
        now: The caller's time (expiry check).

    Raises:
        MediaError, UnsafeArchiveError: not a well-formed bundle (1).
        UsageError: a hub's bundle (hub → site), not a metrics bundle (1).
        SignatureError: not signed by the site's registered key (2).
        WrongSiteError, FreshnessError: not a metrics bundle of that site, or expired (3).
        IntegrityError: the payload's size or hash differs from the signed one (4).
        DecryptionError: it does not decrypt with ``identity`` (5).
    """
    bundle_dir = Path(bundle_dir)
    data = _read_envelope(bundle_dir)  # 1
    claimed = peek_site(data)  # the same bytes that are verified next
    key = site_key(claimed)
    envelope = verify_signed_envelope(
        data, {key.keyid: key}, 1, SIGNATURE_HINT, kinds=(BundleKind.METRICS,)
    )  # 2
    metrics_policy(claimed).check(envelope, now)  # 3
    ciphertext = _read_payload(bundle_dir, envelope.parts[0])  # 4
    try:  # 5
        plaintext = pyrage.decrypt(ciphertext, [identity])
    except Exception:
        raise DecryptionError(
            "the metrics payload does not decrypt with the hub's identity",
            hint="the bundle was encrypted to another hub; check the site imported this hub's "
            "latest bundle (it carries the hub's recipient)",
        ) from None
    try:  # 6
        payload = MetricsPayload.from_dict(json.loads(plaintext))
    except ValueError:
        raise MediaError("the metrics payload is not JSON", hint=PAYLOAD_HINT) from None
    except MediaError as exc:
        raise MediaError(exc.message, hint=exc.hint or PAYLOAD_HINT) from None
    _check_payload(envelope, payload)
    return envelope, payload


def metrics_policy(site_id: str) -> EnvelopePolicy:
    """The envelope policy of a metrics bundle the site ``site_id`` claims to have made."""
    return EnvelopePolicy(
        kinds=(BundleKind.METRICS,),
        site_id=site_id,
        incoming=False,
        noun="metrics bundle",
        expired_hint="export the metrics again at the site",
        parts=(PAYLOAD_FILE,),
        max_part_bytes=MAX_PAYLOAD_BYTES,
    )


def _read_payload(bundle_dir: Path, part: PayloadPart) -> bytes:
    # One open file (no link, FIFO or device; the signed size and SHA-256 checked on
    # it), read once into memory: what is decrypted below is exactly what is hashed here.
    with check_parts(bundle_dir, [part]) as parts:
        handle = parts.files[0]
        handle.seek(0)
        chunks: list[bytes] = []
        remaining = part.size + 1
        while remaining > 0 and (chunk := handle.read(min(remaining, 1 << 20))):
            chunks.append(chunk)
            remaining -= len(chunk)
    ciphertext = b"".join(chunks)
    if len(ciphertext) != part.size or hashlib.sha256(ciphertext).hexdigest() != part.sha256:
        raise IntegrityError(
            f"{PAYLOAD_FILE} does not match the size and SHA-256 the site signed",
            hint="the medium is damaged or the payload was altered; export again at the site",
        )
    return ciphertext


def _check_payload(envelope: Envelope, payload: MetricsPayload) -> None:
    window = envelope.window
    if (
        payload.site_id != envelope.site_id
        or payload.sequence != envelope.sequence
        or window is None
        or parse_utc(payload.window_start) != window[0]
        or parse_utc(payload.window_end) != window[1]
    ):
        raise IntegrityError(
            "the metrics payload names another site, sequence or window than its envelope",
            hint="the bundle was assembled from parts of different exports; export again",
        )
