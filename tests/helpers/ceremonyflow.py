"""A multi-officer ceremony run through the real API, one step per function.

Every officer has their own key directory and passphrase; the coordinator has
a workspace. Tests drive the steps one at a time (to tamper between them) or
all at once with :func:`run_ceremony`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airlock.bundles.audit import AuditLog
from airlock.bundles.clock import FixedClock
from airlock.bundles.db import make_engine
from airlock.ceremony.coordinator import (
    Transcript,
    Workspace,
    finalize,
    propose,
    seal_transcript,
    sign_transcript,
)
from airlock.ceremony.documents import load_plan, new_plan_text
from airlock.ceremony.officer import HsmSlot, generate_offer, sign_request
from airlock.ceremony.steps import StepLog
from helpers.hubenv import HUB_PASSPHRASE
from helpers.softhsm import USER_PIN

OFFICERS = ("alice", "bob", "carol")
WITNESSES = ("wendy",)


def passphrase_of(officer: str) -> str:
    """Each officer's own passphrase."""
    return f"{officer}'s long passphrase"


@dataclass
class Flow:
    """One ceremony in progress: where everyone's files are, and the shared clock."""

    base: Path
    clock: FixedClock
    ceremony_id: str
    officers: Sequence[str] = OFFICERS
    offers: dict[str, Path] = field(default_factory=dict)
    signatures: dict[str, Path] = field(default_factory=dict)
    request_sha256: str = ""

    @property
    def workspace(self) -> Workspace:
        """The coordinator's workspace."""
        return Workspace(self.base / f"{self.ceremony_id}-workspace")

    @property
    def plan(self) -> Path:
        """The plan (officers use the same bytes)."""
        return self.workspace.plan_file

    def keys(self, officer: str) -> Path:
        """The officer's key directory (shared across ceremonies, like a real laptop)."""
        return self.base / "officers" / officer

    def media(self, name: str) -> Path:
        """A file on the medium carried between machines."""
        folder = self.base / f"{self.ceremony_id}-media"
        folder.mkdir(exist_ok=True)
        return folder / name

    def out(self) -> Path:
        """The finished ceremony's directory."""
        return self.base / f"{self.ceremony_id}-out"


def p256_director_root(text: str) -> str:
    """A plan edit: the Director root keys become ECDSA P-256 (what the test token holds)."""
    head, _, tail = text.partition("[roles.director-root]")
    return head + "[roles.director-root]" + tail.replace('"ed25519"', '"ecdsa-p256"', 1)


def secrets_for(officer: str, pin: str = USER_PIN) -> Callable[[str], str]:
    """The officer's secrets handler: passphrase and token PIN."""
    return lambda name: pin if name == "pin" else passphrase_of(officer)


def start(
    base: Path,
    clock: FixedClock,
    ceremony_id: str = "test-ceremony",
    edit: Callable[[str], str] | None = None,
    officers: Sequence[str] = OFFICERS,
) -> Flow:
    """Writes the plan (default roles, optionally edited) into a new workspace."""
    flow = Flow(base, clock, ceremony_id, officers)
    text = new_plan_text(ceremony_id, "Test lab, room 1", officers, WITNESSES, clock.now())
    flow.workspace.directory.mkdir(parents=True)
    flow.plan.write_text(edit(text) if edit else text)
    load_plan(flow.plan)
    return flow


def keygen(
    flow: Flow,
    officer: str,
    *,
    hsm: dict[str, str] | None = None,
    new_roles: Sequence[str] = (),
    secrets: Callable[[str], str] | None = None,
) -> Path:
    """The officer makes (or re-offers) their keys; returns the offer file."""
    out = flow.media(f"{officer}.offer.json")
    handler = secrets or secrets_for(officer)
    generate_offer(
        load_plan(flow.plan),
        officer,
        flow.keys(officer),
        out,
        passphrase=handler,
        pin=handler,
        hsm={role: HsmSlot.parse(slot) for role, slot in (hsm or {}).items()},
        new_roles=frozenset(new_roles),
        clock=flow.clock,
    )
    flow.offers[officer] = out
    return out


def propose_all(flow: Flow, rotate_from: Path | None = None, revoke: Sequence[str] = ()) -> str:
    """The coordinator proposes from every collected offer; returns the request SHA-256."""
    _request, sha256 = propose(
        flow.workspace,
        [flow.offers[o] for o in flow.officers],
        rotate_from=rotate_from,
        revoke=revoke,
        hub_passphrase=(lambda _n: HUB_PASSPHRASE) if rotate_from is None else None,
        clock=flow.clock,
    )
    flow.request_sha256 = sha256
    return sha256


def sign(
    flow: Flow,
    officer: str,
    *,
    request: Path | None = None,
    seen: list[dict[str, Any]] | None = None,
    expect_sha256: str | None = None,
    secrets: Callable[[str], str] | None = None,
) -> Path:
    """The officer reviews (recording what they were shown) and signs."""
    out = flow.media(f"{officer}.sig.json")

    def confirm(summary: dict[str, Any]) -> bool:
        if seen is not None:
            seen.append(summary)
        return True

    sign_request(
        request or flow.workspace.request_file,
        flow.plan,
        officer,
        flow.keys(officer),
        out,
        secrets=secrets or secrets_for(officer),
        confirm=confirm,
        expect_sha256=expect_sha256,
        clock=flow.clock,
    )
    flow.signatures[officer] = out
    return out


def finish(flow: Flow, signers: Sequence[str] | None = None) -> Transcript:
    """Finalize with the given officers' signature files, then every officer signs the record."""
    names = signers if signers is not None else list(flow.signatures)
    finalize(flow.workspace, [flow.signatures[o] for o in names], flow.out(), flow.clock)
    files = []
    for officer in flow.officers:
        out = flow.media(f"{officer}.transcript-sig.json")
        sign_transcript(
            flow.out(),
            flow.plan,
            officer,
            flow.keys(officer),
            out,
            secrets=secrets_for(officer),
            confirm=lambda _t: True,
            clock=flow.clock,
        )
        files.append(out)
    with StepLog(flow.workspace.directory, flow.workspace.audit_db, flow.clock) as log:
        return seal_transcript(flow.out(), files, log)


def run_ceremony(
    base: Path,
    clock: FixedClock,
    ceremony_id: str = "test-ceremony",
    *,
    edit: Callable[[str], str] | None = None,
    hsm: dict[str, dict[str, str]] | None = None,
    rotate_from: Path | None = None,
    revoke: Sequence[str] = (),
    new_keys: dict[str, Sequence[str]] | None = None,
    step: dt.timedelta = dt.timedelta(minutes=1),
) -> Flow:
    """A whole ceremony: plan, keygen, propose, every officer signs, finalize, seal."""
    flow = start(base, clock, ceremony_id, edit)
    for officer in flow.officers:
        clock.advance(step)
        keygen(
            flow, officer, hsm=(hsm or {}).get(officer), new_roles=(new_keys or {}).get(officer, ())
        )
    clock.advance(step)
    propose_all(flow, rotate_from, revoke)
    for officer in flow.officers:
        clock.advance(step)
        sign(flow, officer)
    clock.advance(step)
    finish(flow)
    return flow


# --- what a step left behind -----------------------------------------------------------------


def audit_entries(directory: Path, database: str) -> list[tuple[str, str, dict[str, object]]]:
    """(action, outcome, details) of every entry of a ceremony directory's audit log."""
    engine = make_engine(f"sqlite:///{directory / database}")
    try:
        return [
            (r.action, r.outcome, json.loads(r.details))
            for r in AuditLog(engine, "ceremony").entries()
        ]
    finally:
        engine.dispose()


def tree(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` (except the audit database) and its bytes."""
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and not p.name.startswith(("officer-audit", "coordinator-audit"))
    }
