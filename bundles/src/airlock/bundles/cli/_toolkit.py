"""The CLI plumbing every role group shares: ``--home``/``--json``, JSON, tables, closing.

Each component's commands build on these instead of declaring their own:

- :func:`home_option` and :func:`json_option`: the two options nearly every
  command takes (the home's default and variable differ per role).
- :func:`emit_json`: one JSON document on standard output.
- :class:`FittedTable`, :func:`table` and :func:`print_table`: rich tables that
  stay readable in a narrow terminal: an id is never cut (``classi…``); a long
  value without spaces (a hash, a key, a URI) folds onto lines of its own.
- :func:`closing_home` and :func:`home_database`: open a home's resources and
  always release them (database engines disposed) when the command ends.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

import click
from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text
from sqlalchemy import Engine
from sqlmodel import SQLModel

from airlock.bundles.config import HomeConfig
from airlock.bundles.db._engine import open_home_database

LONG_VALUE = 32
"""A word longer than this (a hash, a key) may fold; shorter words (ids) are never split."""
FOLDED_WIDTH = 16
"""The narrowest column a long value folds in; narrower, it moves under the table."""

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


class FittedTable(Table):
    """A rich table whose columns are sized so that no id is cut at the terminal's width.

    When the table is wider than the terminal, columns shrink widest first, but
    never below their longest word up to :data:`LONG_VALUE` characters; longer
    words (hashes, keys, URIs) fold inside a column of at least
    :data:`FOLDED_WIDTH` characters. When even that does not fit, the long
    values leave the grid: each goes on a line of its own under the table,
    named by its row's first cell and its column. Nothing is cut with an ellipsis.
    """

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """Fits the columns to ``options.max_width``, then renders the table."""
        moved = self._fit(console, options)
        if not moved:
            yield from super().__rich_console__(console, options)
            return
        kept = [column for index, column in enumerate(self.columns) if index not in moved]
        grid = copy.copy(self)
        grid.columns = [replace(column, _index=i) for i, column in enumerate(kept)]
        yield grid
        for row in range(self.row_count):
            key = self.columns[0]._cells[row] if 0 not in moved else f"row {row + 1}"
            for index in moved:
                column = self.columns[index]
                line = Text.assemble(key if isinstance(key, Text) else Text.from_markup(str(key)))
                line.append(f"  {column.header}:\n  ")
                cell = column._cells[row]
                line.append_text(cell if isinstance(cell, Text) else Text.from_markup(str(cell)))
                line.overflow = "fold"
                yield line

    def _fit(self, console: Console, options: ConsoleOptions) -> list[int]:
        """Sets the columns' widths; returns the long columns to move out of the grid."""
        for column in self.columns:
            column.overflow = "fold"
        available = options.max_width - self._extra_width
        wide = options.update_width(max(available, 1) * 100)
        measures = [self._measure_column(console, wide, column) for column in self.columns]
        widths = [measure.maximum for measure in measures]
        if sum(widths) <= available:
            return []
        pads = [self._get_padding_width(index) for index in range(len(self.columns))]
        long = [m.minimum - pad > LONG_VALUE for m, pad in zip(measures, pads, strict=True)]
        floors = [
            min(measure.maximum, FOLDED_WIDTH + pad) if is_long else measure.minimum
            for measure, pad, is_long in zip(measures, pads, long, strict=True)
        ]
        _shrink(widths, floors, sum(widths) - available)
        if sum(widths) > available and any(long) and not all(long):
            return [index for index, is_long in enumerate(long) if is_long]
        for column, width, pad in zip(self.columns, widths, pads, strict=True):
            column.width = max(width - pad, 1)
        return []


def _shrink(widths: list[int], floors: list[int], excess: int) -> None:
    """Takes ``excess`` cells off ``widths``, widest column first, none below its floor."""
    for _ in range(max(excess, 0)):
        shrinkable = [i for i, width in enumerate(widths) if width > floors[i]]
        if not shrinkable:
            return
        widths[max(shrinkable, key=lambda i: widths[i])] -= 1


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    show_header: bool = True,
) -> FittedTable:
    """A :class:`FittedTable` with these columns and rows (cells are rich markup)."""
    built = FittedTable(title=title, show_header=show_header)
    for column in columns:
        built.add_column(column)
    for row in rows:
        built.add_row(*row)
    return built


def print_table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    console: Console | None = None,
    show_header: bool = True,
) -> None:
    """Prints :func:`table` on ``console`` (default: a new console on standard output)."""
    (console or Console()).print(table(title, columns, rows, show_header=show_header))


@contextmanager
def closing_home(opened: C) -> Iterator[C]:
    """Yields an opened home (a hub, a spoke home) and closes it however the command ends."""
    try:
        yield opened
    finally:
        opened.close()


@contextmanager
def home_database(
    config: HomeConfig, required: type[SQLModel], tables: Sequence[type[SQLModel]] = ()
) -> Iterator[Engine]:
    """Opens a home's database (never creates one) and disposes of the engine afterwards.

    Raises:
        UsageError: no database, or not this kind of home (see
            :func:`~airlock.bundles.db.open_home_database`).
        StorageError: the home is read-only or its disk is full.
    """
    engine = open_home_database(config, required, tables)
    try:
        yield engine
    finally:
        engine.dispose()
