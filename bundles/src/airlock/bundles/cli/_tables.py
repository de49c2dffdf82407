"""Rich tables that stay readable in a narrow terminal, for every role group's output.

:class:`FittedTable`, :func:`table` and :func:`print_table`: an id is never cut
(``classi…``); a long value without spaces (a hash, a key, a URI) folds onto
lines of its own.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import replace

from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

LONG_VALUE = 32
"""A word longer than this (a hash, a key) may fold; shorter words (ids) are never split."""
FOLDED_WIDTH = 16
"""The narrowest column a long value folds in; narrower, it moves under the table."""


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
        """Renders a copy fitted to ``options.max_width`` (this table is left as built)."""
        fitted = copy.copy(self)
        fitted.columns = [replace(column) for column in self.columns]
        moved = fitted._fit(console, options)
        if not moved:
            yield from Table.__rich_console__(fitted, console, options)
            return
        kept = [column for index, column in enumerate(fitted.columns) if index not in moved]
        grid = copy.copy(fitted)
        grid.columns = [replace(column, _index=i, width=None) for i, column in enumerate(kept)]
        yield grid
        keys = list(self.columns[0].cells) if 0 not in moved else []
        for row in range(self.row_count):
            line = _text(keys[row]) if keys else Text(f"row {row + 1}")
            for index in moved:
                column = self.columns[index]
                value = list(column.cells)[row]
                yield Text.assemble(line, f"  {column.header}:\n  ", _text(value), overflow="fold")

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


def _text(cell: object) -> Text:
    """A cell as rich text (strings are markup, as in any rich table)."""
    return cell if isinstance(cell, Text) else Text.from_markup(str(cell))


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
