"""``airlock hub db`` and ``airlock spoke db``: the schema version of a home's database.

``status`` says which schema revision the database is at, which one this
release needs and what an upgrade would apply; ``upgrade`` applies it, with
one audit entry (:mod:`airlock.bundles.schema`). The hub and the
spoke each register the group :func:`db_group` makes with their own
``--home`` option; both commands take ``--json``. Errors are raised as
:class:`~airlock.bundles.errors.AirlockError` and reported by the root
group's single catch point.

Every hub and spoke command builds this group, so the schema modules are
imported by its two commands when they run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from airlock.bundles.schema._migrations import SchemaStatus

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


def _emit_json(data: dict[str, Any]) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def db_group(role: str, home_option: Decorator) -> click.Group:
    """The ``db`` group of ``role`` (``hub`` or ``spoke``), its home given by ``home_option``."""

    @click.group(
        "db",
        short_help="Show and upgrade the database schema.",
        help=f"The {role} database's schema: status, and upgrade after a new release.\n\n"
        "\b\n"
        f"After installing a new release (stop the {role}'s services, back up the home\n"
        "and its database first):\n"
        f"  airlock {role} db status --home H     revision now, revision needed, pending\n"
        f"  airlock {role} db upgrade --home H    apply the pending migrations (audited)",
    )
    def db() -> None:
        pass

    @db.command(
        "status",
        help="Show the schema revision of the database, the one this release needs, and the "
        "migrations an upgrade would apply. Exits 0 whatever the state; `state` is current, "
        "behind or newer.",
    )
    @home_option
    @JSON_OPTION
    def status(home: Path, as_json: bool) -> None:
        from airlock.bundles.config import load_config, redacted_url
        from airlock.bundles.schema._upgrade import home_status

        config = load_config(home, role)
        found = home_status(config)
        if as_json:
            _emit_json(found.to_dict() | {"database": redacted_url(config.database_url)})
            return
        click.echo(f"{role} database {redacted_url(config.database_url)}")
        for line in _describe(found, home):
            click.echo(f"  {line}")

    @db.command(
        "upgrade",
        help="Apply the pending schema migrations, in one transaction, with one audit entry "
        "(revisions from and to). At the newest revision already, nothing is done. Stop the "
        "services that use this home and back it up first.",
    )
    @home_option
    @JSON_OPTION
    def upgrade(home: Path, as_json: bool) -> None:
        from airlock.bundles.config import load_config
        from airlock.bundles.schema._upgrade import upgrade_home

        result = upgrade_home(load_config(home, role))
        if as_json:
            _emit_json(result.to_dict())
            return
        if not result.applied:
            click.echo(f"the {role} database is at {result.after} already: nothing to do")
            return
        click.secho(
            f"upgraded the {role} database from {result.before or '(no schema version)'} to "
            f"{result.after}: applied {', '.join(result.applied)}",
            fg="green",
        )

    return db


def _describe(found: SchemaStatus, home: Path) -> list[str]:
    current = found.current or "(none: made by a release before schema migrations)"
    lines = [f"schema revision: {current}", f"this release needs: {found.head}"]
    if found.state == "newer":
        lines.append("newer than this release: install the release that upgraded it")
    elif found.pending:
        lines.append(f"pending: {', '.join(found.pending)}")
        lines.append(
            f"run `airlock {found.role} db upgrade --home {home}` "
            "(stop the services and back up first)"
        )
    else:
        lines.append("up to date")
    return lines
