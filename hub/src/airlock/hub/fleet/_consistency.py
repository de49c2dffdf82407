"""Whether a site's audit log extends what the hub witnessed: the site's checkpoint, checked
against its key and its origin, and the consistency proof from the checkpoint the hub
acknowledged last (steps 3 and 4 of :mod:`airlock.hub.fleet._metrics_import`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from securesystemslib.signer import Key

from airlock.bundles import audit as merkle
from airlock.bundles import events as events
from airlock.bundles.audit import Checkpoint, read_checkpoint, verify_checkpoint
from airlock.bundles.errors import (
    LogConsistencyError,
    MediaError,
    WrongSiteError,
)
from airlock.bundles.metrics import ConsistencyProof
from airlock.hub.store._fleet_tables import HubMetricsImport


def site_origin(site_id: str) -> str:
    """The checkpoint origin (and note key name) of a site's audit log."""
    return f"airlock/spoke/{site_id}"


def site_checkpoint(site_id: str, note: str, key: Key) -> Checkpoint:
    """Step 3, first half: the checkpoint is the site's own, and signed by its key."""
    if not note:
        raise MediaError(
            "the metrics bundle carries no audit checkpoint",
            hint="export the metrics again with a current Airlock at the site",
        )
    origin = site_origin(site_id)
    claimed = read_checkpoint(note).origin
    if claimed != origin:
        raise WrongSiteError(
            f"the audit checkpoint in site {site_id}'s metrics bundle is of {claimed[:80]!r}, "
            f"not of {origin!r}",
            hint="do not import bundles that were assembled from another site's parts",
        )
    return verify_checkpoint(note, {origin: key})


def witnessed_checkpoint(previous: HubMetricsImport | None) -> dict[str, Any] | None:
    if previous is None:
        return None
    return {
        "sequence": previous.sequence,
        "size": previous.checkpoint_size,
        "root": previous.checkpoint_root,
    }


def check_consistency(
    site_id: str,
    previous: HubMetricsImport | None,
    checkpoint: Checkpoint,
    proofs: Sequence[ConsistencyProof],
) -> str:
    """Step 3, second half: ``checkpoint`` extends the one the hub witnessed last.

    Returns:
        ``first`` (nothing witnessed yet: trust on first use) or ``proof from N``.

    Raises:
        LogConsistencyError: the log shrank, no proof from the witnessed size
            was sent, or the proof does not verify.
    """
    if previous is None:
        return "first"
    old_size, old_root = previous.checkpoint_size, previous.checkpoint_root
    witnessed = f"checkpoint {old_size} (root {old_root[:16]}…)"
    received = f"checkpoint {checkpoint.size} (root {checkpoint.root.hex()[:16]}…)"
    evidence = (
        "investigate the site: its audit log no longer matches what this hub witnessed; "
        "keep this bundle and the site's database as evidence, and import nothing more "
        "from the site until it is explained"
    )
    if checkpoint.size < old_size:
        raise LogConsistencyError(
            f"site {site_id}'s audit log was truncated: it sent {received}, shorter than "
            f"{witnessed} that this hub witnessed",
            hint=evidence,
        )
    proof = next(
        (p for p in proofs if (p.old_size, p.new_size) == (old_size, checkpoint.size)), None
    )
    if proof is None and checkpoint.size != old_size:
        raise LogConsistencyError(
            f"the site sent no proof from the checkpoint this hub acknowledged (size {old_size}) "
            f"to its {received}",
            hint="the site must prove its log extends what the hub witnessed: import the hub's "
            "latest bundle at the site and export the metrics again; if that fails too, "
            + evidence,
        )
    try:
        merkle.verify_consistency(
            old_size,
            checkpoint.size,
            bytes.fromhex(old_root),
            checkpoint.root,
            list(proof.hashes) if proof else [],
        )
    except merkle.ProofError as exc:
        raise LogConsistencyError(
            f"site {site_id}'s audit log was rewritten after {witnessed} that this hub "
            f"witnessed: {received} does not extend it ({exc})",
            hint=evidence,
        ) from None
    return f"proof from {old_size}"
