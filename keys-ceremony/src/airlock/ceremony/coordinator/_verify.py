"""``ceremony verify-transcript``: re-derive a ceremony's record from its files and compare.

Nothing in ``transcript.json`` is taken on trust. From ``inputs/`` (plan,
key offers, request, signature files) the verifier checks every proof of
possession and every signature, counts the thresholds again, rebuilds the
signed metadata, ``ceremony.json`` and the transcript record, and compares
them with what is on disk; it checks the SHA-256 of every file in the
directory (and that no file is unlisted), the root chains, the officers'
signatures over the record, that ``transcript.html`` is byte for byte the
page the signed record renders (the page is not trusted: it is regenerated
and compared), and that the installed Airlock packages are the
ones the transcript names.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuf.api.metadata import Metadata

from airlock.bundles import ceremony_output
from airlock.bundles import tuf as tufrepo
from airlock.bundles.canonical import canonical_bytes
from airlock.bundles.ceremony_output import sha256_hex
from airlock.bundles.clock import parse_utc
from airlock.bundles.errors import AirlockError, IntegrityError
from airlock.bundles.tuf import parse_metadata
from airlock.ceremony.coordinator._assemble import SignatureSource, assemble
from airlock.ceremony.coordinator._finalize import (
    PLAN_INPUT,
    REQUEST_INPUT,
    SIGNATURES_INPUT,
    CeremonyInputs,
    ceremony_record,
    offer_input,
    transcript_body,
)
from airlock.ceremony.coordinator._transcript import (
    HTML_FILE,
    TRANSCRIPT_FILE,
    Transcript,
    check_html,
    check_transcript_signature,
    read_transcript,
    tool_record,
)
from airlock.ceremony.documents._history import load_history
from airlock.ceremony.documents._plan import parse_plan
from airlock.ceremony.documents._request import read_request
from airlock.ceremony.officer._offers import read_offer, verify_offer
from airlock.ceremony.officer._signing import read_signature_file

UNLISTED = {TRANSCRIPT_FILE, HTML_FILE}


@dataclass
class Report:
    """The outcome of every check, in order."""

    checks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(check["ok"] for check in self.checks)

    def run(self, name: str, check: Callable[[], str]) -> bool:
        """Runs one check; a raised error is a failed check (with its message)."""
        try:
            detail = check()
        except AirlockError as exc:
            self.checks.append({"check": name, "ok": False, "detail": exc.message})
            return False
        except Exception as exc:  # a malformed file must fail the check, not the verifier
            detail = f"unreadable or malformed input ({type(exc).__name__}: {exc})"
            self.checks.append({"check": name, "ok": False, "detail": detail})
            return False
        self.checks.append({"check": name, "ok": True, "detail": detail})
        return True

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"ok": self.ok, "checks": self.checks}


def _mismatch(what: str, expected: Any, found: Any) -> IntegrityError:
    for key in sorted(set(expected) | set(found)) if isinstance(expected, dict) else []:
        if isinstance(found, dict) and expected.get(key) != found.get(key):
            return IntegrityError(f"{what} differs at {key!r}")
    return IntegrityError(f"{what} differs")


def verify_transcript(directory: Path, check_tool: bool = True) -> Report:
    """Checks a finished ceremony directory (see the module docstring)."""
    directory = Path(directory)
    report = Report()
    state: dict[str, Any] = {}

    def transcript() -> str:
        state["transcript"] = read_transcript(directory)
        return f"record SHA-256 {state['transcript'].sha256}"

    if not report.run("transcript.json is readable", transcript):
        return report
    recorded: Transcript = state["transcript"]
    body = recorded.body

    def artifacts() -> str:
        on_disk = {
            path.relative_to(directory).as_posix(): sha256_hex(path.read_bytes())
            for path in sorted(directory.rglob("*"))
            if path.is_file() and path.relative_to(directory).as_posix() not in UNLISTED
        }
        listed = {path: item["sha256"] for path, item in body["artifacts"].items()}
        missing = sorted(set(listed) - set(on_disk))
        extra = sorted(set(on_disk) - set(listed))
        changed = sorted(p for p in set(listed) & set(on_disk) if listed[p] != on_disk[p])
        problems = [f"missing {', '.join(missing)}"] if missing else []
        problems += [f"not in the transcript: {', '.join(extra)}"] if extra else []
        problems += [f"SHA-256 differs: {', '.join(changed)}"] if changed else []
        if problems:
            raise IntegrityError("; ".join(problems))
        return f"{len(listed)} files, every SHA-256 matches"

    report.run("every artifact is present and unchanged", artifacts)

    def inputs() -> str:
        plan_bytes = (directory / PLAN_INPUT).read_bytes()
        plan = parse_plan(plan_bytes, PLAN_INPUT)
        request, request_bytes = read_request(directory / REQUEST_INPUT)
        if request.plan_sha256 != plan.sha256:
            raise IntegrityError("the request names another plan than inputs/plan.toml")
        offers = []
        for officer, sha in request.offers.items():
            offer, raw = read_offer(directory / offer_input(officer))
            if sha256_hex(raw) != sha:
                raise IntegrityError(f"{officer}'s key offer is not the one the request used")
            verify_offer(plan, offer, offer_input(officer))
            for key in offer.keys:
                listed = [k for k in request.keys if k.officer == officer and k.role == key.role]
                if [k.ref.keyid for k in listed] != [key.ref.keyid]:
                    raise IntegrityError(
                        f"the request's {key.role} key for {officer} is not the offered key"
                    )
            offers.append((offer, raw))
        if sorted(request.offers) != sorted(plan.officer_names()):
            raise IntegrityError("the request does not carry one key offer per officer")
        signatures = []
        for path in sorted((directory / SIGNATURES_INPUT).glob("*.sig.json")):
            parsed, raw = read_signature_file(path)
            signatures.append((SignatureSource(parsed, path.name), raw))
        order = {name: index for index, name in enumerate(plan.officer_names())}
        signatures.sort(key=lambda item: order.get(item[0].signatures.officer, len(order)))
        state["inputs"] = CeremonyInputs(
            plan, plan_bytes, offers, request, request_bytes, signatures
        )
        return (
            f"plan, {len(offers)} key offers (proofs verified), request, "
            f"{len(signatures)} signature files"
        )

    if not report.run("inputs: plan, key offers and proofs of possession, request", inputs):
        return report
    given: CeremonyInputs = state["inputs"]

    def signatures() -> str:
        state["metadata"] = assemble(
            given.request, given.request_sha256, [s for s, _raw in given.signatures]
        )
        return "every signature verifies; every threshold is met"

    if not report.run("officers' signatures and thresholds", signatures):
        return report
    metadata: dict[str, Metadata[Any]] = state["metadata"]

    def signed_files() -> str:
        for path, md in metadata.items():
            on_disk = parse_metadata((directory / path).read_bytes(), type(md.signed), path)
            if on_disk.signed_bytes != md.signed_bytes:
                raise IntegrityError(f"{path} is not the metadata the officers signed")
            if {k: s.signature for k, s in on_disk.signatures.items()} != {
                k: s.signature for k, s in md.signatures.items()
            }:
                raise IntegrityError(f"{path} carries other signatures than the signature files")
        history = load_history(directory)
        for repository in tufrepo.REPOSITORIES:
            previous = given.request.previous_root(repository)
            roots = history.root(repository).roots
            if previous is not None and tufrepo.to_bytes(roots[-2]) != tufrepo.to_bytes(previous):
                raise IntegrityError(f"the {repository} root chain does not lead to the new root")
        return f"{', '.join(metadata)}; root chains verify from version 1"

    report.run("signed metadata matches the signatures; root chains", signed_files)

    def record() -> str:
        finished = parse_utc(body["finished"])
        expected = ceremony_record(given.request, given.request_sha256, metadata, finished)
        found = json.loads((directory / ceremony_output.CEREMONY_FILE).read_bytes())
        if canonical_bytes(expected) != canonical_bytes(found):
            raise _mismatch(ceremony_output.CEREMONY_FILE, expected, found)
        rebuilt = transcript_body(given, metadata, body["artifacts"], finished, body["tool"])
        if canonical_bytes(rebuilt) != canonical_bytes(body):
            raise _mismatch("the transcript record", rebuilt, body)
        return "ceremony.json and the transcript match what the inputs show"

    report.run("record and transcript rebuilt from the inputs", record)

    def officer_signatures() -> str:
        officers = [p["name"] for p in body["participants"]["officers"]]
        for item in recorded.signatures:
            check_transcript_signature(recorded, item, f"{item.get('officer')}'s signature")
        signed = [item["officer"] for item in recorded.signatures]
        missing = [o for o in officers if o not in signed]
        if missing or len(signed) != len(set(signed)):
            raise IntegrityError(
                f"the transcript is not signed by {', '.join(missing) or 'each officer once'}",
                hint="each officer runs `airlock ceremony sign-transcript`; the coordinator "
                "adds them with `seal-transcript`",
            )
        return f"signed by {', '.join(signed)}"

    report.run("every officer signed the transcript", officer_signatures)

    def page() -> str:
        check_html(directory, recorded)
        return f"{HTML_FILE} is, byte for byte, the page {TRANSCRIPT_FILE} renders"

    report.run(f"{HTML_FILE} is rendered from the signed record", page)

    def tool() -> str:
        installed = tool_record()
        if installed != body["tool"]:
            raise IntegrityError(
                f"the installed Airlock (version {installed['version']}) is not the one that "
                f"ran the ceremony (version {body['tool']['version']}): package SHA-256 differs",
                hint="verify on a machine with the ceremony's release, or pass --any-tool to "
                "skip this check",
            )
        return "installed packages match the transcript's SHA-256"

    if check_tool:
        report.run("the installed tool is the one that ran the ceremony", tool)
    return report
