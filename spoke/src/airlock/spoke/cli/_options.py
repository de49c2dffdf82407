"""What every ``airlock spoke`` command shares: ``--home``, ``--json`` and opening the home.

The site passphrase comes from ``AIRLOCK_SPOKE_PASSPHRASE`` or a no-echo prompt,
asked only when a command needs a site key, and at most once per command.
Commands open the home with ``closing_home(open_home(home))`` (or
``closing_home(SpokeHome(home))`` when they need no key), so the database is
released however the command ends.
"""

from __future__ import annotations

from pathlib import Path

import click

from airlock.bundles.cli import home_option, json_option
from airlock.bundles.keys import env_or_prompt_secrets
from airlock.spoke.site._home import PASSPHRASE_ENV, SpokeHome

HOME_OPTION = home_option(
    envvar="AIRLOCK_SPOKE_HOME",
    help="Spoke home directory (env AIRLOCK_SPOKE_HOME).",
    default="spoke-home",
)
JSON_OPTION = json_option()


def prompt_secret(secret_name: str) -> str:
    """Asks for one of the site's secrets on the terminal, without echo."""
    return str(click.prompt(f"Site {secret_name}", hide_input=True, err=True))


def open_home(home: Path) -> SpokeHome:
    """The spoke home, able to unlock the site keys (passphrase from env or prompt).

    A prompted passphrase is asked once per command and kept for its other keys
    (an import opens the age identity, then the signing key for its receipt).
    """
    handler = env_or_prompt_secrets(PASSPHRASE_ENV, prompt_secret)
    given: dict[str, str] = {}

    def once(secret_name: str) -> str:
        if secret_name not in given:
            given[secret_name] = handler(secret_name)
        return given[secret_name]

    return SpokeHome(home, once)
