"""Reading and checking a ceremony's output before a hub is built from it.

``airlock ceremony init --out CEREMONY`` writes::

    ceremony.json                {"ceremony_id", "offline_keys", "online_keys", "roots", …}
    image/N.root.json  image/N.targets.json  director/N.root.json
    online-keys/<name>.pem       (encrypted with the hub passphrase)
    offline-keys/…               never read, never copied

The checks, in order: (1) every root is signed by a threshold of its own keys
and each root by a threshold of the one before it; (2) the Image top-level
targets is signed by the root's targets threshold; (3) every online key the
hub needs is the key the roots (or the ``models`` delegation, or the envelope
anchor) name for its role, with threshold 1; (4) each online key file opens
with the hub passphrase and holds that key.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib import parse

from securesystemslib.signer import Key
from tuf.api.metadata import Metadata, Root, Targets

from airlock.bundles import tuf as tufrepo
from airlock.bundles.errors import MediaError, NotFoundError, SignatureError, TrustError
from airlock.bundles.keys import FILE_SCHEME, KeyRef
from airlock.bundles.tuf import verify_root_chain
from airlock.hub.repos import _signing as signing
from airlock.hub.repos import _tufmeta as tufmeta
from airlock.hub.repos._signing import HubSigners
from airlock.hub.store._home import CEREMONY_RECORD, ONLINE_KEYS_DIR

TARGETS_FILE = re.compile(r"^([1-9][0-9]{0,8})\.targets\.json$")


@dataclass
class CeremonyOutput:
    """The public parts of a ceremony's output directory, parsed (not yet trusted)."""

    directory: Path
    record: dict[str, Any]
    online_refs: dict[str, KeyRef]
    image_roots: list[Metadata[Root]]
    image_root_bytes: list[bytes]
    image_targets: Metadata[Targets]
    director_roots: list[Metadata[Root]]
    director_root_bytes: list[bytes]

    @property
    def ceremony_id(self) -> str:
        """The ceremony's id, as recorded."""
        return str(self.record.get("ceremony_id", ""))


def read_ceremony(directory: Path) -> CeremonyOutput:
    """Parses a ceremony output directory.

    Raises:
        NotFoundError: the directory or a required file is missing.
        MediaError: a file is malformed.
    """
    directory = Path(directory)
    if not (directory / CEREMONY_RECORD).is_file():
        raise NotFoundError(
            f"{directory} is not a ceremony output directory (no {CEREMONY_RECORD})",
            hint="pass the directory written by `airlock ceremony init --out`",
        )
    try:
        record = json.loads((directory / CEREMONY_RECORD).read_bytes())
    except ValueError as exc:
        raise MediaError(f"{CEREMONY_RECORD} is not valid JSON ({exc})") from None
    image_dir, director_dir = directory / tufrepo.IMAGE, directory / tufrepo.DIRECTOR
    targets_files = {
        int(m.group(1)): p
        for p in image_dir.glob("*.targets.json")
        if (m := TARGETS_FILE.fullmatch(p.name))
    }
    if not targets_files:
        raise NotFoundError(f"no Image targets metadata (N.targets.json) in {image_dir}")
    return CeremonyOutput(
        directory=directory,
        record=record,
        online_refs=signing.read_online_refs(directory / CEREMONY_RECORD),
        image_roots=tufmeta.load_roots(image_dir),
        image_root_bytes=[p.read_bytes() for p in tufmeta.root_files(image_dir)],
        image_targets=tufmeta.load_metadata(targets_files[max(targets_files)], Targets),
        director_roots=tufmeta.load_roots(director_dir),
        director_root_bytes=[p.read_bytes() for p in tufmeta.root_files(director_dir)],
    )


def _check_online_key(
    what: str, ref: KeyRef, keys: dict[str, Key], keyids: list[str], threshold: int
) -> None:
    if ref.keyid not in keyids or keys.get(ref.keyid) != ref.public_key:
        raise TrustError(
            f"online key {ref.name!r} is not the key the {what} names",
            hint="the ceremony output is inconsistent; restore it or run the ceremony again",
        )
    if threshold != 1:
        raise TrustError(
            f"the {what} needs {threshold} signatures; the hub holds one online key for it",
            hint="online roles must have threshold 1; run the ceremony again",
        )


def verify_ceremony(output: CeremonyOutput) -> None:
    """Steps (1)-(3) of the module docstring: signatures and online key placement.

    Raises:
        SignatureError: a root or the Image targets is not signed by a threshold.
        TrustError: an online key is not the one the roots name for its role.
    """
    verify_root_chain("Image", output.image_roots)
    verify_root_chain("Director", output.director_roots)
    image_root, director_root = output.image_roots[-1].signed, output.director_roots[-1].signed
    targets = output.image_targets
    try:
        image_root.verify_delegate(Targets.type, targets.signed_bytes, targets.signatures)
    except Exception as exc:
        raise SignatureError(
            f"Image targets version {targets.signed.version} is not signed by a threshold "
            f"of the root's targets keys ({exc})",
            hint="collect the missing officer signatures on the Image targets",
        ) from None
    refs = output.online_refs
    for root, label, role, name in (
        (image_root, "Image root", "snapshot", signing.IMAGE_SNAPSHOT),
        (image_root, "Image root", "timestamp", signing.IMAGE_TIMESTAMP),
        (director_root, "Director root", "targets", signing.DIRECTOR_TARGETS),
        (director_root, "Director root", "snapshot", signing.DIRECTOR_SNAPSHOT),
        (director_root, "Director root", "timestamp", signing.DIRECTOR_TIMESTAMP),
    ):
        spec = root.roles[role]
        _check_online_key(f"{label} for {role}", refs[name], root.keys, spec.keyids, spec.threshold)
    delegations = targets.signed.delegations
    models = (delegations.roles or {}).get(tufrepo.MODELS_ROLE) if delegations else None
    if delegations is None or models is None or models.paths != tufrepo.MODELS_ROLE_PATHS:
        raise TrustError(
            f"the Image targets does not delegate {tufrepo.MODELS_ROLE!r} for "
            f"{tufrepo.MODELS_ROLE_PATHS}",
            hint="the roots were not made by an Airlock ceremony",
        )
    _check_online_key(
        f"Image targets delegation {tufrepo.MODELS_ROLE!r}",
        refs[signing.IMAGE_MODELS],
        delegations.keys,
        models.keyids,
        models.threshold,
    )
    envelope_keys, envelope_threshold = tufrepo.envelope_keys(director_root)
    _check_online_key(
        "Director root's envelope anchor",
        refs[signing.ENVELOPE],
        envelope_keys,
        list(envelope_keys),
        envelope_threshold,
    )


def online_key_files(output: CeremonyOutput) -> dict[str, Path]:
    """The online key files to copy, by home-relative path (``online-keys/<name>.pem``).

    Keys named by other URI schemes (an HSM) are used in place and not copied.

    Raises:
        MediaError: a file key's URI is absolute or outside ``online-keys/``.
    """
    files = {}
    for ref in output.online_refs.values():
        uri = parse.urlparse(ref.uri)
        if uri.scheme != FILE_SCHEME:
            continue
        relative = Path(uri.path)
        if relative.is_absolute() or relative.parent != Path(ONLINE_KEYS_DIR):
            raise MediaError(
                f"online key {ref.name!r} is at {uri.path}, not under {ONLINE_KEYS_DIR}/",
                hint="online key URIs must be relative to the ceremony directory",
            )
        files[str(relative)] = output.directory / relative
    return files


def load_online_signers(signers: HubSigners) -> None:
    """Step (4): opens every online key once (checks the passphrase and the key pair)."""
    for name in signing.ONLINE_KEY_NAMES:
        signers.online(name)
