"""The ``airlock`` command: one click group, one sub-group per role.

Each installed component contributes its group through the entry-point group
``airlock.commands`` (ceremony, hub, spoke; ``audit`` comes from this core),
so a ceremony laptop only has ``airlock ceremony`` and ``airlock audit``.

This module is also the single catch point for errors: an
:class:`~airlock.bundles.errors.AirlockError` is printed with its hint and
mapped to its documented exit code (see ``docs/exit-codes.md``).
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points
from typing import Any

import click

from airlock.bundles import __version__
from airlock.bundles.errors import AirlockError

GROUP = "airlock.commands"


class AirlockGroup(click.Group):
    """A click group that loads role groups lazily and turns errors into exit codes."""

    def _entry_points(self) -> dict[str, Any]:
        return {ep.name: ep for ep in entry_points(group=GROUP)}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._entry_points()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        ep = self._entry_points().get(cmd_name)
        if ep is None:
            return None
        loaded = ep.load()
        assert isinstance(loaded, click.Command)
        return loaded

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AirlockError as exc:
            report_error(exc)
            ctx.exit(exc.exit_code)


def report_error(exc: AirlockError) -> None:
    """Prints an error and its hint to standard error, in the CLI's one format."""
    click.secho(f"error: {exc.message}", fg="red", err=True)
    if exc.hint:
        click.echo(f"  what to do: {exc.hint}", err=True)


@click.group(cls=AirlockGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="airlock")
def main() -> None:
    """Airlock moves signed ML models across an air gap.

    \b
    Roles (each group is present when its component is installed):
      ceremony  security officers: keys and signed roots, offline
      hub       release engineers: models, sites, assignments, bundle export
      spoke     site admins: import and verify bundles, status
      audit     auditors: verify the tamper-evident audit log

    Exit codes are documented in docs/exit-codes.md.
    """


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
