"""``airlock ceremony``: key ceremonies for security officers.

Passphrases come from an environment variable or a no-echo prompt asked
twice, never from an option (argv is visible to every user of the machine).
Errors are raised as AirlockError and reported by the root command. The
multi-officer commands live in sibling modules that never import this one;
they are registered on the group here, in one place.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from airlock.bundles.cli import emit_json
from airlock.bundles.keys import ALGORITHMS
from airlock.bundles.tuf import ROOT_EXPIRY_DAYS, TARGETS_EXPIRY_DAYS
from airlock.ceremony.cli._coordinator import (
    finalize_command,
    plan_group,
    propose_command,
    render_transcript_command,
    seal_transcript_command,
    status_command,
    verify_transcript_command,
)
from airlock.ceremony.cli._layout import sign_layout_command
from airlock.ceremony.cli._officer import keygen, sign_command, sign_transcript_command
from airlock.ceremony.cli._options import (
    HUB_SECRET_ENV,
    OFFICER_SECRET_ENV,
    secret_from_env_or_prompt,
)
from airlock.ceremony.documents._output import check_destination
from airlock.ceremony.documents._summary import ceremony_summary, render_summary
from airlock.ceremony.minimal import run_minimal_ceremony
from airlock.ceremony.roots._options import CeremonyOptions


@click.group()
def ceremony() -> None:
    """Key ceremonies for security officers: signing keys and trust roots.

    Run these on offline machines. A multi-officer ceremony:

    \b
      coordinator  plan new → propose → finalize → seal-transcript
      each officer plan check → keygen → sign → sign-transcript
      anyone       verify-transcript, status
      layout officers, later: sign-layout (the hub's in-toto layout draft)

    Officers' keys (file or PKCS#11 token) never leave their machines; only
    public keys with proofs of possession, the signing request and detached
    signatures travel. Later ceremonies rotate, re-sign or revoke
    (propose --rotate-from … --revoke KEYID). `init` runs a whole ceremony on
    one machine, for labs and rehearsals.

    Runbook: docs/security-officer.md.
    """


@ceremony.command("init")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="New directory for the keys and roots (must not exist yet).",
)
@click.option(
    "--algorithm",
    type=click.Choice(ALGORITHMS),
    default="ed25519",
    show_default=True,
    help="Algorithm of every key.",
)
@click.option("--root-keys", default=3, show_default=True, help="Root keys per repository.")
@click.option(
    "--root-threshold", default=2, show_default=True, help="Root signatures needed (m of n)."
)
@click.option("--targets-keys", default=2, show_default=True, help="Offline Image targets keys.")
@click.option(
    "--targets-threshold", default=1, show_default=True, help="Targets signatures needed."
)
@click.option(
    "--root-expiry-days", default=ROOT_EXPIRY_DAYS, show_default=True, help="Root lifetime."
)
@click.option(
    "--targets-expiry-days",
    default=TARGETS_EXPIRY_DAYS,
    show_default=True,
    help="Image targets lifetime.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def init(
    out_dir: Path,
    algorithm: str,
    root_keys: int,
    root_threshold: int,
    targets_keys: int,
    targets_threshold: int,
    root_expiry_days: int,
    targets_expiry_days: int,
    as_json: bool,
) -> None:
    """Lab or rehearsal: create every key and the signed first roots on one machine.

    \b
    Passphrases (never on the command line):
      AIRLOCK_CEREMONY_PASSPHRASE  encrypts the officers' offline keys
      AIRLOCK_HUB_PASSPHRASE       encrypts the hub's online keys
    Unset variables are asked for, without echo, twice. The two must differ.

    Nothing is written unless the whole ceremony succeeds.
    """
    options = CeremonyOptions(
        algorithm=algorithm,
        root_keys=root_keys,
        root_threshold=root_threshold,
        targets_keys=targets_keys,
        targets_threshold=targets_threshold,
        root_expiry_days=root_expiry_days,
        targets_expiry_days=targets_expiry_days,
    )
    options.validate()  # before asking for passphrases
    check_destination(out_dir)
    officer = secret_from_env_or_prompt(
        OFFICER_SECRET_ENV, "Officers' passphrase for the offline keys"
    )
    hub = secret_from_env_or_prompt(HUB_SECRET_ENV, "Hub passphrase for the online keys")
    result = run_minimal_ceremony(out_dir, officer, hub, options)
    summary = ceremony_summary(result.record)
    if as_json:
        emit_json(summary, sort_keys=False)
    else:
        render_summary(summary, Console(highlight=False))


for command in (
    plan_group,
    propose_command,
    keygen,
    sign_command,
    finalize_command,
    sign_transcript_command,
    seal_transcript_command,
    verify_transcript_command,
    render_transcript_command,
    status_command,
    sign_layout_command,
):
    ceremony.add_command(command)
