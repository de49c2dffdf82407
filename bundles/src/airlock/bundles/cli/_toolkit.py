"""The CLI plumbing every role group shares: ``--home``/``--json``, JSON, closing, lazy groups.

Each component's commands build on these instead of declaring their own:

- :func:`home_option` and :func:`json_option`: the two options nearly every
  command takes (the home's default and variable differ per role).
- :func:`emit_json`: one JSON document on standard output.
- :func:`closing_home` and :func:`home_database`: open a home's resources and
  always release them (database engines disposed) when the command ends.
- :class:`LazyGroup`: a group whose subcommands are imported only when they are
  used, so that a command pays for the modules it runs and not for its siblings'.

This module imports nothing heavy (no database, no rich): ``airlock --help`` and
every command load it. The tables are in :mod:`._tables`.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import click

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlmodel import SQLModel

    from airlock.bundles.config import HomeConfig

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


class SupportsClose(Protocol):
    """Anything with a ``close()`` that releases what it holds (a hub, a spoke home)."""

    def close(self) -> None:
        """Releases the resource."""


C = TypeVar("C", bound=SupportsClose)


def home_option(*, envvar: str, help: str, default: str | None = None) -> Decorator:
    """The ``--home`` option (a directory); required unless the role has a default.

    Args:
        envvar: The environment variable that sets it.
        help: The help text.
        default: The default directory, shown in ``--help``; ``None`` makes it required.
    """
    return click.option(
        "--home",
        type=click.Path(file_okay=False, path_type=Path),
        required=default is None,
        default=default,
        show_default=default is not None,
        envvar=envvar,
        help=help,
    )


def json_option(help: str = "Print the result as JSON.") -> Decorator:
    """The ``--json`` flag, passed to the command as ``as_json``."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def emit_json(data: Any, *, sort_keys: bool = True) -> None:
    """Prints ``data`` as one indented JSON document on standard output."""
    click.echo(json.dumps(data, indent=2, sort_keys=sort_keys))


@contextmanager
def closing_home(opened: C) -> Iterator[C]:
    """Yields an opened home (a hub, a spoke home) and closes it however the command ends."""
    try:
        yield opened
    finally:
        opened.close()


@contextmanager
def home_database(config: HomeConfig, required: type[SQLModel]) -> Iterator[Engine]:
    """Opens a home's database (never creates one) and disposes of the engine afterwards.

    Raises:
        UsageError: no database, or not this kind of home (see
            :func:`~airlock.bundles.schema.open_home_database`).
        SchemaVersionError: the schema is older or newer than this release (exit 8).
        StorageError: the home is read-only or its disk is full.
    """
    from airlock.bundles.schema._homes import open_home_database

    engine = open_home_database(config, required)
    try:
        yield engine
    finally:
        engine.dispose()


class LazyGroup(click.Group):
    """A click group whose subcommands are imported when they are used.

    Subcommands are registered by name with where they live
    (``"airlock.hub.cli._sites:site"``): ``airlock hub export`` imports the
    module of ``export`` only, not those of its siblings. Help (``--help``,
    which lists every subcommand with its summary) and shell completion import
    them all, so what a user sees is what the commands declare. Commands added
    with :meth:`add_command` work as in any click group.
    """

    def __init__(
        self, *args: Any, lazy_commands: Mapping[str, str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands: dict[str, str] = dict(lazy_commands or {})

    def add_lazy_command(self, name: str, target: str) -> None:
        """Registers the subcommand ``name``, the click command at ``module:attribute``."""
        if ":" not in target:
            raise ValueError(f"{target!r} is not module:attribute")
        self.lazy_commands[name] = target

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every subcommand's name, loaded or not, sorted."""
        return sorted(set(super().list_commands(ctx)) | set(self.lazy_commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The subcommand ``cmd_name``, importing its module on first use."""
        command = super().get_command(ctx, cmd_name)
        if command is not None or cmd_name not in self.lazy_commands:
            return command
        command = load_command(self.lazy_commands[cmd_name])
        if command.name != cmd_name:  # a registration that disagrees would rename a command
            raise RuntimeError(
                f"{self.lazy_commands[cmd_name]} is the command {command.name!r}, not {cmd_name!r}"
            )
        self.add_command(command)
        return command


def load_command(target: str) -> click.Command:
    """The click command at ``module:attribute`` (imports the module)."""
    module_name, _, attribute = target.partition(":")
    command = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{target} is not a click command")
    return command
