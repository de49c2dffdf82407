"""The commands each officer runs on their own machine: ``keygen``, ``sign``, ``sign-transcript``.

Runbook: docs/security-officer.md.
"""

from __future__ import annotations

from pathlib import Path

import click

from airlock.bundles.clock import SystemClock
from airlock.ceremony.cli._options import (
    JSON,
    KEYS,
    OFFICER,
    OUT_FILE,
    PLAN,
    YES,
    OfficerSecrets,
    console_out,
    typed_hash_confirmation,
)
from airlock.ceremony.coordinator._transcript import Transcript, sign_transcript
from airlock.ceremony.documents._plan import ROLES, load_plan
from airlock.ceremony.officer._offers import HsmSlot, generate_offer
from airlock.ceremony.officer._review import render_request
from airlock.ceremony.officer._signing import sign_request


@click.command("keygen")
@PLAN
@OFFICER
@KEYS
@OUT_FILE
@click.option(
    "--hsm",
    "hsm_specs",
    multiple=True,
    metavar="ROLE=TOKEN:KEY_ID",
    help="Use a key already on a PKCS#11 token for ROLE (PYKCS11LIB names the module).",
)
@click.option(
    "--new-key", "new_keys", multiple=True, type=click.Choice(ROLES), help="Replace your key."
)
def keygen(
    plan_path: Path,
    officer: str,
    keys_dir: Path,
    out: Path,
    hsm_specs: tuple[str, ...],
    new_keys: tuple[str, ...],
) -> None:
    """Make (or re-offer) your keys for your roles, and write your key offer.

    Carry the offer file (public keys and proofs of possession) to the
    coordinator; the key directory never leaves your machine.
    """
    hsm = {}
    for spec in hsm_specs:
        role, _, slot = spec.partition("=")
        if role not in ROLES:
            raise click.BadParameter(f"unknown role {role!r}", param_hint="--hsm")
        hsm[role] = HsmSlot.parse(slot)
    plan = load_plan(plan_path)
    secrets = OfficerSecrets(confirm_passphrase=True)
    offer = generate_offer(
        plan,
        officer,
        keys_dir,
        out,
        passphrase=secrets,
        pin=secrets,
        hsm=hsm,
        new_roles=frozenset(new_keys),
        clock=SystemClock(),
    )
    console = console_out()
    console.print(f"[bold]Key offer for {officer}[/] written to {out}")
    for key in offer.keys:
        console.print(f"  {key.role:<14} {key.ref.keyid}  ({key.to_dict()['storage']})")
    console.print("carry the offer file to the coordinator; keep your key directory here")


@click.command("sign")
@click.option(
    "--request",
    "request_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The request.json the coordinator handed over.",
)
@PLAN
@OFFICER
@KEYS
@OUT_FILE
@click.option("--expect-sha256", help="The request SHA-256 the coordinator read aloud.")
@YES
@JSON
def sign_command(
    request_path: Path,
    plan_path: Path,
    officer: str,
    keys_dir: Path,
    out: Path,
    expect_sha256: str | None,
    yes: bool,
    as_json: bool,
) -> None:
    """Review a signing request and sign it with your keys (a detached signature file).

    The request is read once; what is shown is what is signed. To confirm,
    type the first 8 hex digits of the request SHA-256 shown on screen.
    """

    confirm = typed_hash_confirmation(
        "request SHA-256", "request_sha256", render_request, as_json, yes
    )

    result = sign_request(
        request_path,
        plan_path,
        officer,
        keys_dir,
        out,
        secrets=OfficerSecrets(confirm_passphrase=False),
        confirm=confirm,
        expect_sha256=expect_sha256,
        clock=SystemClock(),
    )
    click.echo(f"wrote {out}: {len(result.signatures)} signature(s); carry it to the coordinator")


@click.command("sign-transcript")
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False, path_type=Path))
@PLAN
@OFFICER
@KEYS
@OUT_FILE
@YES
def sign_transcript_command(
    directory: Path, plan_path: Path, officer: str, keys_dir: Path, out: Path, yes: bool
) -> None:
    """Sign the ceremony's transcript record after checking it."""

    def confirm(transcript: Transcript) -> bool:
        body = transcript.body
        console = console_out()
        console.print(f"[bold]Transcript of ceremony {body['ceremony_id']}[/] ({body['kind']})")
        console.print(f"record SHA-256 [bold]{transcript.sha256}[/]")
        for step in body["steps"]:
            console.print(
                f"  {step['time']}  {step['step']:<9} {step['actor']:<12} {step['outcome']}"
            )
        for item in body["metadata"]:
            console.print(f"  {item['file']} v{item['version']} expires {item['expires']}")
        if yes:
            return True
        typed = click.prompt(
            "To sign, type the first 8 hex digits of the record SHA-256",
            default="",
            show_default=False,
            err=True,
        )
        return bool(str(typed).lower() == transcript.sha256[:8])

    sign_transcript(
        directory,
        plan_path,
        officer,
        keys_dir,
        out,
        secrets=OfficerSecrets(confirm_passphrase=False),
        confirm=confirm,
        clock=SystemClock(),
    )
    click.echo(f"wrote {out}; carry it to the coordinator")
