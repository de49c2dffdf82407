"""Builds and signs the trust roots: Image and Director root, Image top-level targets.

Pure functions over python-tuf's Metadata API: public keys in, metadata out,
no I/O and no prompts. The shapes follow :mod:`airlock.bundles.tuf._repo`:

* a root names the keys and thresholds of ``root``, ``targets``, ``snapshot``
  and ``timestamp``; consistent snapshots are on;
* the Director root also anchors the hub's envelope key;
* the Image targets delegate ``models`` (paths ``*/*/*``, not terminating) to
  the hub's online models key.

:func:`sign_new_root` and :func:`next_root` make later root versions (a key
rotation, or a deliberately under-signed root in a test).
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Sequence
from typing import TypeVar

from securesystemslib.signer import Key, Signer
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    Root,
    Snapshot,
    Targets,
    Timestamp,
)

from airlock.bundles import tuf as tufrepo
from airlock.bundles.errors import SignatureError, UsageError

T = TypeVar("T", Root, Targets)


def build_root(
    *,
    root_keys: Sequence[Key],
    root_threshold: int,
    targets_keys: Sequence[Key],
    targets_threshold: int,
    snapshot_key: Key,
    timestamp_key: Key,
    expires: dt.datetime,
) -> Root:
    """Returns an unsigned version-1 root with the given keys and thresholds.

    Args:
        root_keys: Keys of the ``root`` role.
        root_threshold: Signatures needed on the next root.
        targets_keys: Keys of the top-level ``targets`` role.
        targets_threshold: Signatures needed on targets.
        snapshot_key: The one ``snapshot`` key (threshold 1).
        timestamp_key: The one ``timestamp`` key (threshold 1).
        expires: When the root expires (aware UTC).

    Raises:
        UsageError: a threshold is outside 1..number of keys.
    """
    root = Root(version=1, expires=expires, consistent_snapshot=True)
    assignments: list[tuple[str, Sequence[Key], int]] = [
        (Root.type, root_keys, root_threshold),
        (Targets.type, targets_keys, targets_threshold),
        (Snapshot.type, [snapshot_key], 1),
        (Timestamp.type, [timestamp_key], 1),
    ]
    for role, keys, threshold in assignments:
        if not 1 <= threshold <= len(keys):
            raise UsageError(f"threshold {threshold} for {role} needs 1..{len(keys)} keys")
        for key in keys:
            root.add_key(key, role)
        root.roles[role].threshold = threshold
    return root


def build_director_root(
    *,
    root_keys: Sequence[Key],
    root_threshold: int,
    targets_key: Key,
    snapshot_key: Key,
    timestamp_key: Key,
    envelope_key: Key,
    expires: dt.datetime,
) -> Root:
    """Returns an unsigned version-1 Director root that anchors the envelope key."""
    root = build_root(
        root_keys=root_keys,
        root_threshold=root_threshold,
        targets_keys=[targets_key],
        targets_threshold=1,
        snapshot_key=snapshot_key,
        timestamp_key=timestamp_key,
        expires=expires,
    )
    tufrepo.set_envelope_keys(root, [envelope_key], 1)
    return root


def build_image_targets(models_key: Key, expires: dt.datetime) -> Targets:
    """Returns unsigned version-1 Image targets: no targets, ``models`` delegated."""
    role = DelegatedRole(
        name=tufrepo.MODELS_ROLE,
        keyids=[models_key.keyid],
        threshold=1,
        terminating=False,
        paths=list(tufrepo.MODELS_ROLE_PATHS),
    )
    delegations = Delegations(
        keys={models_key.keyid: models_key}, roles={tufrepo.MODELS_ROLE: role}
    )
    return Targets(version=1, expires=expires, delegations=delegations)


def sign_all(signed: T, signers: Sequence[Signer]) -> Metadata[T]:
    """Wraps ``signed`` in metadata signed by every one of ``signers``."""
    md: Metadata[T] = tufrepo.sign_with(Metadata(signed), list(signers))
    return md


def check_targets_signed(root: Root, md: Metadata[Targets]) -> None:
    """Checks top-level targets carry a threshold of the root's targets keys.

    Raises:
        SignatureError: below threshold.
    """
    try:
        root.verify_delegate(Targets.type, md.signed_bytes, md.signatures)
    except Exception as exc:
        raise SignatureError(
            f"targets version {md.signed.version} is not signed by a threshold of its keys ({exc})",
            hint="collect the missing targets signatures",
        ) from None


def next_root(current: Root, expires: dt.datetime | None = None) -> Root:
    """Returns an unsigned copy of ``current`` with the version bumped.

    Edit the copy (add or revoke keys, change thresholds), then sign it with
    :func:`sign_new_root`.

    Args:
        current: The root now trusted.
        expires: The new expiry; unchanged when ``None``.
    """
    new = Root.from_dict(copy.deepcopy(current.to_dict()))  # to_dict shares inner lists
    new.version = current.version + 1
    if expires is not None:
        new.expires = expires
    return new


def sign_new_root(
    current: Metadata[Root], new_signed: Root, signers: Sequence[Signer]
) -> Metadata[Root]:
    """Signs the root that follows ``current`` with every one of ``signers``.

    Thresholds are deliberately not enforced here, so that tests can make an
    under-signed root; a client accepts the new root only with a threshold of
    the old root's keys *and* of its own (``Root.get_root_verification_result``).

    Raises:
        UsageError: ``new_signed`` is not the next version of ``current``.
    """
    if new_signed.version != current.signed.version + 1:
        raise UsageError(
            f"the new root must be version {current.signed.version + 1}, not {new_signed.version}",
            hint="start from next_root(current.signed)",
        )
    return tufrepo.sign_with(Metadata(new_signed), list(signers))


def replace_role_keys(root: Root, role: str, keys: Sequence[Key], threshold: int) -> None:
    """Makes ``keys`` (and only them) the keys of ``role``, with ``threshold``.

    Keys no role uses any more leave the root's key list (``Root.revoke_key``).

    Raises:
        UsageError: the threshold is outside 1..number of keys.
    """
    if not 1 <= threshold <= len(keys):
        raise UsageError(f"threshold {threshold} for {role} needs 1..{len(keys)} keys")
    for keyid in list(root.roles[role].keyids):
        root.revoke_key(keyid, role)
    for key in keys:
        root.add_key(key, role)
    root.roles[role].threshold = threshold


def next_targets(current: Targets, expires: dt.datetime) -> Targets:
    """Returns an unsigned copy of ``current`` with the version bumped and a new expiry."""
    new = Targets.from_dict(copy.deepcopy(current.to_dict()))
    new.version = current.version + 1
    new.expires = expires
    return new
