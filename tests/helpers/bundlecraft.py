"""Building bad bundles honestly: real hub keys, real age, real TUF — only the content is wrong.

An attacker on the medium can edit files but holds no hub key. Tests also
need bundles that only a compromised or buggy hub could make (a validly
signed envelope around a malicious archive, Director metadata re-signed with
the hub's online keys); those are built here from the hub's own plan and
signers, with :func:`airlock.hub.export.write_bundle` in either format
(``media``: format 2 by default, as the hub exports) or, for format-1
archives the writer refuses to make, with ``tarfile`` + ``pyrage`` +
``sign_envelope``. Format-2 bundles with damaged volumes or a lying per-site
part are :mod:`helpers.v2craft`'s.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
import tarfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pyrage
from securesystemslib.signer import Key, Signer
from tuf.api.metadata import Metadata, Root, Snapshot, Targets, Timestamp

from airlock.bundles import tuf as tufrepo
from airlock.bundles.bundle import ENVELOPE_FILE, hash_file, sign_envelope
from airlock.bundles.canonical import canonical_bytes, pretty_bytes
from airlock.bundles.chunks import index_file
from airlock.bundles.models import Envelope, PayloadPart
from airlock.ceremony.minimal import CeremonyResult
from airlock.ceremony.roots import next_root, sign_new_root
from airlock.hub import repos as signing
from airlock.hub.context import HubContext, online_signer
from airlock.hub.export import ExportPlan, MediaOptions, MetadataList, director_roots, write_bundle
from airlock.hub.repos import meta_file
from helpers.hubenv import OFFICER_PASSPHRASE

Entry = tuple[tarfile.TarInfo, bytes | None]
"""One archive entry: its header and, for regular files, its data."""


def envelope_signer(hub: HubContext) -> Signer:
    """The hub's real envelope key."""
    return online_signer(hub, signing.ENVELOPE)


FORMAT_1 = MediaOptions(format_version=1)
"""A format-1 bundle: one ``payload.age`` (what spokes of the previous release read)."""
FORMAT_2 = MediaOptions()
"""A format-2 bundle as the hub exports it by default: ``site.age`` and one data volume."""


def forge_bundle(
    hub: HubContext,
    plan: ExportPlan,
    out: Path,
    *,
    media: MediaOptions = FORMAT_2,
    **overrides: Any,
) -> Envelope:
    """Writes ``plan`` as a bundle with ``write_bundle`` (no hub state changes).

    Every field defaults to the plan's (the bundle id too, so the envelope
    states what the plan's Director timestamp signed, and the chunk indexes
    its Director targets bind), signed with the real envelope key;
    ``overrides`` replaces any of them (``metadata``, ``signers``,
    ``site_id``, …). ``media`` chooses the format (and volumes, parity); a
    blob the plan does not carry gets its true chunk index (one no Director
    target binds, unless the forged metadata does).
    """
    fields: dict[str, Any] = {
        "site_id": plan.site_id,
        "sequence": plan.sequence,
        "created": plan.created,
        "expires": plan.expires,
        "metadata": plan.metadata,
        "blobs": plan.blobs,
        "recipients": plan.recipients,
        "signers": [envelope_signer(hub)],
        "kind": plan.kind,
        "bundle_id": plan.bundle_id,
        "omitted": plan.omitted,
        "media": media,
        "indexes": plan.indexes,
    }
    fields.update(overrides)
    known = fields["indexes"]
    fields["indexes"] = {
        b.sha256: known.get(b.sha256) or index_file(Path(b.path), b.sha256, b.length)
        for b in fields["blobs"]
    }
    return write_bundle(out, **fields)


# --- archives the payload writer would refuse to make -------------------------------------------


def regular(name: str, data: bytes) -> Entry:
    """A regular file entry."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    return info, data


def link(name: str, target: str, kind: bytes) -> Entry:
    """A symbolic (``tarfile.SYMTYPE``) or hard (``tarfile.LNKTYPE``) link entry."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def metadata_entries(plan: ExportPlan) -> list[Entry]:
    """The plan's metadata files, in payload order."""
    return [regular(name, data) for name, data in plan.metadata]


def blob_entries(plan: ExportPlan) -> list[Entry]:
    """The plan's blobs, named by their SHA-256 as the format requires."""
    return [
        regular(tufrepo.archive_blob_name(b.sha256), Path(b.path).read_bytes()) for b in plan.blobs
    ]


def tar_bytes(entries: Iterable[Entry]) -> bytes:
    """A POSIX pax tar of ``entries``, in order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def forge_raw_bundle(
    hub: HubContext,
    plan: ExportPlan,
    out: Path,
    entries: Sequence[Entry],
    recipients: list[str] | None = None,
) -> Envelope:
    """A format-1 bundle whose payload is exactly ``entries``: age-encrypted, signed by the hub.

    This is what a compromised hub (or one with a bug) could ship: only the
    strict unpacker stands between it and the site.
    """
    out.mkdir(parents=True)
    payload = out / "payload.age"
    parsed = [pyrage.x25519.Recipient.from_str(r) for r in recipients or plan.recipients or []]
    payload.write_bytes(pyrage.encrypt(tar_bytes(entries), parsed))
    size, digest = hash_file(payload)
    envelope = Envelope(
        bundle_id=plan.bundle_id,
        kind=plan.kind,
        source="hub",
        site_id=plan.site_id,
        sequence=plan.sequence,
        created=plan.created,
        expires=plan.expires,
        encrypted=True,
        parts=(PayloadPart(name=payload.name, size=size, sha256=digest),),
        omitted=plan.omitted,
    )
    roots = director_roots(plan.metadata)
    (out / ENVELOPE_FILE).write_bytes(sign_envelope(envelope, [envelope_signer(hub)], roots))
    return envelope


# --- editing a bundle on the medium -------------------------------------------------------------


def edit_envelope(bundle: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Edits ``envelope.json`` in place (``edit`` gets the whole document), not re-signing it."""
    path = bundle / ENVELOPE_FILE
    doc = json.loads(path.read_bytes())
    edit(doc)
    path.write_bytes(pretty_bytes(doc))


def resign_envelope(bundle: Path, signers: list[Signer], **changes: Any) -> Envelope:
    """Signs the envelope again over the files as they now are on the medium.

    The sizes and SHA-256 of the payload parts (format 1), or of the per-site
    part and the parity volumes (format 2), are taken from the files in
    ``bundle``. ``changes`` replaces envelope fields (what a holder of the
    envelope key alone could claim); the unsigned ``roots`` are kept.
    """
    path = bundle / ENVELOPE_FILE
    doc = json.loads(path.read_bytes())
    envelope = Envelope.from_dict(doc["signed"])
    parts = tuple(PayloadPart(p.name, *hash_file(bundle / p.name)) for p in envelope.parts)
    if envelope.site_part is not None:
        name = envelope.site_part.name
        volumes = tuple(
            dataclasses.replace(v, sha256=hash_file(bundle / v.name)[1]) if v.sha256 else v
            for v in envelope.volumes
        )
        envelope = dataclasses.replace(
            envelope, site_part=PayloadPart(name, *hash_file(bundle / name)), volumes=volumes
        )
    envelope = dataclasses.replace(envelope, parts=parts, **changes)
    path.write_bytes(sign_envelope(envelope, signers, doc.get("roots")))
    return envelope


def resign_signed(
    bundle: Path, signers: list[Signer], edit: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """Edits the signed part of ``envelope.json`` as raw JSON and signs it again.

    Unlike :func:`resign_envelope` nothing goes through :class:`Envelope`, so the
    signed part can hold what the writer never would (unknown fields, wrong types,
    huge numbers): what a holder of the envelope key could sign.
    """
    path = bundle / ENVELOPE_FILE
    doc = json.loads(path.read_bytes())
    edit(doc["signed"])
    payload = canonical_bytes(doc["signed"])
    doc["signatures"] = [signer.sign(payload).to_dict() for signer in signers]
    path.write_bytes(pretty_bytes(doc))
    return dict(doc["signed"])


def flip_byte(path: Path, offset: int) -> None:
    """Flips the lowest bit of the byte at ``offset`` (negative counts from the end)."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


_BASE64_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def replace_base64_char(path: Path, offset: int) -> None:
    """Replaces the base64 character at ``offset`` with another valid one.

    Flipping a bit of a base64 character can yield a character outside the
    alphabet, which age reports as a malformed header rather than as a key
    that does not match: this damage always stays inside the alphabet. Every
    character of the alphabet (``+`` and ``/`` too) is replaced by another one,
    so the decoded bytes always change.
    """
    data = bytearray(path.read_bytes())
    assert data[offset] in _BASE64_ALPHABET, "the offset must point into a base64 field"
    data[offset] = ord("B") if data[offset] == ord("A") else ord("A")
    path.write_bytes(bytes(data))


# --- metadata a compromised hub key could sign --------------------------------------------------


def _entry_name(metadata: MetadataList, pattern: str) -> str:
    [name] = [n for n, _ in metadata if re.fullmatch(pattern, n)]
    return name


def resign_director(
    hub: HubContext, metadata: MetadataList, edit: Callable[[Targets], None]
) -> MetadataList:
    """Edits the Director targets of a plan and re-signs targets, snapshot and timestamp.

    Signed with the hub's real online Director keys, so only the spoke's own
    checks (site id, agreement with the Image repository) can catch the edit.
    """
    entries = dict(metadata)
    targets_name = _entry_name(metadata, r"metadata/director/\d+\.targets\.json")
    snapshot_name = _entry_name(metadata, r"metadata/director/\d+\.snapshot\.json")
    timestamp_name = "metadata/director/timestamp.json"
    targets = Metadata[Targets].from_bytes(entries[targets_name])
    edit(targets.signed)
    tufrepo.sign_with(targets, [online_signer(hub, signing.DIRECTOR_TARGETS)])
    snapshot = Metadata[Snapshot].from_bytes(entries[snapshot_name])
    snapshot.signed.meta["targets.json"] = meta_file(targets)
    tufrepo.sign_with(snapshot, [online_signer(hub, signing.DIRECTOR_SNAPSHOT)])
    timestamp = Metadata[Timestamp].from_bytes(entries[timestamp_name])
    timestamp.signed.snapshot_meta = meta_file(snapshot)
    tufrepo.sign_with(timestamp, [online_signer(hub, signing.DIRECTOR_TIMESTAMP)])
    entries[targets_name] = tufrepo.to_bytes(targets)
    entries[snapshot_name] = tufrepo.to_bytes(snapshot)
    entries[timestamp_name] = tufrepo.to_bytes(timestamp)
    return list(entries.items())


def resign_bundle_claims(hub: HubContext, metadata: MetadataList, **claims: Any) -> MetadataList:
    """Changes the Director timestamp's ``x-airlock-bundle`` claims and re-signs it.

    Signed with the hub's real ``director-timestamp`` key: what a thief of the
    online keys (not only of the envelope key) could make. ``claims`` replace
    claims by name, in their envelope form (``created`` as ``utc_iso``).
    """
    entries = dict(metadata)
    name = "metadata/director/timestamp.json"
    timestamp = Metadata[Timestamp].from_bytes(entries[name])
    fields = timestamp.signed.unrecognized_fields
    fields[tufrepo.BUNDLE_FIELD] = {**fields[tufrepo.BUNDLE_FIELD], **claims}
    tufrepo.sign_with(timestamp, [online_signer(hub, signing.DIRECTOR_TIMESTAMP)])
    entries[name] = tufrepo.to_bytes(timestamp)
    return list(entries.items())


def resign_director_snapshot(
    hub: HubContext, metadata: MetadataList, edit: Callable[[Snapshot], None]
) -> MetadataList:
    """Edits the Director snapshot of a plan and re-signs it and the timestamp.

    Signed with the hub's real online Director keys: what a stolen snapshot key
    could ship. Only the TUF client's own checks of the repository stand in the way.
    """
    entries = dict(metadata)
    snapshot_name = _entry_name(metadata, r"metadata/director/\d+\.snapshot\.json")
    timestamp_name = "metadata/director/timestamp.json"
    snapshot = Metadata[Snapshot].from_bytes(entries[snapshot_name])
    edit(snapshot.signed)
    tufrepo.sign_with(snapshot, [online_signer(hub, signing.DIRECTOR_SNAPSHOT)])
    timestamp = Metadata[Timestamp].from_bytes(entries[timestamp_name])
    timestamp.signed.snapshot_meta = meta_file(snapshot)
    tufrepo.sign_with(timestamp, [online_signer(hub, signing.DIRECTOR_TIMESTAMP)])
    entries[snapshot_name] = tufrepo.to_bytes(snapshot)
    entries[timestamp_name] = tufrepo.to_bytes(timestamp)
    return list(entries.items())


def resign_image_role(
    hub: HubContext,
    metadata: MetadataList,
    role: str,
    signers: Sequence[Signer],
    edit: Callable[[Targets], None] | None = None,
) -> MetadataList:
    """Edits a delegated Image role of a plan and signs it with ``signers``.

    The Image snapshot and timestamp are re-signed with the hub's real online
    keys to match. The role keeps its version, so the snapshot names the same file; only the
    delegation (which keys may sign the role, which paths it may sign) can
    catch it — e.g. one tenant's key signing another tenant's role.
    """
    entries = dict(metadata)
    role_name = _entry_name(metadata, rf"metadata/image/\d+\.{re.escape(role)}\.json")
    snapshot_name = _entry_name(metadata, r"metadata/image/\d+\.snapshot\.json")
    timestamp_name = "metadata/image/timestamp.json"
    md = Metadata[Targets].from_bytes(entries[role_name])
    if edit is not None:
        edit(md.signed)
    tufrepo.sign_with(md, list(signers))
    snapshot = Metadata[Snapshot].from_bytes(entries[snapshot_name])
    snapshot.signed.meta[f"{role}.json"] = meta_file(md)
    tufrepo.sign_with(snapshot, [online_signer(hub, signing.IMAGE_SNAPSHOT)])
    timestamp = Metadata[Timestamp].from_bytes(entries[timestamp_name])
    timestamp.signed.snapshot_meta = meta_file(snapshot)
    tufrepo.sign_with(timestamp, [online_signer(hub, signing.IMAGE_TIMESTAMP)])
    entries[role_name] = tufrepo.to_bytes(md)
    entries[snapshot_name] = tufrepo.to_bytes(snapshot)
    entries[timestamp_name] = tufrepo.to_bytes(timestamp)
    return list(entries.items())


def director_part(metadata: MetadataList) -> MetadataList:
    """The Director entries of a metadata list."""
    return [(n, d) for n, d in metadata if n.startswith("metadata/director/")]


def image_part(metadata: MetadataList) -> MetadataList:
    """The Image entries of a metadata list."""
    return [(n, d) for n, d in metadata if n.startswith("metadata/image/")]


def with_next_root(metadata: MetadataList, repository: str, root: bytes) -> MetadataList:
    """Adds ``root`` (version N+1) after the last root of ``repository`` in the list."""
    md = Metadata[Root].from_bytes(root)
    prefix = f"metadata/{repository}/"
    last = max(
        i for i, (n, _) in enumerate(metadata) if re.fullmatch(rf"{prefix}\d+\.root\.json", n)
    )
    name = f"{prefix}{tufrepo.metadata_filename(Root.type, md.signed.version)}"
    return [*metadata[: last + 1], (name, root), *metadata[last + 1 :]]


def officer_secrets(_name: str) -> str:
    """The officers' passphrase (the ceremony's offline keys)."""
    return OFFICER_PASSPHRASE


def rotated_root(
    ceremony: CeremonyResult,
    repository: str,
    signed_by: Sequence[str],
    *,
    revoke: Sequence[str] = (),
    add: Sequence[Key] = (),
    extra_signers: Sequence[Signer] = (),
) -> bytes:
    """Root version 2 of ``repository``, made and signed as a rotation ceremony would.

    Args:
        ceremony: The ceremony whose version-1 root this follows.
        repository: ``image`` or ``director``.
        signed_by: Names of the ceremony's offline keys that sign it.
        revoke: Names of root keys the new root drops.
        add: New root keys.
        extra_signers: Signers of new keys that also sign it.
    """
    record = ceremony.record
    current = Metadata[Root].from_bytes(record.read_root(repository))
    new = next_root(current.signed)
    for name in revoke:
        new.revoke_key(record.key(name).keyid, Root.type)
    for key in add:
        new.add_key(key, Root.type)
    signers = [*record.signers(signed_by, officer_secrets), *extra_signers]
    return tufrepo.to_bytes(sign_new_root(current, new, signers))


def sha256_hex(data: bytes) -> str:
    """SHA-256 hex digest of ``data``."""
    return hashlib.sha256(data).hexdigest()
