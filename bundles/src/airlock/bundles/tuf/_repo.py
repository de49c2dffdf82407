"""TUF conventions shared by the ceremony, the hub and the spoke.

Airlock runs two TUF repositories (the design brief's Uptane split):

* **Image** — every released model version. ``root`` and ``targets`` are
  offline (ceremony). ``targets`` delegates the hub-held role ``models`` for
  paths ``*/*/*``; ``models`` delegates one terminating role per tenant,
  ``tenant-<name>``, for the paths of that tenant's model families
  (``<family>/*/*`` each), signed with the tenant's own key (held by the hub
  or by the tenant). Every model family belongs to exactly one tenant, so one
  tenant's key cannot sign another tenant's models. Target paths are
  ``<model name>/<version>/<file name>``.
* **Director** — per-site instructions, one metadata set per site under a
  shared root. Director ``targets`` carry the field ``x-airlock-site-id``
  (never empty) and list the model files the site should have, each with the
  same length and hashes as the Image target. The primary file's custom
  field carries the signed rollout plan (``custom.airlock.rollout``), and
  the targets list every revoked version with its reason in the field
  ``x-airlock-revocations``.

At every export the site's Director timestamp (signed by the online
``director-timestamp`` key, not the envelope key) carries the field
``x-airlock-bundle`` (:func:`bundle_claims`): the bundle id, site, sequence,
kind, creation and expiry time the envelope states. The spoke refuses an
envelope that claims anything else, so the envelope key alone cannot set them.

The Director root also anchors the hub's *envelope key* (field
``x-airlock-envelope``), which signs every bundle's envelope; the Image root
anchors the officers' *in-toto layout keys* (field ``x-airlock-layout``), which
sign the supply-chain layout every model version is checked against.

Metadata uses consistent snapshots; in a bundle, metadata files live under
``metadata/image/`` and ``metadata/director/`` with their TUF file names
(``N.root.json``, ``timestamp.json``, ``N.snapshot.json``, ``N.<role>.json``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from securesystemslib.signer import Key, Signer
from tuf.api.metadata import Metadata, Root, Signed, TargetFile
from tuf.api.serialization.json import JSONSerializer

from airlock.bundles.clock import utc_iso
from airlock.bundles.errors import SignatureError, TrustError
from airlock.bundles.models._model_version import ModelVersion
from airlock.bundles.release._change import CHANGE_KEY
from airlock.bundles.release._rollout_plan import RolloutPlan

IMAGE = "image"
DIRECTOR = "director"
REPOSITORIES = (IMAGE, DIRECTOR)

MODELS_ROLE = "models"
MODELS_ROLE_PATHS = ["*/*/*"]
TENANT_ROLE_PREFIX = "tenant-"

SITE_ID_FIELD = "x-airlock-site-id"
REVOCATIONS_FIELD = "x-airlock-revocations"
ROLLOUT_KEY = "rollout"
ENVELOPE_FIELD = "x-airlock-envelope"
LAYOUT_FIELD = "x-airlock-layout"
BUNDLE_FIELD = "x-airlock-bundle"
CUSTOM_KEY = "airlock"

METADATA_PREFIX = "metadata"
ROOT_FILE = "root.json"
"""The trusted root's file name in a client's metadata directory (ngclient's cache)."""
BLOB_PREFIX = "blobs/sha256"

# Default lifetimes (days).
ROOT_EXPIRY_DAYS = 365
TARGETS_EXPIRY_DAYS = 180
ONLINE_ROLE_EXPIRY_DAYS = 90

_SERIALIZER = JSONSerializer(compact=False)


def tenant_role(name: str) -> str:
    """The Image role name that signs the targets of tenant ``name``'s model families."""
    return f"{TENANT_ROLE_PREFIX}{name}"


def family_paths(name: str) -> list[str]:
    """The delegation path patterns of model family ``name`` (in its tenant's role)."""
    return [f"{name}/*/*"]


def target_path(name: str, version: str, filename: str) -> str:
    """The TUF target path of one file of a model version."""
    return f"{name}/{version}/{filename}"


def image_custom(model: ModelVersion, filename: str, primary: bool) -> dict[str, Any]:
    """The custom field of an Image target; the primary file also carries the release record."""
    kind = next((f.kind for f in model.files if f.filename == filename), "model")
    custom: dict[str, Any] = {
        "model": model.name,
        "version": model.version,
        "file": filename,
        "primary": primary,
        "kind": kind,
    }
    if primary:
        custom["release"] = model.release.to_dict()
    return {CUSTOM_KEY: custom}


def director_custom(
    site_id: str,
    model: ModelVersion,
    filename: str,
    plan: RolloutPlan | None = None,
    change: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The custom field of a Director target (names the site).

    The version's primary file also carries the signed rollout plan
    (``custom.airlock.rollout``); None signs the default :class:`RolloutPlan`,
    so every assignment carries an explicit plan. ``change`` (a
    ``ChangeAuthorization.to_dict()``, see :mod:`airlock.bundles.release._change`) goes
    next to the plan as ``custom.airlock.change``; None leaves it out.
    """
    custom: dict[str, Any] = {
        "site_id": site_id,
        "model": model.name,
        "version": model.version,
        "file": filename,
    }
    if any(f.primary and f.filename == filename for f in model.files):
        custom[ROLLOUT_KEY] = (plan or RolloutPlan()).to_dict()
        if change is not None:
            custom[CHANGE_KEY] = dict(change)
    return {CUSTOM_KEY: custom}


def revocation_entry(model: str, version: str, reason: str, revoked_at: str) -> dict[str, str]:
    """One entry of a Director targets' ``x-airlock-revocations`` list."""
    return {"model": model, "version": version, "reason": reason, "revoked_at": revoked_at}


def parse_revocations(value: Any) -> list[dict[str, str]]:
    """The entries of an ``x-airlock-revocations`` field (absent: none).

    Raises:
        TrustError: the field is not a list of entries with string
            ``model``, ``version``, ``reason`` and ``revoked_at``.
    """
    if value is None:
        return []
    keys = ("model", "version", "reason", "revoked_at")
    if not isinstance(value, list) or not all(
        isinstance(item, dict) and all(isinstance(item.get(k), str) for k in keys) for item in value
    ):
        raise TrustError(
            f"the Director's {REVOCATIONS_FIELD} field is malformed",
            hint="the hub's Director metadata is broken; report it to the hub",
        )
    return [revocation_entry(*(str(item[k]) for k in keys)) for item in value]


def bundle_claims(
    *,
    bundle_id: str,
    site_id: str,
    sequence: int,
    kind: str,
    created: dt.datetime,
    expires: dt.datetime,
) -> dict[str, Any]:
    """The ``x-airlock-bundle`` value: what a bundle's envelope states, as the envelope has it.

    Times are ISO-8601 UTC strings exactly as in ``envelope.json``.
    """
    return {
        "bundle_id": bundle_id,
        "site_id": site_id,
        "sequence": sequence,
        "kind": str(kind),
        "created": utc_iso(created),
        "expires": utc_iso(expires),
    }


def metadata_filename(role: str, version: int) -> str:
    """The consistent-snapshot file name of ``role`` at ``version`` (timestamp has none)."""
    if role == "timestamp":
        return "timestamp.json"
    return f"{version}.{role}.json"


def archive_metadata_name(repository: str, filename: str) -> str:
    """Where a metadata file sits inside a bundle payload."""
    return f"{METADATA_PREFIX}/{repository}/{filename}"


def archive_blob_name(sha256_hex: str) -> str:
    """Where a content-addressed blob sits inside a bundle payload."""
    return f"{BLOB_PREFIX}/{sha256_hex}"


def expiry_from(now: dt.datetime, days: int) -> dt.datetime:
    """``now`` plus ``days``, whole seconds, UTC."""
    return (now + dt.timedelta(days=days)).replace(microsecond=0)


def to_bytes(md: Metadata[Any]) -> bytes:
    """Serialises metadata the way Airlock stores and ships it."""
    return bytes(md.to_bytes(_SERIALIZER))


def sign_with(md: Metadata[Any], signers: list[Signer]) -> Metadata[Any]:
    """Replaces the signatures of ``md`` with one from each of ``signers``."""
    md.signatures.clear()
    for signer in signers:
        md.sign(signer, append=True)
    return md


def sha256_of_target(target: TargetFile) -> str:
    """The SHA-256 hex digest a target declares.

    Raises:
        TrustError: the target has no SHA-256 hash.
    """
    digest = target.hashes.get("sha256")
    if not digest:
        raise TrustError(f"target {target.path} has no sha256 hash")
    return str(digest)


def envelope_keys(director_root: Root) -> tuple[dict[str, Key], int]:
    """The envelope keys and threshold a Director root anchors.

    Raises:
        TrustError: the root anchors no envelope key.
    """
    field: Any = director_root.unrecognized_fields.get(ENVELOPE_FIELD)
    try:
        keys = {kid: Key.from_dict(kid, dict(kd)) for kid, kd in field["keys"].items()}
        threshold = int(field["threshold"])
    except (TypeError, KeyError, ValueError, AttributeError):
        raise TrustError(
            "the trusted Director root anchors no envelope key",
            hint="the roots were not made by an Airlock ceremony; re-initialise from its output",
        ) from None
    if threshold < 1 or threshold > len(keys):
        raise TrustError("the Director root's envelope threshold is invalid")
    return keys, threshold


def set_envelope_keys(director_root: Root, keys: list[Key], threshold: int = 1) -> None:
    """Anchors ``keys`` as the envelope keys of a Director root (ceremony use)."""
    director_root.unrecognized_fields[ENVELOPE_FIELD] = {
        "keys": {key.keyid: key.to_dict() for key in keys},
        "threshold": threshold,
    }


def layout_keys(image_root: Root) -> tuple[dict[str, Key], int, dt.datetime]:
    """The in-toto layout keys, threshold and role expiry an Image root anchors.

    Raises:
        TrustError: the root anchors no layout keys.
    """
    field: Any = image_root.unrecognized_fields.get(LAYOUT_FIELD)
    try:
        keys = {kid: Key.from_dict(kid, dict(kd)) for kid, kd in field["keys"].items()}
        threshold = int(field["threshold"])
        expires = dt.datetime.fromisoformat(str(field["expires"]).replace("Z", "+00:00"))
    except (TypeError, KeyError, ValueError, AttributeError):
        raise TrustError(
            "the trusted Image root anchors no in-toto layout key",
            hint="run a key ceremony that includes the layout role",
        ) from None
    if threshold < 1 or threshold > len(keys):
        raise TrustError("the Image root's layout threshold is invalid")
    return keys, threshold, expires.astimezone(dt.UTC)


def set_layout_keys(
    image_root: Root, keys: list[Key], threshold: int, expires: dt.datetime
) -> None:
    """Anchors ``keys`` as the in-toto layout keys of an Image root (ceremony use)."""
    image_root.unrecognized_fields[LAYOUT_FIELD] = {
        "keys": {key.keyid: key.to_dict() for key in keys},
        "threshold": threshold,
        "expires": expires.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def check_root_signed(md: Metadata[Root]) -> None:
    """Checks a root is signed by a threshold of its own root keys.

    Raises:
        SignatureError: below threshold.
    """
    try:
        md.signed.verify_delegate(Root.type, md.signed_bytes, md.signatures)
    except Exception as exc:
        raise SignatureError(
            f"root version {md.signed.version} is not signed by a threshold of its keys ({exc})",
            hint="collect the missing officer signatures before using this root",
        ) from None


def signed_expires(signed: Signed) -> dt.datetime:
    """The expiry of signed metadata as an aware UTC datetime."""
    return signed.expires.astimezone(dt.UTC)
