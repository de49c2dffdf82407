"""``airlock ceremony``: key ceremonies for security officers.

Passphrases come from an environment variable or a no-echo prompt asked
twice, never from an option (argv is visible to every user of the machine).
Errors are raised as AirlockError and reported by the root command.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console

from airlock.bundles.keys import ALGORITHMS, MIN_PASSPHRASE_LENGTH, env_or_prompt_secrets
from airlock.bundles.tuf import ROOT_EXPIRY_DAYS, TARGETS_EXPIRY_DAYS
from airlock.ceremony.documents._output import check_destination
from airlock.ceremony.documents._summary import ceremony_summary, render_summary
from airlock.ceremony.minimal import run_minimal_ceremony
from airlock.ceremony.roots._options import CeremonyOptions

OFFICER_SECRET_ENV = "AIRLOCK_CEREMONY_PASSPHRASE"  # noqa: S105 - a variable name
HUB_SECRET_ENV = "AIRLOCK_HUB_PASSPHRASE"  # noqa: S105 - a variable name


def secret_from_env_or_prompt(env_var: str, label: str) -> str:
    """The passphrase from ``env_var``, else a no-echo prompt asked twice."""

    def prompt(_name: str) -> str:
        return str(
            click.prompt(
                f"{label} (at least {MIN_PASSPHRASE_LENGTH} characters)",
                hide_input=True,
                confirmation_prompt=True,
                err=True,
            )
        )

    return env_or_prompt_secrets(env_var, prompt)("passphrase")


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
        click.echo(json.dumps(summary, indent=2))
    else:
        render_summary(summary, Console(highlight=False))


# The multi-officer commands register themselves on the group above.
from airlock.ceremony.cli import _coordinator as _coordinator  # noqa: E402
from airlock.ceremony.cli import _layout as _layout  # noqa: E402
from airlock.ceremony.cli import _officer as _officer  # noqa: E402
