"""What every ``airlock spoke`` command shares: ``--home``, ``--json`` and opening the home.

The site passphrase comes from ``AIRLOCK_SPOKE_PASSPHRASE`` or a no-echo prompt,
asked only when a command needs a site key, and at most once per command (an
import opens the age identity, then the signing key for its receipt). Commands
open the home with
``closing_home(open_home(home))`` (or ``closing_home(SpokeHome(home))`` when
they need no key), so the database is released however the command ends.

Nothing heavy is imported here (the home's module brings the database): every
``airlock spoke`` command loads this module first.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from airlock.bundles.cli import home_option, json_option
from airlock.spoke.site._names import PASSPHRASE_ENV

if TYPE_CHECKING:
    from airlock.bundles.keys import PendingUnseal
    from airlock.spoke.site._home import SpokeHome

HOME_OPTION = home_option(
    envvar="AIRLOCK_SPOKE_HOME",
    help="Spoke home directory (env AIRLOCK_SPOKE_HOME).",
    default="spoke-home",
)
JSON_OPTION = json_option()


def prompt_secret(secret_name: str) -> str:
    """Asks for one of the site's secrets on the terminal, without echo."""
    return str(click.prompt(f"Site {secret_name}", hide_input=True, err=True))


def open_home(home: Path, unlocking: PendingUnseal | None = None) -> SpokeHome:
    """The spoke home, able to unlock the site keys (passphrase from env or prompt).

    Args:
        home: The home directory.
        unlocking: The site's age identity, already being opened
            (:func:`~airlock.spoke.site._unlock.unlock_ahead`).
    """
    from airlock.bundles.keys import env_or_prompt_secrets
    from airlock.spoke.site._home import SpokeHome

    handler = env_or_prompt_secrets(PASSPHRASE_ENV, prompt_secret)
    given: dict[str, str] = {}

    def once(secret_name: str) -> str:  # a prompted passphrase is asked once per command
        if secret_name not in given:
            given[secret_name] = handler(secret_name)
        return given[secret_name]

    return SpokeHome(home, once, unlocking)
