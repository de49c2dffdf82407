"""``ceremony propose``: check the key offers and build the signing request.

The coordinator's step between key generation and signing: every offer is
read and verified against the plan (:func:`airlock.ceremony.officer._offers.verify_offer`),
one per officer; the roles are filled from the offers in plan order; for an
initial ceremony the hub's online keys are made here (hub passphrase), for a
rotation they are carried over from the previous ceremony and the new roots
start from its newest ones (:mod:`airlock.ceremony.documents._history`), with revoked
keys checked to be gone. ``request.json`` is written last, and nothing is left
behind when a check fails.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from securesystemslib.signer import Key
from tuf.api.metadata import Metadata, Root, Targets

from airlock.bundles import __version__, ceremony_output
from airlock.bundles import tuf as tufrepo
from airlock.bundles.atomic import atomic_write_bytes
from airlock.bundles.canonical import pretty_bytes
from airlock.bundles.ceremony_output import sha256_hex
from airlock.bundles.clock import Clock
from airlock.bundles.errors import ConflictError, SecretError, UsageError
from airlock.bundles.keys import MIN_PASSPHRASE_LENGTH, ONLINE_KDF_ITERATIONS, KeyRef, KeyStore
from airlock.ceremony.coordinator._workspace import Workspace
from airlock.ceremony.documents._history import CeremonyHistory, load_history
from airlock.ceremony.documents._plan import (
    DIRECTOR_ROOT,
    IMAGE_ROOT,
    IMAGE_TARGETS,
    LAYOUT,
    ROLES,
    CeremonyPlan,
    load_plan,
)
from airlock.ceremony.documents._request import (
    INITIAL,
    ROTATION,
    RequestKey,
    SigningRequest,
    parse_request,
)
from airlock.ceremony.officer._offers import KeyOffer, read_offer, verify_offer
from airlock.ceremony.roots import _build as roots
from airlock.ceremony.steps import StepLog


def propose(
    workspace: Workspace,
    offer_files: Sequence[Path],
    *,
    rotate_from: Path | None,
    revoke: Sequence[str],
    hub_passphrase: Callable[[str], str] | None,
    clock: Clock,
) -> tuple[SigningRequest, str]:
    """Checks the key offers and writes ``request.json`` in the workspace.

    Args:
        workspace: The coordinator's workspace (holds ``plan.toml``).
        offer_files: One key offer per officer of the plan.
        rotate_from: The previous ceremony directory, for a rotation.
        revoke: Key ids that must leave every role (rotation only).
        hub_passphrase: Encrypts the hub's new online keys (initial ceremony only).
        clock: Source of "now".

    Returns:
        The request and the SHA-256 of ``request.json``.

    Raises:
        FreshnessError: the plan expired.
        ConflictError: the workspace already holds a request.
        IntegrityError, SignatureError, UsageError: an offer is wrong (see verify_offer),
            an officer is missing, a key is offered twice, or a revoked key is offered.
        SecretError: the hub passphrase is too short.
    """
    with StepLog(workspace.directory, workspace.audit_db, clock) as steps:
        details = {"offers": [str(path) for path in offer_files], "revoke": list(revoke)}
        with steps.step("ceremony.propose", workspace.directory.name, details) as audit:
            plan = load_plan(workspace.plan_file)
            request, data = _propose(
                workspace, plan, offer_files, rotate_from, revoke, hub_passphrase, clock
            )
            audit.update(
                ceremony_id=request.ceremony_id,
                kind=request.kind,
                request_sha256=sha256_hex(data),
                offers=request.offers,
                metadata=sorted(request.metadata),
            )
    return request, sha256_hex(data)


def _propose(
    workspace: Workspace,
    plan: CeremonyPlan,
    offer_files: Sequence[Path],
    rotate_from: Path | None,
    revoke: Sequence[str],
    hub_passphrase: Callable[[str], str] | None,
    clock: Clock,
) -> tuple[SigningRequest, bytes]:
    now = clock.now()
    plan.check_valid(now)
    if workspace.request_file.exists():
        raise ConflictError(
            f"{workspace.request_file} already exists: this ceremony has a proposal",
            hint="finish it, or start over with a new workspace and a new plan",
        )
    offers, offer_bytes = _collect_offers(plan, offer_files)
    history = load_history(rotate_from) if rotate_from is not None else None
    if revoke and history is None:
        raise UsageError(
            "--revoke needs --rotate-from: only keys of a current root can be revoked",
            hint="pass the previous ceremony directory with --rotate-from",
        )
    keys = _request_keys(plan, offers)
    _check_revocations(history, keys, revoke)
    created_files: list[Path] = []
    try:
        if history is None:
            if hub_passphrase is None:
                raise SecretError("an initial ceremony needs the hub passphrase")
            online = _create_online_keys(workspace, hub_passphrase("passphrase"), created_files)
            previous = None
        else:
            online = dict(history.online_keys)
            previous = {
                "ceremony_id": history.ceremony_id,
                "roots": {
                    repository: copy.deepcopy(history.root(repository).current.to_dict())
                    for repository in tufrepo.REPOSITORIES
                },
                "image_targets_version": history.image_targets.signed.version,
            }
        metadata = _build_metadata(plan, keys, online, history, now)
        request = SigningRequest(
            ceremony_id=plan.ceremony_id,
            plan=plan.to_dict(),
            plan_sha256=plan.sha256,
            kind=INITIAL if history is None else ROTATION,
            created=now,
            keys=tuple(keys),
            online_keys=online,
            revoked=tuple(sorted(set(revoke))),
            previous=previous,
            metadata={path: md.signed.to_dict() for path, md in metadata.items()},
            offers={offer.officer: sha256_hex(offer_bytes[offer.officer]) for offer in offers},
            tool_version=__version__,
        )
        data = pretty_bytes(request.to_dict())
        parse_request(data)  # what officers will read back must parse
        for officer, raw in offer_bytes.items():
            atomic_write_bytes(workspace.offer_copy(officer), raw)
            created_files.append(workspace.offer_copy(officer))
        if history is not None:
            workspace.record_previous(history.directory)
        atomic_write_bytes(workspace.request_file, data)
    except BaseException:
        for path in created_files:
            path.unlink(missing_ok=True)
        raise
    return request, data


def _collect_offers(
    plan: CeremonyPlan, offer_files: Sequence[Path]
) -> tuple[list[KeyOffer], dict[str, bytes]]:
    offers: dict[str, KeyOffer] = {}
    raw: dict[str, bytes] = {}
    for path in offer_files:
        offer, data = read_offer(path)
        verify_offer(plan, offer, str(path))
        if offer.officer in offers:
            raise UsageError(
                f"two key offers from officer {offer.officer} ({path} is the second)",
                hint="pass each officer's newest offer once",
            )
        offers[offer.officer] = offer
        raw[offer.officer] = data
    missing = [name for name in plan.officer_names() if name not in offers]
    if missing:
        raise UsageError(
            f"no key offer from {', '.join(missing)}",
            hint="every officer of the plan runs `airlock ceremony keygen` and hands over "
            "the offer file",
        )
    ordered = [offers[name] for name in plan.officer_names()]
    return ordered, {offer.officer: raw[offer.officer] for offer in ordered}


def _request_keys(plan: CeremonyPlan, offers: list[KeyOffer]) -> list[RequestKey]:
    keys: list[RequestKey] = []
    seen: dict[str, str] = {}
    for role in ROLES:
        for officer in plan.roles[role].officers:
            offer = next(o for o in offers if o.officer == officer)
            offered = next(k for k in offer.keys if k.role == role)
            keyid = offered.ref.keyid
            if keyid in seen:
                raise UsageError(
                    f"key {keyid[:16]}… is offered for {seen[keyid]} and for {role} by {officer}",
                    hint="every role and officer needs its own key; run keygen with --new-key",
                )
            seen[keyid] = f"{role} by {officer}"
            data = offered.to_dict()
            keys.append(
                RequestKey(officer, role, offered.ref, str(data["storage"]), str(data["algorithm"]))
            )
    return keys


def _check_revocations(
    history: CeremonyHistory | None, keys: list[RequestKey], revoke: Sequence[str]
) -> None:
    if history is None:
        return
    current: set[str] = set()
    for repository in tufrepo.REPOSITORIES:
        root = history.root(repository).current.signed
        current.update(root.roles[Root.type].keyids)
        if repository == tufrepo.IMAGE:
            current.update(root.roles[Targets.type].keyids)
            if tufrepo.LAYOUT_FIELD in root.unrecognized_fields:
                current.update(tufrepo.layout_keys(root)[0])
    for keyid in revoke:
        if keyid not in current:
            raise UsageError(
                f"key {keyid[:16]}… is not an offline key of the current roots; "
                "there is nothing to revoke",
                hint="pass the full key id as `airlock ceremony status` or the transcript shows it",
            )
        for key in keys:
            if key.ref.keyid == keyid:
                raise UsageError(
                    f"{key.officer} offered the revoked key {keyid[:16]}… for {key.role}",
                    hint=f"{key.officer} runs keygen again with --new-key {key.role}, "
                    "or leaves the role in the plan",
                )


def _create_online_keys(
    workspace: Workspace, passphrase: str, created: list[Path]
) -> dict[str, KeyRef]:
    if len(passphrase) < MIN_PASSPHRASE_LENGTH:
        raise SecretError(
            "the hub passphrase is too short",
            hint=f"use at least {MIN_PASSPHRASE_LENGTH} characters",
        )
    store = KeyStore(workspace.directory, lambda _name: passphrase)
    refs: dict[str, KeyRef] = {}
    (workspace.directory / ceremony_output.ONLINE_DIR).mkdir(mode=0o700, exist_ok=True)
    for name in ceremony_output.ONLINE_KEY_NAMES:
        relative = ceremony_output.online_key_path(name)
        if (workspace.directory / relative).exists():
            raise ConflictError(
                f"{relative} already exists in the workspace",
                hint="start over with a new, empty workspace",
            )
        refs[name] = store.create_file_key(
            name, relative, "ed25519", passphrase, ONLINE_KDF_ITERATIONS
        )
        created.append(workspace.directory / relative)
        store.signer(refs[name])  # the hub will open it this way
    return refs


def _keys_for(keys: list[RequestKey], role: str) -> list[Key]:
    return [key.ref.public_key for key in keys if key.role == role]


def _build_metadata(
    plan: CeremonyPlan,
    keys: list[RequestKey],
    online: dict[str, KeyRef],
    history: CeremonyHistory | None,
    now: dt.datetime,
) -> dict[str, Metadata[Any]]:
    def expires(role: str) -> dt.datetime:
        return tufrepo.expiry_from(now, plan.roles[role].expiry_days)

    if history is None:
        image_root = roots.build_root(
            root_keys=_keys_for(keys, IMAGE_ROOT),
            root_threshold=plan.roles[IMAGE_ROOT].threshold,
            targets_keys=_keys_for(keys, IMAGE_TARGETS),
            targets_threshold=plan.roles[IMAGE_TARGETS].threshold,
            snapshot_key=online[ceremony_output.IMAGE_SNAPSHOT].public_key,
            timestamp_key=online[ceremony_output.IMAGE_TIMESTAMP].public_key,
            expires=expires(IMAGE_ROOT),
        )
        director_root = roots.build_director_root(
            root_keys=_keys_for(keys, DIRECTOR_ROOT),
            root_threshold=plan.roles[DIRECTOR_ROOT].threshold,
            targets_key=online[ceremony_output.DIRECTOR_TARGETS].public_key,
            snapshot_key=online[ceremony_output.DIRECTOR_SNAPSHOT].public_key,
            timestamp_key=online[ceremony_output.DIRECTOR_TIMESTAMP].public_key,
            envelope_key=online[ceremony_output.ENVELOPE].public_key,
            expires=expires(DIRECTOR_ROOT),
        )
        targets = roots.build_image_targets(
            online[ceremony_output.IMAGE_MODELS].public_key, expires(IMAGE_TARGETS)
        )
    else:
        image_root = roots.next_root(history.image.current.signed, expires(IMAGE_ROOT))
        roots.replace_role_keys(
            image_root, Root.type, _keys_for(keys, IMAGE_ROOT), plan.roles[IMAGE_ROOT].threshold
        )
        roots.replace_role_keys(
            image_root,
            Targets.type,
            _keys_for(keys, IMAGE_TARGETS),
            plan.roles[IMAGE_TARGETS].threshold,
        )
        director_root = roots.next_root(history.director.current.signed, expires(DIRECTOR_ROOT))
        roots.replace_role_keys(
            director_root,
            Root.type,
            _keys_for(keys, DIRECTOR_ROOT),
            plan.roles[DIRECTOR_ROOT].threshold,
        )
        targets = roots.next_targets(history.image_targets.signed, expires(IMAGE_TARGETS))
    tufrepo.set_layout_keys(
        image_root, _keys_for(keys, LAYOUT), plan.roles[LAYOUT].threshold, expires(LAYOUT)
    )
    return {
        f"{tufrepo.IMAGE}/{tufrepo.metadata_filename(Root.type, image_root.version)}": Metadata(
            image_root
        ),
        f"{tufrepo.IMAGE}/{tufrepo.metadata_filename(Targets.type, targets.version)}": Metadata(
            targets
        ),
        f"{tufrepo.DIRECTOR}/{tufrepo.metadata_filename(Root.type, director_root.version)}": (
            Metadata(director_root)
        ),
    }
