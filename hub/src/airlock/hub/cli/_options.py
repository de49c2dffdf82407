"""What every ``airlock hub`` command shares: ``--home``, ``--json``, the secrets, opening the hub.

The hub passphrase comes from ``AIRLOCK_HUB_PASSPHRASE`` or a no-echo prompt,
and a tenant-held key's secret from ``AIRLOCK_TENANT_SECRET_<NAME>`` or its own
prompt; only commands that sign ask. Commands open the hub with
``closing_home(open_home(home))`` so that its database is released however the
command ends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console

from airlock.bundles.cli import home_option, json_option, print_table
from airlock.bundles.keys import env_or_prompt_secrets
from airlock.bundles.models import ModelVersion
from airlock.hub.catalog import _release_view as release_view
from airlock.hub.context._context import HubContext, open_hub
from airlock.hub.repos._signing import parse_tenant_secret
from airlock.hub.store._home import DEFAULT_HOME, HOME_ENV, PASSPHRASE_ENV, tenant_secret_env

HOME_OPTION = home_option(
    envvar=HOME_ENV, help=f"Hub home directory (env {HOME_ENV}).", default=str(DEFAULT_HOME)
)
JSON_OPTION = json_option()
FILE_PATH = click.Path(dir_okay=False, path_type=Path)
RELEASE_FILE_OPTIONS = (
    click.option(
        "--validation-set",
        type=FILE_PATH,
        help="An .npz with arrays `inputs` and `expected`, shipped as validation.npz "
        "(needs --thresholds).",
    ),
    click.option(
        "--thresholds",
        type=FILE_PATH,
        help="TOML/JSON: min_accuracy, max_error, max_p95_latency_ms, … for the validation set.",
    ),
    click.option(
        "--compat",
        type=FILE_PATH,
        help="TOML/JSON: opset, min_onnxruntime, providers, architectures, min_memory_mb, depends.",
    ),
)


def _prompt(secret_name: str) -> str:
    return str(click.prompt(f"Hub {secret_name}", hide_input=True, err=True))


def hub_secrets() -> Any:
    """The hub passphrase; a tenant-held key's secret from its own variable or prompt."""
    hub_passphrase = env_or_prompt_secrets(PASSPHRASE_ENV, _prompt)

    def handler(name: str) -> str:
        tenant_secret = parse_tenant_secret(name)
        if tenant_secret is None:
            return hub_passphrase(name)
        tenant, secret = tenant_secret

        def prompt(_name: str) -> str:
            return str(click.prompt(f"Tenant {tenant}'s key {secret}", hide_input=True, err=True))

        return env_or_prompt_secrets(tenant_secret_env(tenant), prompt)(secret)

    return handler


def open_home(home: Path) -> HubContext:
    """Opens the hub home with the CLI's secrets (close it: ``closing_home``)."""
    return open_hub(home, hub_secrets())


def files_table(model: ModelVersion) -> None:
    """The files of a version, then the one-line summary of its release record."""
    rows = [
        [f.filename, f.kind, str(f.length), f.sha256, "yes" if f.primary else ""]
        for f in model.files
    ]
    print_table("files", ["file", "kind", "bytes", "sha256", "graph"], rows)
    Console().print(f"release: {release_view.summary(model.release)}")
