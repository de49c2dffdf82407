"""``ceremony finalize``: count the signatures; write the signed roots, record and transcript.

The output directory has the layout ``airlock hub init`` and ``airlock hub
trust update`` read (see :mod:`airlock.ceremony.roots._options`), every root version
from 1 (a rotation carries the earlier ones forward byte for byte), plus::

    DIR/inputs/plan.toml  DIR/inputs/request.json
    DIR/inputs/offers/<officer>.offer.json  DIR/inputs/signatures/<officer>.sig.json
    DIR/transcript.json   DIR/transcript.html

It is written into a staging directory and renamed into place only when
everything verified (:func:`airlock.ceremony.documents._output.staged_directory`). A
workspace is finalized once: ``WORK/finalized.json`` records where, and a
second ``finalize`` is refused before anything is written.
:func:`transcript_body` is shared with ``verify-transcript``, which rebuilds
the record from the files and compares.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuf.api.metadata import Metadata, Root, Targets

from airlock.bundles import ceremony_output
from airlock.bundles import tuf as tufrepo
from airlock.bundles.atomic import atomic_write_bytes, atomic_write_json
from airlock.bundles.ceremony_output import sha256_hex
from airlock.bundles.clock import Clock, utc_iso
from airlock.bundles.errors import IntegrityError, MediaError
from airlock.ceremony.coordinator._assemble import SignatureSource, assemble
from airlock.ceremony.coordinator._transcript import Transcript, tool_record, write_transcript
from airlock.ceremony.coordinator._workspace import DONE, WRITING, Workspace
from airlock.ceremony.documents._history import CeremonyHistory, load_history
from airlock.ceremony.documents._output import staged_directory
from airlock.ceremony.documents._plan import CeremonyPlan, parse_plan
from airlock.ceremony.documents._request import SigningRequest, read_request
from airlock.ceremony.documents._summary import fingerprint
from airlock.ceremony.officer._offers import KeyOffer, read_offer
from airlock.ceremony.officer._signing import read_signature_file
from airlock.ceremony.steps import StepLog

INPUTS = "inputs"
PLAN_INPUT = f"{INPUTS}/plan.toml"
REQUEST_INPUT = f"{INPUTS}/request.json"
OFFERS_INPUT = f"{INPUTS}/offers"
SIGNATURES_INPUT = f"{INPUTS}/signatures"
CONSUMED, PRODUCED, CARRIED = "consumed", "produced", "carried"


@dataclass(frozen=True)
class CeremonyInputs:
    """Everything a ceremony's outcome is derived from, as read from disk."""

    plan: CeremonyPlan
    plan_bytes: bytes
    offers: list[tuple[KeyOffer, bytes]]
    request: SigningRequest
    request_bytes: bytes
    signatures: list[tuple[SignatureSource, bytes]]

    @property
    def request_sha256(self) -> str:
        """The request's id."""
        return sha256_hex(self.request_bytes)


def offer_input(officer: str) -> str:
    """Where an officer's key offer is kept in the output."""
    return f"{OFFERS_INPUT}/{officer}.offer.json"


def signature_input(officer: str) -> str:
    """Where an officer's signature file is kept in the output."""
    return f"{SIGNATURES_INPUT}/{officer}.sig.json"


def finalize(
    workspace: Workspace, signature_files: Sequence[Path], out: Path, clock: Clock
) -> Transcript:
    """Verifies the officers' signatures and writes the finished ceremony to ``out``.

    Raises:
        FreshnessError: the plan expired.
        IntegrityError, SignatureError, UsageError: see :func:`.assemble`.
        ConflictError: ``out`` exists and is not empty, or this workspace was finalized
            before (one ceremony, one signed record).
        MediaError: the output could not be written (nothing is left behind).
    """
    with (
        StepLog(workspace.directory, workspace.audit_db, clock) as steps,
        steps.step(
            "ceremony.finalize", str(out), {"signatures": [str(p) for p in signature_files]}
        ) as audit,
    ):
        workspace.check_not_finalized()
        inputs = _read_inputs(workspace, signature_files)
        inputs.plan.check_valid(clock.now())
        metadata = assemble(
            inputs.request, inputs.request_sha256, [src for src, _raw in inputs.signatures]
        )
        previous = workspace.previous()
        history = load_history(previous) if previous is not None else None
        _check_previous(inputs.request, history)
        finished = clock.now()
        try:
            with staged_directory(out) as staging:
                transcript = _write_output(staging, workspace, inputs, metadata, history, finished)
                workspace.mark_finalized(out, inputs.request_sha256, WRITING)
        except OSError as exc:
            workspace.clear_finalizing(out)
            raise MediaError(
                f"cannot write the ceremony to {out} ({exc.strerror or type(exc).__name__})",
                hint="check the medium is mounted, writable and has space; nothing was left",
            ) from None
        except BaseException:
            workspace.clear_finalizing(out)
            raise
        workspace.mark_finalized(out, inputs.request_sha256, DONE)
        audit.update(
            ceremony_id=inputs.request.ceremony_id,
            request_sha256=inputs.request_sha256,
            transcript_sha256=transcript.sha256,
            metadata={
                path: a["sha256"]
                for path, a in transcript.body["artifacts"].items()
                if a["kind"] == PRODUCED
            },
        )
    return transcript


def _read_inputs(workspace: Workspace, signature_files: Sequence[Path]) -> CeremonyInputs:
    request, request_bytes = read_request(workspace.require_request())
    plan_bytes = workspace.plan_file.read_bytes()
    plan = parse_plan(plan_bytes, str(workspace.plan_file))
    offers = [read_offer(workspace.offer_copy(name)) for name in request.offers]
    signatures = []
    for path in signature_files:
        parsed, raw = read_signature_file(path)
        signatures.append((SignatureSource(parsed, str(path)), raw))
    order = {name: index for index, name in enumerate(plan.officer_names())}
    signatures.sort(key=lambda item: order.get(item[0].signatures.officer, len(order)))
    return CeremonyInputs(plan, plan_bytes, offers, request, request_bytes, signatures)


def _check_previous(request: SigningRequest, history: CeremonyHistory | None) -> None:
    """The rotation's previous roots are still the ones in the previous ceremony directory."""
    for repository in tufrepo.REPOSITORIES:
        stated = request.previous_root(repository)
        if (stated is None) != (history is None):
            raise IntegrityError("the request and the workspace disagree about the rotation")
        if stated is not None and history is not None:
            current = history.root(repository).current
            if tufrepo.to_bytes(stated) != tufrepo.to_bytes(current):
                raise IntegrityError(
                    f"the {repository} root the request rotates from is not the newest root "
                    f"of the previous ceremony ({history.directory})",
                    hint="the previous ceremony directory changed since propose; start over",
                )


def _write_output(
    staging: Path,
    workspace: Workspace,
    inputs: CeremonyInputs,
    metadata: Mapping[str, Metadata[Any]],
    history: CeremonyHistory | None,
    finished: dt.datetime,
) -> Transcript:
    request = inputs.request
    kinds: dict[str, str] = {}

    def put(relative: str, data: bytes, kind: str, mode: int = 0o644) -> None:
        atomic_write_bytes(staging / relative, data, mode=mode)
        kinds[relative] = kind

    for sub in (
        tufrepo.IMAGE,
        tufrepo.DIRECTOR,
        ceremony_output.ONLINE_DIR,
        OFFERS_INPUT,
        SIGNATURES_INPUT,
    ):
        (staging / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
    if history is not None:
        for repository in tufrepo.REPOSITORIES:
            for number, data in enumerate(history.root(repository).files, start=1):
                put(f"{repository}/{tufrepo.metadata_filename(Root.type, number)}", data, CARRIED)
        for number, data in sorted(history.targets_files.items()):
            put(f"{tufrepo.IMAGE}/{tufrepo.metadata_filename(Targets.type, number)}", data, CARRIED)
        online_source = history.directory
        online_kind = CARRIED
    else:
        online_source = workspace.directory
        online_kind = PRODUCED
    for name, ref in request.online_keys.items():
        relative = ceremony_output.online_key_path(name)
        if (online_source / relative).is_file():
            put(relative, (online_source / relative).read_bytes(), online_kind, mode=0o600)
        elif ref.uri.startswith("airlock-file:"):
            raise MediaError(f"the hub's online key file {relative} is missing")
    for path, md in metadata.items():
        put(path, tufrepo.to_bytes(md), PRODUCED)
    put(PLAN_INPUT, inputs.plan_bytes, CONSUMED)
    put(REQUEST_INPUT, inputs.request_bytes, CONSUMED)
    for offer, raw in inputs.offers:
        put(offer_input(offer.officer), raw, CONSUMED)
    for source, raw in inputs.signatures:
        put(signature_input(source.signatures.officer), raw, CONSUMED)
    record = ceremony_record(request, inputs.request_sha256, metadata, finished)
    atomic_write_json(staging / ceremony_output.CEREMONY_FILE, record)
    kinds[ceremony_output.CEREMONY_FILE] = PRODUCED
    artifacts = {
        relative: {"kind": kinds[relative], "sha256": sha256_hex((staging / relative).read_bytes())}
        for relative in sorted(kinds)
    }
    body = transcript_body(inputs, metadata, artifacts, finished, tool_record())
    transcript = Transcript(body, [])
    write_transcript(staging, transcript)
    return transcript


def ceremony_record(
    request: SigningRequest,
    request_sha256: str,
    metadata: Mapping[str, Metadata[Any]],
    finished: dt.datetime,
) -> dict[str, Any]:
    """``ceremony.json``: the fields of a minimal ceremony's record, and the plan's extras."""
    image_root = metadata[request.root_path(tufrepo.IMAGE)]
    targets = metadata[request.targets_path()]
    layout_keys, layout_threshold, layout_expires = tufrepo.layout_keys(image_root.signed)  # type: ignore[arg-type]
    algorithms = sorted({key.algorithm for key in request.keys})
    return {
        "ceremony_id": request.ceremony_id,
        "created": utc_iso(finished),
        "tool_version": request.tool_version,
        "algorithm": algorithms[0] if len(algorithms) == 1 else "mixed",
        "kind": request.kind,
        "plan_sha256": request.plan_sha256,
        "request_sha256": request_sha256,
        "previous_ceremony_id": (request.previous or {}).get("ceremony_id"),
        "offline_keys": {
            key.ref.name: key.ref.to_dict() | {"officer": key.officer, "role": key.role}
            for key in request.keys
        },
        "online_keys": {name: ref.to_dict() for name, ref in request.online_keys.items()},
        "revoked": list(request.revoked),
        "roots": {
            repository: {
                "version": md.signed.version,
                "expires": utc_iso(md.signed.expires),
                "threshold": md.signed.roles[Root.type].threshold,
                "sha256": sha256_hex(tufrepo.to_bytes(md)),
            }
            for repository in tufrepo.REPOSITORIES
            for md in [metadata[request.root_path(repository)]]
        },
        "image_targets": {
            "version": targets.signed.version,
            "expires": utc_iso(targets.signed.expires),
            "sha256": sha256_hex(tufrepo.to_bytes(targets)),
        },
        "layout": {
            "keyids": sorted(layout_keys),
            "threshold": layout_threshold,
            "expires": utc_iso(layout_expires),
        },
    }


def transcript_body(
    inputs: CeremonyInputs,
    metadata: Mapping[str, Metadata[Any]],
    artifacts: dict[str, dict[str, str]],
    finished: dt.datetime,
    tool: dict[str, Any],
) -> dict[str, Any]:
    """The transcript record (everything but the officers' signatures over it)."""
    plan, request = inputs.plan, inputs.request
    steps: list[dict[str, Any]] = []
    if plan.created is not None:
        steps.append(
            {
                "step": "plan",
                "actor": "coordinator",
                "time": utc_iso(plan.created),
                "outcome": f"plan with {len(plan.officers)} officer(s) and "
                f"{len(plan.witnesses)} witness(es), SHA-256 {plan.sha256}",
                "artifacts": [PLAN_INPUT],
            }
        )
    for offer, _raw in inputs.offers:
        steps.append(
            {
                "step": "keygen",
                "actor": offer.officer,
                "time": utc_iso(offer.created),
                "outcome": f"{len(offer.keys)} key(s) offered; every proof of possession verified",
                "artifacts": [offer_input(offer.officer)],
            }
        )
    steps.append(
        {
            "step": "propose",
            "actor": "coordinator",
            "time": utc_iso(request.created),
            "outcome": f"{request.kind} signing request for {', '.join(request.metadata)}",
            "artifacts": [PLAN_INPUT, REQUEST_INPUT],
        }
    )
    for source, _raw in inputs.signatures:
        sigs = source.signatures
        steps.append(
            {
                "step": "sign",
                "actor": sigs.officer,
                "time": utc_iso(sigs.signed_at),
                "outcome": f"reviewed and signed: {len(sigs.signatures)} signature(s) verified",
                "artifacts": [signature_input(sigs.officer)],
            }
        )
    steps.append(
        {
            "step": "finalize",
            "actor": "coordinator",
            "time": utc_iso(finished),
            "outcome": "every threshold met; signed metadata and record written",
            "artifacts": [*metadata, ceremony_output.CEREMONY_FILE],
        }
    )
    return {
        "type": "airlock-ceremony-transcript",
        "ceremony_id": request.ceremony_id,
        "kind": request.kind,
        "location": plan.location,
        "started": min(step["time"] for step in steps),
        "finished": utc_iso(finished),
        "plan_sha256": plan.sha256,
        "request_sha256": inputs.request_sha256,
        "participants": {
            "officers": [p.to_dict() | {"roles": plan.roles_of(p.name)} for p in plan.officers],
            "witnesses": [p.to_dict() for p in plan.witnesses],
        },
        "steps": steps,
        "keys": [
            {
                "officer": key.officer,
                "role": key.role,
                "keyid": key.ref.keyid,
                "fingerprint": fingerprint(key.ref.keyid),
                "algorithm": key.algorithm,
                "storage": key.storage,
                "public_key": key.ref.public_key.to_dict(),
            }
            for key in request.keys
        ],
        "online_keys": [
            {"name": name, "keyid": ref.keyid, "fingerprint": fingerprint(ref.keyid)}
            for name, ref in request.online_keys.items()
        ],
        "revoked": list(request.revoked),
        "metadata": [
            {
                "file": path,
                "version": md.signed.version,
                "expires": utc_iso(md.signed.expires),
                "signed_by": sorted(md.signatures),
            }
            for path, md in metadata.items()
        ],
        "artifacts": artifacts,
        "tool": tool,
        "previous": _previous_summary(request),
    }


def _previous_summary(request: SigningRequest) -> dict[str, Any] | None:
    if request.previous is None:
        return None
    versions = {}
    for repository in tufrepo.REPOSITORIES:
        root = request.previous_root(repository)
        assert root is not None
        versions[f"{repository}_root_version"] = root.signed.version
    return {"ceremony_id": request.previous.get("ceremony_id"), **versions}
