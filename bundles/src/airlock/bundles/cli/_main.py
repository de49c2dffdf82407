"""The ``airlock`` command: one click group, one sub-group per role.

Each installed component contributes its group through the entry-point group
``airlock.commands`` (ceremony, hub, spoke; ``audit`` comes from this core),
so a ceremony laptop only has ``airlock ceremony`` and ``airlock audit``.

This module is also the single catch point for errors: an
:class:`~airlock.bundles.errors.AirlockError` (and click's own usage errors)
is printed as ``error: …`` and ``  what to do: …`` on standard error and
mapped to its documented exit code (see ``docs/exit-codes.md``). When the
command line asked for ``--json``, standard output also gets one JSON error
document (:func:`~airlock.bundles.errors.error_document`), so a script that
parses standard output always reads exactly one JSON document.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import entry_points
from typing import Any

import click

from airlock.bundles import __version__
from airlock.bundles.errors import EXIT_CODES, AirlockError, error_document

GROUP = "airlock.commands"
JSON_FLAG = "--json"
ARGS_KEY = "airlock.args"
"""Where the root group keeps the command line's arguments (``ctx.meta`` is shared)."""


class CommandLineError(AirlockError):
    """A missing or malformed option or argument (found by click, before any command ran)."""

    exit_code = EXIT_CODES["click usage"]


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

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[ARGS_KEY] = list(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AirlockError as exc:
            report_error(exc, as_json=wants_json(ctx))
            ctx.exit(exc.exit_code)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:  # click's own: exit 2, in the same format
            where = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
            if exc.ctx is not None:
                click.echo(exc.ctx.get_usage(), err=True)
            error = CommandLineError(exc.format_message(), hint=f"see `{where} --help`")
            report_error(error, as_json=wants_json(ctx))
            ctx.exit(error.exit_code)


def wants_json(ctx: click.Context) -> bool:
    """Whether the command line asked for ``--json`` (before any ``--`` separator)."""
    args: list[str] = ctx.meta.get(ARGS_KEY, [])
    return JSON_FLAG in (args[: args.index("--")] if "--" in args else args)


def report_error(exc: AirlockError, *, as_json: bool = False) -> None:
    """Prints an error and its hint to standard error, in the CLI's one format.

    With ``as_json``, standard output also gets the JSON error document (merged
    into the command's own report when the error carries one).
    """
    if as_json:  # one document: the command's report (if it made one) and the error
        document = {**(exc.report or {}), **error_document(exc)}
        click.echo(json.dumps(document, indent=2, sort_keys=True))
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
