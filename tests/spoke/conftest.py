"""Fixtures for the spoke's CLI tests: the shared templates, and a click runner.

The command runs in-process through click's ``CliRunner`` with a clean
Airlock environment (only what a test passes), as a site admin's shell would.
"""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner, Result
from helpers.spokeenv import SITE_PASSPHRASE, Invoke

from airlock.bundles.cli import main
from airlock.spoke.site import PASSPHRASE_ENV


@pytest.fixture
def airlock() -> Invoke:
    """Runs ``airlock ARGS…``; ``passphrase=None`` leaves the passphrase variable unset."""

    def invoke(
        *args: str, passphrase: str | None = SITE_PASSPHRASE, input: str | None = None
    ) -> Result:
        env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("AIRLOCK_")}
        env.update(
            {"AIRLOCK_PRINCIPAL": "site-admin", "COLUMNS": "200", PASSPHRASE_ENV: passphrase}
        )
        runner = CliRunner()
        return runner.invoke(
            main, list(args), env=env, input=input, catch_exceptions=False, prog_name="airlock"
        )

    return invoke
