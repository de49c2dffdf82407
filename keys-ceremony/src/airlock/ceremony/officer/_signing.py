"""Reviewing and signing a request on an officer's machine; the detached signature file.

``airlock ceremony sign`` reads ``request.json`` once, checks it against the
officer's own copy of the plan (and, if given, the request SHA-256 the
coordinator read aloud), shows the summary of :mod:`airlock.ceremony.officer._review`,
and only after the officer confirms signs *those same bytes* with each of the
officer's keys that a file needs. The signatures go to a detached file::

    {"type": "airlock-signatures", "ceremony_id", "plan_sha256", "request_sha256",
     "officer", "signed_at", "tool_version",
     "signatures": [{"file": "image/2.root.json", "keyid", "sig"}, …]}

Each signature is a TUF signature over the file's canonical ``signed`` part,
so it also verifies only over *this* request's metadata: a request altered
after review yields signatures that do not verify against the original, and a
signature file names the request it was made for.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airlock.bundles import __version__
from airlock.bundles import tuf as tufrepo
from airlock.bundles.atomic import atomic_write_bytes
from airlock.bundles.canonical import pretty_bytes
from airlock.bundles.ceremony_output import sha256_hex
from airlock.bundles.clock import Clock, parse_utc, utc_iso
from airlock.bundles.errors import (
    ConflictError,
    IntegrityError,
    MissingFileError,
    UsageError,
)
from airlock.ceremony.documents._plan import load_plan
from airlock.ceremony.documents._request import SigningRequest, parse_request
from airlock.ceremony.documents._summary import fingerprint
from airlock.ceremony.officer._keydir import AUDIT_DB, OfficerKeys, sign_with
from airlock.ceremony.officer._review import request_summary
from airlock.ceremony.steps import StepLog

SIGNATURES_TYPE = "airlock-signatures"


@dataclass(frozen=True)
class FileSignature:
    """One signature over one file of the request."""

    file: str
    keyid: str
    sig: str

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form."""
        return {"file": self.file, "keyid": self.keyid, "sig": self.sig}


@dataclass(frozen=True)
class SignatureFile:
    """An officer's detached signatures over one request."""

    ceremony_id: str
    plan_sha256: str
    request_sha256: str
    officer: str
    signed_at: dt.datetime
    tool_version: str
    signatures: tuple[FileSignature, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "type": SIGNATURES_TYPE,
            "ceremony_id": self.ceremony_id,
            "plan_sha256": self.plan_sha256,
            "request_sha256": self.request_sha256,
            "officer": self.officer,
            "signed_at": utc_iso(self.signed_at),
            "tool_version": self.tool_version,
            "signatures": [s.to_dict() for s in self.signatures],
        }


def read_signature_file(path: Path) -> tuple[SignatureFile, bytes]:
    """Reads a signature file (unverified).

    Raises:
        NotFoundError: no such file.
        UsageError: not a signature file.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise MissingFileError(f"no signature file at {path}") from None
    try:
        doc = json.loads(data)
        if doc.get("type") != SIGNATURES_TYPE:
            raise ValueError(f"type is {doc.get('type')!r}")
        parsed = SignatureFile(
            ceremony_id=str(doc["ceremony_id"]),
            plan_sha256=str(doc["plan_sha256"]),
            request_sha256=str(doc["request_sha256"]),
            officer=str(doc["officer"]),
            signed_at=parse_utc(doc["signed_at"]),
            tool_version=str(doc["tool_version"]),
            signatures=tuple(
                FileSignature(str(s["file"]), str(s["keyid"]), str(s["sig"]))
                for s in doc["signatures"]
            ),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(
            f"{path} is not a signature file ({type(exc).__name__}: {exc})",
            hint="carry the file `airlock ceremony sign` wrote, unchanged",
        ) from None
    return parsed, data


def signing_tasks(request: SigningRequest, officer_keys: OfficerKeys) -> list[dict[str, str]]:
    """Which files each of the officer's keys must sign (files in request order)."""
    mine = officer_keys.by_keyid()
    tasks = []
    for path in request.metadata:
        wanted: set[str] = set()
        for need in request.requirements(path):
            wanted.update(kid for kid in need.keys if kid in mine)
        for keyid in sorted(wanted):
            tasks.append(
                {
                    "file": path,
                    "keyid": keyid,
                    "role": mine[keyid].role,
                    "fingerprint": fingerprint(keyid),
                }
            )
    return tasks


def sign_request(
    request_path: Path,
    plan_path: Path,
    officer: str,
    keys_dir: Path,
    out: Path,
    *,
    secrets: Callable[[str], str],
    confirm: Callable[[dict[str, Any]], bool],
    expect_sha256: str | None,
    clock: Clock,
) -> SignatureFile:
    """Reviews and signs a request; writes the officer's signature file to ``out``.

    Args:
        request_path: The request the coordinator handed over.
        plan_path: The officer's own copy of the plan.
        officer: Who signs.
        keys_dir: The officer's key directory.
        out: The signature file to write (must not exist).
        secrets: Gives the passphrase (``"passphrase"``) or token PIN (``"pin"``).
        confirm: Shown the summary; returns True to sign.
        expect_sha256: The request SHA-256 the coordinator announced, if any.
        clock: Source of "now".

    Raises:
        IntegrityError: the request is not the announced one, or names another plan.
        FreshnessError: the plan expired.
        UsageError: nothing for this officer to sign, or the officer declined.
        SecretError: wrong passphrase or PIN (no signature file is written).
    """
    OfficerKeys.require(keys_dir)  # no key directory: nowhere to audit, nothing done
    with (
        StepLog(keys_dir, AUDIT_DB, clock) as steps,
        steps.step("ceremony.sign", officer, {"request": str(request_path)}) as audit,
    ):
        officer_keys = OfficerKeys.open(keys_dir, officer)
        try:
            data = Path(request_path).read_bytes()  # read once: shown and signed
        except FileNotFoundError:
            raise MissingFileError(
                f"no signing request at {request_path}",
                hint="copy request.json from the coordinator's medium",
            ) from None
        request_sha256 = sha256_hex(data)
        audit["request_sha256"] = request_sha256
        result = _sign(
            data, request_sha256, plan_path, officer_keys, out, secrets, confirm,
            expect_sha256, clock,
        )  # fmt: skip
        audit["signatures"] = [s.to_dict() | {"sig": "…"} for s in result.signatures]
        audit["signature_file_sha256"] = sha256_hex(Path(out).read_bytes())
    return result


def _sign(
    data: bytes,
    request_sha256: str,
    plan_path: Path,
    officer_keys: OfficerKeys,
    out: Path,
    secrets: Callable[[str], str],
    confirm: Callable[[dict[str, Any]], bool],
    expect_sha256: str | None,
    clock: Clock,
) -> SignatureFile:
    if expect_sha256 is not None and expect_sha256.lower() != request_sha256:
        raise IntegrityError(
            f"the request's SHA-256 is {request_sha256}, not the announced {expect_sha256}",
            hint="do not sign: the request was altered or is not the one the coordinator "
            "read out; ask for it again",
        )
    request = parse_request(data)
    plan = load_plan(plan_path)
    if plan.sha256 != request.plan_sha256 or plan.ceremony_id != request.ceremony_id:
        raise IntegrityError(
            f"the request was made for plan {request.plan_sha256[:16]}… of ceremony "
            f"{request.ceremony_id}, not for your plan {plan.sha256[:16]}… ({plan.ceremony_id})",
            hint="do not sign; compare plan files with the coordinator",
        )
    plan.check_valid(clock.now())
    plan.check_officer(officer_keys.officer)
    for repository in tufrepo.REPOSITORIES:
        previous = request.previous_root(repository)
        if previous is not None:
            tufrepo.check_root_signed(previous)
    tasks = signing_tasks(request, officer_keys)
    if not tasks:
        raise UsageError(
            f"no file of this request needs a signature from {officer_keys.officer}'s keys",
            hint="check --officer and --keys; nothing was signed",
        )
    if out.exists():
        raise ConflictError(f"{out} already exists", hint="choose another --out")
    if not confirm(request_summary(request, request_sha256, tasks)):
        raise UsageError(
            "not signed: the officer did not confirm the request",
            hint="if something on screen was wrong, tell the coordinator and the witnesses",
        )
    mine = officer_keys.by_keyid()
    store = officer_keys.store(secrets)
    signers = {kid: store.signer(mine[kid].ref) for kid in {t["keyid"] for t in tasks}}
    signatures = []
    for task in tasks:
        md = request.unsigned(task["file"])
        signature = sign_with(signers[task["keyid"]], md.signed_bytes, mine[task["keyid"]].ref.name)
        signatures.append(FileSignature(task["file"], task["keyid"], signature.signature))
    result = SignatureFile(
        ceremony_id=request.ceremony_id,
        plan_sha256=request.plan_sha256,
        request_sha256=request_sha256,
        officer=officer_keys.officer,
        signed_at=clock.now(),
        tool_version=__version__,
        signatures=tuple(signatures),
    )
    atomic_write_bytes(out, pretty_bytes(result.to_dict()))
    return result
