"""The ceremony transcript: a signed, machine-verifiable record, and its printable page.

``finalize`` writes ``transcript.json``::

    {"transcript": {ceremony_id, kind, location, started, finished, plan_sha256,
                    request_sha256, participants, steps, keys, online_keys, revoked,
                    metadata, artifacts: {path: {kind, sha256}}, tool, previous},
     "signatures": [{"officer", "keyid", "sig", "signed_at"}, …]}

and renders ``transcript.html`` (jinja2, printable, with lines for the
witnesses' hand signatures). Each officer then signs the canonical JSON of the
``transcript`` object on their own machine (``sign-transcript``); the
coordinator adds the signatures (``seal-transcript``). ``verify-transcript``
(:mod:`airlock.ceremony.coordinator._verify`) re-derives the record from the files on disk.
"""

from __future__ import annotations

import hashlib
import json
import stat
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from securesystemslib.signer import Key, Signature

from airlock.bundles import __version__
from airlock.bundles.atomic import atomic_write_bytes
from airlock.bundles.canonical import canonical_bytes, pretty_bytes
from airlock.bundles.ceremony_output import sha256_hex
from airlock.bundles.clock import Clock, parse_utc, utc_iso
from airlock.bundles.errors import (
    ConflictError,
    IntegrityError,
    MissingFileError,
    NotFoundError,
    SignatureError,
    UsageError,
)
from airlock.ceremony.documents._plan import ROLES, load_plan
from airlock.ceremony.documents._summary import fingerprint
from airlock.ceremony.officer._keydir import AUDIT_DB, OfficerKeys, sign_with
from airlock.ceremony.steps import StepLog

TRANSCRIPT_FILE = "transcript.json"
HTML_FILE = "transcript.html"
SIGNATURE_TYPE = "airlock-transcript-signature"
PACKAGES = ("airlock.ceremony", "airlock.bundles")
"""The installed packages whose SHA-256 the transcript records."""


def package_digest(package: str) -> str:
    """SHA-256 over the installed files of ``package`` (sorted paths and their SHA-256s).

    Byte-code caches are left out; everything else in the package directory counts.
    """
    root = Path(str(resources.files(package)))
    lines = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            lines.append(f"{path.relative_to(root).as_posix()}\0{digest}\n")
    return hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()


def tool_record() -> dict[str, Any]:
    """The tool version and the SHA-256 of each installed Airlock package that ran."""
    return {"version": __version__, "packages": {p: package_digest(p) for p in PACKAGES}}


def body_sha256(body: dict[str, Any]) -> str:
    """The SHA-256 of the canonical JSON of a transcript body (what officers sign)."""
    return sha256_hex(canonical_bytes(body))


@dataclass(frozen=True)
class Transcript:
    """A transcript file: the record and the officers' signatures over it."""

    body: dict[str, Any]
    signatures: list[dict[str, str]]

    @property
    def sha256(self) -> str:
        """The SHA-256 officers sign (see :func:`body_sha256`)."""
        return body_sha256(self.body)

    def officer_key(self, officer: str) -> dict[str, Any]:
        """The key ``officer`` signs the transcript with: their key for their first role."""
        keys = [k for k in self.body["keys"] if k["officer"] == officer]
        if not keys:
            raise UsageError(f"{officer!r} has no key in ceremony {self.body['ceremony_id']}")
        return min(keys, key=lambda k: ROLES.index(k["role"]))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"transcript": self.body, "signatures": self.signatures}


def read_transcript(directory: Path) -> Transcript:
    """Reads ``DIR/transcript.json``.

    Raises:
        NotFoundError: no transcript.
        UsageError: malformed.
    """
    path = Path(directory) / TRANSCRIPT_FILE
    try:
        doc = json.loads(path.read_bytes())
        return Transcript(body=dict(doc["transcript"]), signatures=list(doc["signatures"]))
    except FileNotFoundError:
        raise NotFoundError(
            f"{directory} holds no transcript ({TRANSCRIPT_FILE})",
            hint="pass the directory `airlock ceremony finalize --out` wrote",
        ) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{path} is malformed ({type(exc).__name__}: {exc})") from None


def write_transcript(directory: Path, transcript: Transcript) -> None:
    """Writes ``transcript.json`` and renders ``transcript.html`` next to it."""
    atomic_write_bytes(Path(directory) / TRANSCRIPT_FILE, pretty_bytes(transcript.to_dict()))
    atomic_write_bytes(Path(directory) / HTML_FILE, render_html(transcript).encode("utf-8"))


def render_html(transcript: Transcript) -> str:
    """The printable page of a transcript: a pure function of ``transcript.json``'s content.

    The record is rendered as it reads back from ``transcript.json`` (sorted keys),
    so ``verify-transcript`` can render it again and compare byte for byte.
    """
    doc = json.loads(pretty_bytes(transcript.to_dict()))
    transcript = Transcript(body=doc["transcript"], signatures=doc["signatures"])
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("airlock.ceremony", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    by_officer = {s["officer"]: s for s in transcript.signatures}
    officers = [p["name"] for p in transcript.body["participants"]["officers"]]
    return env.get_template("transcript.html.j2").render(
        t=transcript.body,
        transcript_sha256=transcript.sha256,
        officer_signatures=[{"officer": o, "signature": by_officer.get(o)} for o in officers],
    )


def check_html(directory: Path, transcript: Transcript) -> None:
    """Checks ``DIR/transcript.html`` is, byte for byte, the page ``transcript`` renders.

    Raises:
        IntegrityError: the page is missing, not a regular file, or differs.
    """
    path = Path(directory) / HTML_FILE
    hint = (
        "do not trust the page; take it from an officer's copy of the ceremony, or print a "
        f"fresh one from the signed {TRANSCRIPT_FILE}: `airlock ceremony render-transcript "
        f"--dir {directory} --out FILE`"
    )
    try:
        if not stat.S_ISREG(path.lstat().st_mode):
            raise IntegrityError(f"{HTML_FILE} is not a regular file", hint=hint)
        found = path.read_bytes()
    except FileNotFoundError:
        raise IntegrityError(f"{HTML_FILE} is missing", hint=hint) from None
    if found != render_html(transcript).encode("utf-8"):
        raise IntegrityError(
            f"{HTML_FILE} differs from the page the signed {TRANSCRIPT_FILE} renders "
            "(it was edited, or rendered by another Airlock release)",
            hint=hint,
        )


def check_transcript_signature(transcript: Transcript, item: dict[str, str], source: str) -> None:
    """Checks one officer signature over a transcript.

    Raises:
        SignatureError: wrong key for the officer, or the signature does not verify.
    """
    key = transcript.officer_key(item["officer"])
    if item["keyid"] != key["keyid"]:
        raise SignatureError(
            f"{source}: {item['officer']} signed with key {fingerprint(item['keyid'])}, not "
            f"with their {key['role']} key {key['fingerprint']}",
        )
    public = Key.from_dict(key["keyid"], dict(key["public_key"]))
    try:
        public.verify_signature(
            Signature(item["keyid"], item["sig"]), canonical_bytes(transcript.body)
        )
    except Exception:
        raise SignatureError(
            f"{source}: {item['officer']}'s signature over the transcript does not verify",
            hint="the transcript or the signature was altered; compare with the officers' copies",
        ) from None


# --- the second round: officers sign the record ------------------------------------------------


def sign_transcript(
    directory: Path,
    plan_path: Path,
    officer: str,
    keys_dir: Path,
    out: Path,
    *,
    secrets: Callable[[str], str],
    confirm: Callable[[Transcript], bool],
    clock: Clock,
) -> dict[str, str]:
    """An officer signs the transcript in ``directory``; writes the signature to ``out``.

    Raises:
        IntegrityError: the transcript is for another plan.
        UsageError: the officer declined, or has no key in this ceremony.
        SecretError: wrong passphrase or PIN.
    """
    OfficerKeys.require(keys_dir)  # no key directory: nowhere to audit, nothing done
    with (
        StepLog(keys_dir, AUDIT_DB, clock) as steps,
        steps.step("ceremony.transcript.sign", officer, {"dir": str(directory)}) as audit,
    ):
        officer_keys = OfficerKeys.open(keys_dir, officer)
        transcript = read_transcript(directory)
        audit["transcript_sha256"] = transcript.sha256
        plan = load_plan(plan_path)
        if plan.sha256 != transcript.body["plan_sha256"]:
            raise IntegrityError(
                "the transcript is for another plan than yours",
                hint="do not sign; compare plan files with the coordinator",
            )
        key = transcript.officer_key(officer)
        mine = officer_keys.by_keyid().get(key["keyid"])
        if mine is None:
            raise UsageError(
                f"your key directory does not hold your {key['role']} key {key['fingerprint']}",
                hint="pass the --keys directory you used in this ceremony",
            )
        if out.exists():
            raise ConflictError(f"{out} already exists", hint="choose another --out")
        if not confirm(transcript):
            raise UsageError("not signed: the officer did not confirm the transcript")
        signer = officer_keys.store(secrets).signer(mine.ref)
        signature = sign_with(signer, canonical_bytes(transcript.body), mine.ref.name)
        item = {
            "type": SIGNATURE_TYPE,
            "ceremony_id": str(transcript.body["ceremony_id"]),
            "transcript_sha256": transcript.sha256,
            "officer": officer,
            "keyid": signature.keyid,
            "sig": signature.signature,
            "signed_at": utc_iso(clock.now()),
        }
        atomic_write_bytes(out, pretty_bytes(item))
    return item


def seal_transcript(directory: Path, signature_files: list[Path], log: StepLog) -> Transcript:
    """Adds officers' transcript signatures to ``transcript.json`` (each one verified).

    Raises:
        IntegrityError: a signature is over another transcript.
        SignatureError: a signature does not verify.
        UsageError: a malformed or duplicate signature file.
    """
    with log.step("ceremony.transcript.seal", str(directory), {}) as audit:
        transcript = read_transcript(directory)
        by_officer = {s["officer"]: s for s in transcript.signatures}
        for path in signature_files:
            try:
                doc = json.loads(Path(path).read_bytes())
                if doc.get("type") != SIGNATURE_TYPE:
                    raise ValueError(f"type is {doc.get('type')!r}")
                item = {k: str(doc[k]) for k in ("officer", "keyid", "sig", "signed_at")}
                parse_utc(item["signed_at"])
                signed_sha = str(doc["transcript_sha256"])
            except FileNotFoundError:
                raise MissingFileError(f"no transcript signature at {path}") from None
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise UsageError(f"{path} is not a transcript signature ({exc})") from None
            if signed_sha != transcript.sha256:
                raise IntegrityError(
                    f"{path} signs another transcript ({signed_sha[:16]}…)",
                    hint="the officer must sign this directory's transcript.json",
                )
            if item["officer"] in by_officer:
                raise UsageError(
                    f"{path}: {item['officer']} has already signed this transcript",
                    hint="pass each officer's transcript signature once",
                )
            check_transcript_signature(transcript, item, str(path))
            by_officer[item["officer"]] = item
        officers = [p["name"] for p in transcript.body["participants"]["officers"]]
        sealed = Transcript(transcript.body, [by_officer[o] for o in officers if o in by_officer])
        write_transcript(directory, sealed)
        audit["transcript_sha256"] = sealed.sha256
        audit["signed_by"] = [s["officer"] for s in sealed.signatures]
        audit["missing"] = [o for o in officers if o not in by_officer]
    return sealed
