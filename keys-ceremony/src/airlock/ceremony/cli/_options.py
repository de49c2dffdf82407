"""Options and secrets handling shared by the ``airlock ceremony`` commands.

Secrets never come from an option: the officer's passphrase from
``AIRLOCK_OFFICER_PASSPHRASE`` or a no-echo prompt (asked twice when a key is
made), the token PIN from ``AIRLOCK_HSM_PIN`` or a no-echo prompt.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from airlock.bundles.cli import emit_json, json_option
from airlock.bundles.keys import MIN_PASSPHRASE_LENGTH, env_or_prompt_secrets

OFFICER_PASSPHRASE_ENV = "AIRLOCK_OFFICER_PASSPHRASE"  # noqa: S105 - a variable name
HSM_PIN_ENV = "AIRLOCK_HSM_PIN"
OFFICER_SECRET_ENV = "AIRLOCK_CEREMONY_PASSPHRASE"  # noqa: S105 - a variable name
HUB_SECRET_ENV = "AIRLOCK_HUB_PASSPHRASE"  # noqa: S105 - a variable name

WORKSPACE = click.option(
    "--workspace",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The coordinator's workspace directory for this ceremony.",
)
PLAN = click.option(
    "--plan",
    "plan_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Your copy of the ceremony plan.",
)
OFFICER = click.option("--officer", required=True, help="Your name, as the plan gives it.")
KEYS = click.option(
    "--keys",
    "keys_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Your key directory (created by your first keygen).",
)
OUT_FILE = click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="File to write."
)
JSON = json_option()
YES = click.option(
    "--yes", is_flag=True, help="Do not ask for confirmation (scripted rehearsals only)."
)


class OfficerSecrets:
    """The officer's passphrase and the token PIN: environment or no-echo prompt, once each."""

    def __init__(self, confirm_passphrase: bool) -> None:
        def ask(label: str, confirm: bool) -> Callable[[str], str]:
            return lambda _name: str(
                click.prompt(label, hide_input=True, confirmation_prompt=confirm, err=True)
            )

        passphrase_label = f"Your key passphrase (at least {MIN_PASSPHRASE_LENGTH} characters)"
        self.handlers = {
            "pin": env_or_prompt_secrets(HSM_PIN_ENV, ask("Token user PIN", False)),
            "passphrase": env_or_prompt_secrets(
                OFFICER_PASSPHRASE_ENV, ask(passphrase_label, confirm_passphrase)
            ),
        }
        self.cache: dict[str, str] = {}

    def __call__(self, name: str) -> str:
        kind = "pin" if name == "pin" else "passphrase"
        if kind not in self.cache:
            self.cache[kind] = self.handlers[kind](name)
        return self.cache[kind]


def console_out() -> Console:
    """The console human output goes to (no automatic highlighting of numbers and paths)."""
    return Console(highlight=False)


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


def typed_hash_confirmation(
    label: str,
    digest_key: str,
    render: Callable[[dict[str, Any], Console], None],
    as_json: bool,
    yes: bool,
) -> Callable[[dict[str, Any]], bool]:
    """A ``confirm`` callback: show the summary, then ask for the first 8 hex digits of a hash.

    ``label`` names the hash on screen (e.g. "request SHA-256"); ``digest_key``
    is where the summary holds it. ``--yes`` skips the question (rehearsals).
    """

    def confirm(summary: dict[str, Any]) -> bool:
        if as_json:
            emit_json(summary)
        else:
            render(summary, console_out())
        if yes:
            return True
        typed = click.prompt(
            f"\nTo sign, type the first 8 hex digits of the {label} (anything else aborts)",
            default="",
            show_default=False,
            err=True,
        )
        return bool(str(typed).replace(" ", "").lower() == summary[digest_key][:8])

    return confirm
