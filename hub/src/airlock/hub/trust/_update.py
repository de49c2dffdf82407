"""``airlock hub trust update``: adopt the output of a rotation or re-signing ceremony.

The security officers rotate root or targets keys, or re-sign roots and the
Image top-level targets with a later expiry, on their offline machines. Their
output has the layout ``airlock hub init --from`` reads
(:mod:`airlock.hub.trust._ceremony_input`): every root version of both repositories
from 1 up, the newest Image targets, and a ``ceremony.json`` naming the hub's
online keys. :func:`check_update` decides, without writing anything, whether
the hub may adopt it:

1. the ceremony names exactly the hub's online keys (a rotation ceremony
   never changes them);
2. it verifies on its own (:func:`~airlock.hub.trust._ceremony_input.verify_ceremony`):
   each root signed by a threshold of its own keys and of the previous root's,
   the Image targets by the newest Image root's targets threshold, and every
   online key where the newest roots, the ``models`` delegation and the
   envelope anchor name it;
3. the hub's root histories are byte-identical prefixes of the ceremony's
   (anything else is a fork) and no history is shorter than the hub's;
4. the Image targets does not go back a version, is byte-identical when the
   version is the same, and changes nothing but version and expiry;
5. something is newer: a root version or the targets version;
6. the newest roots and the targets have not expired at the hub's "now".

:func:`stage_update` then stages the new root files (old ones are never
rewritten) and the new Image targets, and re-signs the Image snapshot (it
lists the targets version) and timestamp. The timestamp is re-signed even when
only roots changed, so an export planned before the update is refused at
commit time (its base moved) instead of shipping the old trust. The
Director's per-site metadata is signed by online keys the update does not
change and is refreshed by every export, which also carries every root
version of both repositories: the next bundle lets a site walk the chain.

:func:`adopt` reads the ceremony and runs both inside the command's audited
:func:`~airlock.hub.context._operation.operation` (``Hub.update_trust``): the files
are written with the ``hub.trust.update`` audit entry, or nothing is.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuf.api.metadata import Metadata, Signed, Targets

from airlock.bundles import tuf as tufrepo
from airlock.bundles.ceremony_output import sha256_hex
from airlock.bundles.clock import utc_iso
from airlock.bundles.errors import ConflictError, FreshnessError, TrustError
from airlock.bundles.keys import KeyRef
from airlock.hub.context._context import HubContext, load_director_roots, load_image_repo
from airlock.hub.context._operation import Operation, operation
from airlock.hub.repos import _image as image_repo
from airlock.hub.repos import _signing as signing
from airlock.hub.repos._director import DirectorRoots
from airlock.hub.repos._image import ImageRepo
from airlock.hub.repos._signing import HubSigners
from airlock.hub.repos._tufmeta import StagedWrites
from airlock.hub.store._home import CEREMONY_RECORD
from airlock.hub.trust._ceremony_input import CeremonyOutput, read_ceremony, verify_ceremony

TRUST_UPDATE_ACTION = "hub.trust.update"

IMAGE_ROOT = "image root"
IMAGE_TARGETS = "image targets"
DIRECTOR_ROOT = "director root"


@dataclass(frozen=True)
class RoleChange:
    """One offline role before and after the update (unchanged roles are listed too).

    Attributes:
        role: ``image root``, ``image targets`` or ``director root``.
        old_version, old_sha256: What the hub had (the newest root file, or ``targets.json``).
        new_version, new_sha256: What it has after the update.
        expires: The new version's expiry.
        added: Root versions added by the update, with the SHA-256 of each file.
    """

    role: str
    old_version: int
    old_sha256: str
    new_version: int
    new_sha256: str
    expires: dt.datetime
    added: tuple[tuple[int, str], ...] = ()

    @property
    def changed(self) -> bool:
        """True when the update brings a newer version of this role."""
        return self.new_version != self.old_version

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (also the audit details)."""
        data: dict[str, Any] = {
            "old_version": self.old_version,
            "old_sha256": self.old_sha256,
            "new_version": self.new_version,
            "new_sha256": self.new_sha256,
            "expires": utc_iso(self.expires),
            "changed": self.changed,
        }
        if self.role != IMAGE_TARGETS:
            data["added"] = [{"version": v, "sha256": s} for v, s in self.added]
        return data


@dataclass(frozen=True)
class TrustUpdate:
    """What :func:`check_update` accepted: the ceremony and the role changes."""

    ceremony_id: str
    ceremony_dir: str
    record_sha256: str
    roles: tuple[RoleChange, ...]

    def role(self, name: str) -> RoleChange:
        """The change of ``name`` (``image root``, ``image targets``, ``director root``)."""
        return next(r for r in self.roles if r.role == name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the ``--json`` output and the audit details)."""
        return {
            "ceremony_id": self.ceremony_id,
            "ceremony_dir": self.ceremony_dir,
            "ceremony_record_sha256": self.record_sha256,
            "roles": {r.role: r.to_dict() for r in self.roles},
        }


def check_online_keys(hub_refs: dict[str, KeyRef], ceremony_refs: dict[str, KeyRef]) -> None:
    """Step 1: the ceremony names the hub's online keys, public key for public key.

    Raises:
        TrustError: an online key differs (or is missing).
    """
    differ = [
        name
        for name in signing.ONLINE_KEY_NAMES
        if name not in ceremony_refs or ceremony_refs[name].public_key != hub_refs[name].public_key
    ]
    if differ:
        raise TrustError(
            f"the ceremony's online keys are not this hub's: {', '.join(differ)} differ",
            hint="a rotation ceremony keeps the hub's online keys; ask the security officers "
            "to start it from this hub's ceremony output",
        )


def _check_history(repository: str, hub_roots: list[bytes], new_roots: list[bytes]) -> None:
    """Step 3 for one repository."""
    for number, (ours, theirs) in enumerate(zip(hub_roots, new_roots, strict=False), start=1):
        if ours != theirs:
            raise TrustError(
                f"{repository} root version {number} of the ceremony differs from the hub's: "
                "its root history forked from the one this hub trusts",
                hint="ask the security officers to start the rotation from this hub's roots "
                "(repository/image/ and repository/director/root/ of the hub home, or the "
                "output of the ceremony the hub adopted last)",
            )
    if len(new_roots) < len(hub_roots):
        raise FreshnessError(
            f"the ceremony's {repository} root history ends at version {len(new_roots)}, "
            f"but the hub already trusts version {len(hub_roots)}",
            hint="this is an older ceremony output; use the newest one from the security officers",
        )


def _check_targets(hub_targets: Metadata[Targets], new_targets: Metadata[Targets]) -> None:
    """Step 4."""
    old, new = hub_targets.signed, new_targets.signed
    if new.version < old.version:
        raise FreshnessError(
            f"the ceremony's Image targets version {new.version} would roll back the hub's "
            f"version {old.version}",
            hint="this is an older ceremony output; use the newest one from the security officers",
        )
    if new.version == old.version:
        if tufrepo.to_bytes(new_targets) != tufrepo.to_bytes(hub_targets):
            raise TrustError(
                f"the ceremony's Image targets version {new.version} differs from the hub's "
                f"version {old.version}",
                hint="re-signed targets need a new version number; ask the security officers "
                "to sign the next version",
            )
        return
    old_delegations = old.delegations.to_dict() if old.delegations else None
    new_delegations = new.delegations.to_dict() if new.delegations else None
    if new.targets != old.targets or new_delegations != old_delegations:
        raise TrustError(
            f"the ceremony's Image targets version {new.version} changes its targets or "
            "delegations, not only its version and expiry",
            hint="the Image top-level targets must keep delegating 'models' to the hub's "
            "online key; ask the security officers to re-sign it unchanged",
        )


def _check_not_expired(what: str, signed: Signed, now: dt.datetime) -> None:
    """Step 6 for one role."""
    expires = tufrepo.signed_expires(signed)
    if expires <= now:
        raise FreshnessError(
            f"the ceremony's {what} version {signed.version} expired {utc_iso(expires)} "
            f"(the hub's time is {utc_iso(now)})",
            hint="ask the security officers to sign it again with a later expiry",
        )


def _root_change(role: str, hub_bytes: list[bytes], new: CeremonyOutput) -> RoleChange:
    new_bytes = new.image_root_bytes if role == IMAGE_ROOT else new.director_root_bytes
    roots = new.image_roots if role == IMAGE_ROOT else new.director_roots
    return RoleChange(
        role=role,
        old_version=len(hub_bytes),
        old_sha256=sha256_hex(hub_bytes[-1]),
        new_version=len(new_bytes),
        new_sha256=sha256_hex(new_bytes[-1]),
        expires=tufrepo.signed_expires(roots[-1].signed),
        added=tuple(
            (number, sha256_hex(data))
            for number, data in enumerate(new_bytes, start=1)
            if number > len(hub_bytes)
        ),
    )


def check_update(
    output: CeremonyOutput,
    record_sha256: str,
    hub_refs: dict[str, KeyRef],
    image: ImageRepo,
    director: DirectorRoots,
    now: dt.datetime,
) -> TrustUpdate:
    """Steps 1-6 of the module docstring; reads and writes nothing.

    Args:
        output: The ceremony output, as read (not yet trusted).
        record_sha256: SHA-256 of its ``ceremony.json`` (for the audit log).
        hub_refs: The hub's online keys.
        image: The hub's Image repository.
        director: The hub's Director root history.
        now: The hub's clock.

    Raises:
        TrustError: other online keys, a fork, or a targets changing more than it may.
        SignatureError: a root or the targets is not signed by its threshold.
        FreshnessError: older than what the hub has, or expired.
        ConflictError: nothing in the ceremony is newer than what the hub has.
    """
    check_online_keys(hub_refs, output.online_refs)
    verify_ceremony(dataclasses.replace(output, online_refs=hub_refs))
    _check_history("Image", image.root_bytes, output.image_root_bytes)
    _check_history("Director", director.root_bytes, output.director_root_bytes)
    _check_targets(image.targets, output.image_targets)
    targets_bytes = tufrepo.to_bytes(output.image_targets)
    roles = (
        _root_change(IMAGE_ROOT, image.root_bytes, output),
        RoleChange(
            role=IMAGE_TARGETS,
            old_version=image.targets.signed.version,
            old_sha256=sha256_hex(tufrepo.to_bytes(image.targets)),
            new_version=output.image_targets.signed.version,
            new_sha256=sha256_hex(targets_bytes),
            expires=tufrepo.signed_expires(output.image_targets.signed),
        ),
        _root_change(DIRECTOR_ROOT, director.root_bytes, output),
    )
    if not any(role.changed for role in roles):
        versions = ", ".join(f"{r.role} version {r.old_version}" for r in roles)
        raise ConflictError(
            f"nothing in {output.directory} is newer than what the hub has ({versions})",
            hint="this ceremony output was adopted already; pass the output of the new "
            "rotation or re-signing ceremony",
        )
    _check_not_expired("Image root", output.image_roots[-1].signed, now)
    _check_not_expired("Director root", output.director_roots[-1].signed, now)
    _check_not_expired("Image targets", output.image_targets.signed, now)
    return TrustUpdate(
        ceremony_id=output.ceremony_id,
        ceremony_dir=str(output.directory),
        record_sha256=record_sha256,
        roles=roles,
    )


def stage_update(
    writes: StagedWrites,
    output: CeremonyOutput,
    image: ImageRepo,
    director: DirectorRoots,
    signers: HubSigners,
    online_expires: dt.datetime,
) -> dict[str, int]:
    """Adopts a checked update in memory and stages the files to write.

    Stages the new root files of both repositories (the hub's are kept as they
    are), the new Image targets when it is newer, and a re-signed Image
    snapshot and timestamp expiring at ``online_expires``.

    Returns:
        The new Image snapshot and timestamp versions.

    Raises:
        SecretError: the hub passphrase does not open the online keys.
    """
    snapshot_signer = signers.online(signing.IMAGE_SNAPSHOT)
    timestamp_signer = signers.online(signing.IMAGE_TIMESTAMP)
    known_image, known_director = len(image.root_bytes), len(director.root_bytes)
    image.roots, image.root_bytes = list(output.image_roots), list(output.image_root_bytes)
    director.roots = list(output.director_roots)
    director.root_bytes = list(output.director_root_bytes)
    roles = [image_repo.SNAPSHOT, image_repo.TIMESTAMP]
    if output.image_targets.signed.version > image.targets.signed.version:
        image.targets = output.image_targets
        roles.insert(0, image_repo.TARGETS)
    image_repo.refresh(image, online_expires, snapshot_signer, timestamp_signer)
    for directory, root_bytes, known in (
        (image.directory, image.root_bytes, known_image),
        (director.directory, director.root_bytes, known_director),
    ):
        for number, data in enumerate(root_bytes, start=1):
            if number > known:
                writes.put(directory / tufrepo.metadata_filename("root", number), data)
    image.stage(writes, roles)
    assert image.snapshot is not None and image.timestamp is not None
    return {
        "image_snapshot_version": image.snapshot.signed.version,
        "image_timestamp_version": image.timestamp.signed.version,
    }


def adopt(ctx: HubContext, op: Operation, ceremony_dir: Path) -> TrustUpdate:
    """Reads, checks and stages an update inside the command's operation (``op``).

    Raises:
        NotFoundError, MediaError: the ceremony output is missing or malformed.
        TrustError, SignatureError, FreshnessError, ConflictError: see :func:`check_update`.
        SecretError: the hub passphrase does not open the online keys.
    """
    output = read_ceremony(Path(ceremony_dir))
    record_sha256 = sha256_hex((output.directory / CEREMONY_RECORD).read_bytes())
    image, director = load_image_repo(ctx), load_director_roots(ctx)
    now = ctx.clock.now()
    update = check_update(output, record_sha256, ctx.signers.online_refs, image, director, now)
    online_expires = tufrepo.expiry_from(now, tufrepo.ONLINE_ROLE_EXPIRY_DAYS)
    versions = stage_update(op.writes, output, image, director, ctx.signers, online_expires)
    op.details = {**update.to_dict(), **versions}
    return update


def update_trust(ctx: HubContext, ceremony_dir: Path) -> TrustUpdate:
    """Adopts a rotation or re-signing ceremony's output (see the module docstring).

    New root versions of both repositories and a newer Image targets join
    the repository; the Image snapshot and timestamp are re-signed. The
    next export of every site carries the whole root chain.

    Raises:
        NotFoundError, MediaError: the ceremony output is missing or malformed.
        TrustError: a fork, other online keys, or a targets changing more than its expiry.
        SignatureError: a root or the targets is not signed by its threshold.
        FreshnessError: older than the hub's trust, or expired.
        ConflictError: nothing in it is newer than what the hub has.
        SecretError: the hub passphrase does not open the online keys.
    """
    with operation(ctx, TRUST_UPDATE_ACTION, str(ceremony_dir)) as op:
        return adopt(ctx, op, Path(ceremony_dir))
