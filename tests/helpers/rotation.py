"""Rotation and re-signing ceremony outputs for tests, made the way the officers make them.

:class:`RotationCeremony` copies a real ceremony directory (the layout
``airlock hub init --from`` and ``airlock hub trust update --from`` read) and
writes later versions into the copy: the next root of a repository with
:func:`~airlock.ceremony.roots._build.next_root` and
:func:`~airlock.ceremony.roots._build.sign_new_root`, the next Image targets with
:func:`~airlock.ceremony.roots._build.sign_all`. The officers' offline keys are
opened through :meth:`CeremonyRecord.signers` with their passphrase; keys a
rotation introduces are generated here and kept in memory by name, so later
versions can be signed with them too. Thresholds are not enforced: tests
make under-signed roots on purpose.

:func:`resign_image_targets` is the other half: what a thief of an offline
targets key (together with the hub's online keys) could put into a bundle.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from securesystemslib.signer import CryptoSigner, Key, Signer
from tuf.api.metadata import Metadata, Root, Snapshot, Targets, Timestamp

from airlock.bundles import tuf as tufrepo
from airlock.bundles.tuf import load_roots
from airlock.ceremony.documents import CeremonyRecord, load_ceremony
from airlock.ceremony.roots import next_root, sign_all, sign_new_root
from airlock.hub import repos as signing
from airlock.hub.context import HubContext, online_signer
from airlock.hub.export import MetadataList
from airlock.hub.repos import meta_file
from helpers.hubenv import OFFICER_PASSPHRASE

TARGETS_FILE = re.compile(r"^([1-9][0-9]*)\.targets\.json$")


def officer_secrets(_name: str) -> str:
    """The officers' passphrase (opens the ceremony's offline keys)."""
    return OFFICER_PASSPHRASE


@dataclass
class RotationCeremony:
    """A copy of a ceremony directory that tests extend with later versions.

    Attributes:
        directory: The copy (pass it to ``airlock hub trust update --from``).
        new_keys: Keys the rotations introduced, by name (private halves in memory only).
    """

    directory: Path
    new_keys: dict[str, CryptoSigner] = field(default_factory=dict)

    @classmethod
    def copy_of(cls, source: Path, dest: Path) -> RotationCeremony:
        """Copies the ceremony directory ``source`` to ``dest`` under a new ceremony id."""
        shutil.copytree(source, dest)
        record_file = dest / "ceremony.json"
        record = json.loads(record_file.read_bytes())
        record["ceremony_id"] = str(uuid.uuid4())
        record_file.write_text(json.dumps(record, indent=2, sort_keys=True))
        return cls(dest)

    def fork(self, dest: Path) -> RotationCeremony:
        """A copy of this ceremony (same new keys) to build a different next version on."""
        copy = RotationCeremony.copy_of(self.directory, dest)
        copy.new_keys = dict(self.new_keys)
        return copy

    @property
    def record(self) -> CeremonyRecord:
        """The ceremony record of the copy."""
        return load_ceremony(self.directory)

    # --- keys ------------------------------------------------------------------------------------

    def new_key(self, name: str) -> Key:
        """Generates an Ed25519 key called ``name`` (an officer's new key) and returns it."""
        signer = CryptoSigner.generate_ed25519()
        self.new_keys[name] = signer
        return signer.public_key

    def key(self, name: str) -> Key:
        """The public key called ``name``: a new key, or one of the ceremony's."""
        if name in self.new_keys:
            return self.new_keys[name].public_key
        return self.record.key(name).public_key

    def signers(self, names: Sequence[str]) -> list[Signer]:
        """Signers of ``names``: new keys from memory, the officers' keys from their files."""
        record = self.record
        return [
            self.new_keys[name]
            if name in self.new_keys
            else record.signers([name], officer_secrets)[0]
            for name in names
        ]

    # --- metadata --------------------------------------------------------------------------------

    def roots(self, repository: str) -> list[Metadata[Root]]:
        """Every root version of ``image`` or ``director`` in the copy."""
        return load_roots(self.directory / repository)

    def targets(self) -> Metadata[Targets]:
        """The newest Image targets of the copy."""
        return Metadata[Targets].from_bytes(self._targets_file().read_bytes())

    def _targets_file(self) -> Path:
        files = {
            int(m.group(1)): p
            for p in (self.directory / tufrepo.IMAGE).iterdir()
            if (m := TARGETS_FILE.fullmatch(p.name))
        }
        return files[max(files)]

    def add_root(
        self,
        repository: str,
        signed_by: Sequence[str],
        *,
        revoke: Sequence[str] = (),
        add: Sequence[str] = (),
        targets_revoke: Sequence[str] = (),
        targets_add: Sequence[str] = (),
        expires: dt.datetime | None = None,
        write: bool = True,
    ) -> Metadata[Root]:
        """Makes the next root version of ``repository`` and writes ``N.root.json`` to the copy.

        Args:
            repository: ``image`` or ``director``.
            signed_by: Names of the keys that sign it (old and new root keys).
            revoke: Root keys the new version drops.
            add: Root keys it adds (made with :meth:`new_key`, or the ceremony's).
            targets_revoke: Top-level targets keys it drops (Image).
            targets_add: Top-level targets keys it adds (Image).
            expires: The new expiry (default: the previous root's).
            write: False to only return the new root (to forge one into a bundle).
        """
        current = self.roots(repository)[-1]
        new = next_root(current.signed, expires)
        for role, dropped, added in (
            (Root.type, revoke, add),
            (Targets.type, targets_revoke, targets_add),
        ):
            for name in dropped:
                new.revoke_key(self.key(name).keyid, role)
            for name in added:
                new.add_key(self.key(name), role)
        md = sign_new_root(current, new, self.signers(signed_by))
        if write:
            path = self.directory / repository / tufrepo.metadata_filename(Root.type, new.version)
            path.write_bytes(tufrepo.to_bytes(md))
        return md

    def add_targets(
        self,
        signed_by: Sequence[str],
        *,
        expires: dt.datetime | None = None,
        version: int | None = None,
        edit: Callable[[Targets], None] | None = None,
    ) -> Metadata[Targets]:
        """Re-signs the Image targets as its next version (or ``version``) and writes it.

        Only the version and the expiry change, as in a re-signing ceremony,
        unless ``edit`` changes more before it is signed.
        """
        current = self.targets().signed
        new = Targets.from_dict(current.to_dict())
        new.version = version if version is not None else current.version + 1
        if expires is not None:
            new.expires = expires
        if edit is not None:
            edit(new)
        md = sign_all(new, self.signers(signed_by))
        name = tufrepo.metadata_filename(Targets.type, new.version)
        (self.directory / tufrepo.IMAGE / name).write_bytes(tufrepo.to_bytes(md))
        return md

    def drop_targets(self, version: int) -> None:
        """Removes ``image/N.targets.json`` (so an older version becomes the newest)."""
        (self.directory / tufrepo.IMAGE / tufrepo.metadata_filename(Targets.type, version)).unlink()


def rotate_roots(ceremony: RotationCeremony, repository: str, step: int) -> Metadata[Root]:
    """One honest root key rotation of ``repository``: root key ``step`` out, a new key in.

    Version N+1 drops the ceremony's ``<repository>-root-<step>`` and adds a new
    key ``<repository>-root-new-<step>``; it is signed by the remaining old keys
    and the new one, so a threshold (2 of 3) of both the old and the new root
    signed it.
    """
    old = f"{repository}-root-{step}"
    new = f"{repository}-root-new-{step}"
    ceremony.new_key(new)
    current = ceremony.roots(repository)[-1].signed
    keyids = set(current.roles[Root.type].keyids)
    names = [n for n in _known_root_keys(ceremony, repository) if ceremony.key(n).keyid in keyids]
    return ceremony.add_root(repository, [*names, new], revoke=[old], add=[new])


def _known_root_keys(ceremony: RotationCeremony, repository: str) -> list[str]:
    offline = [n for n in ceremony.record.offline_keys if n.startswith(f"{repository}-root-")]
    return offline + [n for n in ceremony.new_keys if n.startswith(f"{repository}-root-")]


def resign_image_targets(
    hub: HubContext, metadata: MetadataList, signers: Sequence[Signer]
) -> MetadataList:
    """Replaces a bundle's Image targets by its next version signed by ``signers``.

    The Image snapshot and timestamp are re-signed with the hub's real online
    keys, so only the targets' own signatures can make a site refuse it.
    """
    entries = dict(metadata)
    [targets_name] = [n for n in entries if re.fullmatch(r"metadata/image/\d+\.targets\.json", n)]
    [snapshot_name] = [n for n in entries if re.fullmatch(r"metadata/image/\d+\.snapshot\.json", n)]
    timestamp_name = "metadata/image/timestamp.json"
    targets = Metadata[Targets].from_bytes(entries.pop(targets_name))
    targets.signed.version += 1
    tufrepo.sign_with(targets, list(signers))
    snapshot = Metadata[Snapshot].from_bytes(entries[snapshot_name])
    snapshot.signed.meta["targets.json"] = meta_file(targets)
    tufrepo.sign_with(snapshot, [online_signer(hub, signing.IMAGE_SNAPSHOT)])
    timestamp = Metadata[Timestamp].from_bytes(entries[timestamp_name])
    timestamp.signed.snapshot_meta = meta_file(snapshot)
    tufrepo.sign_with(timestamp, [online_signer(hub, signing.IMAGE_TIMESTAMP)])
    new_name = f"metadata/image/{tufrepo.metadata_filename(Targets.type, targets.signed.version)}"
    replaced = {
        snapshot_name: tufrepo.to_bytes(snapshot),
        timestamp_name: tufrepo.to_bytes(timestamp),
    }
    result: MetadataList = []
    for name, data in metadata:
        if name == targets_name:
            result.append((new_name, tufrepo.to_bytes(targets)))
        else:
            result.append((name, replaced.get(name, data)))
    return result
