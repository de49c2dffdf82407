"""``airlock audit``: read-only commands for compliance auditors."""

from __future__ import annotations

import json
from pathlib import Path

import click

from airlock.bundles.audit import verify_engine
from airlock.bundles.config import load_config
from airlock.bundles.db import make_engine
from airlock.bundles.errors import VerificationError


@click.group()
def audit() -> None:
    """Check the tamper-evident audit log of a hub or spoke (read-only)."""


@audit.command("verify")
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    envvar="AIRLOCK_HOME",
    help="Hub or spoke home directory whose log to verify.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify(home: Path, as_json: bool) -> None:
    """Recompute the hash chain and report the first broken entry.

    Exits 0 when every entry verifies, 10 when the log was altered.
    """
    config = load_config(home)
    report = verify_engine(make_engine(config.database_url))
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    elif report.ok:
        click.secho(f"audit log OK: {report.entries} entries, head {report.head[:16]}…", fg="green")
    if not report.ok:
        raise VerificationError(
            f"audit log broken at entry {report.first_bad_seq}: {report.problem}",
            hint="the log was altered after it was written; preserve the database "
            "and compare with the last exported checkpoint",
        )
