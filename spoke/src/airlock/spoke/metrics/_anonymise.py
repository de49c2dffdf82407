"""k-anonymity for a metrics export: which cells and totals may leave the site.

A cell (one model version, one ring, one window) and a total (one model
version, one window, every ring) each carry figures summed over the nodes that
contributed them. A figure may leave only when it is an aggregate over at
least ``k`` distinct nodes, and no figure that leaves lets the hub compute one
that is not. The rules, applied in this order:

1. **Primary suppression.** A total with fewer than ``k`` nodes is suppressed,
   and every cell of it with it. A cell with fewer than ``k`` nodes is
   suppressed.
2. **Complementary suppression.** The cells of one total partition its rows,
   so from a published total and its published cells the hub can compute the
   *sum of the suppressed cells* (total − published cells), for requests and
   errors. That sum is an aggregate over the *union* of the suppressed cells'
   nodes (a node may report in more than one ring). So for every published
   total, that union must be empty or hold at least ``k`` nodes. While it
   holds between 1 and ``k − 1``, the published cell of that total with the
   fewest nodes (ties: by ring name) is suppressed too, and the union is
   computed again. Should every cell end up suppressed with the union still
   below ``k`` (impossible when the total is consistent with its cells, since
   the total then has the union's nodes and at least ``k`` of them), the total
   is suppressed as well: the rule fails closed.
3. **Output.** Only published cells and totals leave, as
   :class:`~airlock.bundles.metrics._model.MetricsCell` and
   :class:`~airlock.bundles.metrics._model.MetricsTotal`, with how many of each
   were suppressed (a count, nothing else about them). Node ids never leave;
   the ``reasons`` (for ``--dry-run``) name model, version, ring, window and
   node counts only.

Why this is enough: the only linear relation between published figures is
total = sum of its cells (same model version and window; cells of different
totals share no rows, and latency, prediction, confidence and shadow figures
are published per cell only, never as totals). After the rules, every
published cell, every published total, and the one quantity derivable from
each published total (the sum of its suppressed cells) covers either no node
or at least ``k`` nodes.

What the rules assume: the windows of one export do not overlap those of an
earlier one (otherwise two exports could be subtracted), and the decision is
taken on the true node counts (noise, when applied, changes counts, never
node sets).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from airlock.bundles.clock import parse_utc
from airlock.bundles.errors import UsageError
from airlock.bundles.metrics import MetricsCell, MetricsTotal
from airlock.spoke.metrics._aggregate import CellGroup, TotalGroup

MIN_K = 2
MAX_K = 10_000


@dataclass(frozen=True)
class Anonymised:
    """What may leave the site, and what was held back (counts and human reasons only)."""

    cells: tuple[MetricsCell, ...]
    totals: tuple[MetricsTotal, ...]
    suppressed_cells: int
    suppressed_totals: int
    reasons: tuple[str, ...]
    """One line per suppressed cell or total, for ``--dry-run``; never a node id."""


def check_k(k: int) -> int:
    """Returns ``k`` when it is a whole number in [2, 10 000].

    Raises:
        UsageError: ``k`` is out of range or not a whole number.
    """
    if isinstance(k, bool) or not isinstance(k, int) or not MIN_K <= k <= MAX_K:
        raise UsageError(
            f"k = {k!r} is not a whole number from {MIN_K} to {MAX_K}",
            hint="k is the fewest nodes a published figure may cover (default 5)",
        )
    return k


def _window(start: str, end: str) -> str:
    begin, finish = parse_utc(start), parse_utc(end)
    if finish.date() == begin.date() or finish == begin.replace(
        hour=0, minute=0, second=0
    ) + dt.timedelta(days=1):
        return f"{begin:%Y-%m-%d %H:%M}-{finish:%H:%M}"
    return f"{begin:%Y-%m-%d %H:%M}-{finish:%Y-%m-%d %H:%M}"


def _cell_name(cell: MetricsCell) -> str:
    window = _window(cell.window_start, cell.window_end)
    return f"{cell.model}@{cell.version} ring {cell.ring} {window}"


def _total_name(total: MetricsTotal) -> str:
    window = _window(total.window_start, total.window_end)
    return f"{total.model}@{total.version} total {window}"


def anonymise(groups: Sequence[CellGroup], totals: Sequence[TotalGroup], k: int) -> Anonymised:
    """Applies the k-anonymity rules of this module's docstring.

    Args:
        groups: The cells with their node sets (:func:`~airlock.spoke.metrics._aggregate.aggregate`,
            possibly noised).
        totals: The totals with their node sets
            (:func:`~airlock.spoke.metrics._aggregate.totals_of` of ``groups``).
        k: The fewest nodes a published figure may cover (:func:`check_k`).

    Returns:
        The published cells and totals (sorted), the suppressed counts and the reasons.

    Raises:
        UsageError: ``k`` is out of range, or two cells or two totals share a key.
    """
    check_k(k)
    cells_by_total: dict[tuple[str, str, str], list[CellGroup]] = {}
    seen: set[tuple[str, str, str, str]] = set()
    for group in groups:
        if group.cell.key in seen:
            raise UsageError(f"two cells for {_cell_name(group.cell)}: cannot anonymise")
        seen.add(group.cell.key)
        cell = group.cell
        cells_by_total.setdefault((cell.model, cell.version, cell.window_start), []).append(group)
    reasons: list[str] = []
    suppressed: set[tuple[str, str, str, str]] = set()
    published_totals: list[TotalGroup] = []
    total_keys: set[tuple[str, str, str]] = set()
    for tg in sorted(totals, key=lambda t: (t.total.model, t.total.version, t.total.window_start)):
        key = (tg.total.model, tg.total.version, tg.total.window_start)
        if key in total_keys:
            raise UsageError(f"two totals for {_total_name(tg.total)}: cannot anonymise")
        total_keys.add(key)
        own = cells_by_total.get(key, [])
        if len(tg.node_ids) < k:
            reasons.append(
                f"{_total_name(tg.total)}: {len(tg.node_ids)} nodes < k={k}"
                f" (its {len(own)} cells with it)"
            )
            suppressed.update(g.cell.key for g in own)
        else:
            published_totals.append(tg)
    for group in sorted(groups, key=lambda g: g.cell.key):
        if group.cell.key not in suppressed and len(group.node_ids) < k:
            suppressed.add(group.cell.key)
            reasons.append(f"{_cell_name(group.cell)}: {len(group.node_ids)} nodes < k={k}")
    keep_totals: list[MetricsTotal] = []
    for tg in published_totals:
        key = (tg.total.model, tg.total.version, tg.total.window_start)
        if _complement(tg, cells_by_total.get(key, []), suppressed, k, reasons):
            keep_totals.append(tg.total)
    cells = tuple(
        g.cell for g in sorted(groups, key=lambda g: g.cell.key) if g.cell.key not in suppressed
    )
    return Anonymised(
        cells=cells,
        totals=tuple(keep_totals),
        suppressed_cells=len(suppressed),
        suppressed_totals=len(totals) - len(keep_totals),
        reasons=tuple(reasons),
    )


def _complement(
    tg: TotalGroup,
    own: Sequence[CellGroup],
    suppressed: set[tuple[str, str, str, str]],
    k: int,
    reasons: list[str],
) -> bool:
    """Rule 2 for one published total; returns whether the total stays published."""
    while True:
        hidden = [g for g in own if g.cell.key in suppressed]
        union = frozenset[str]().union(*(g.node_ids for g in hidden))
        if not union or len(union) >= k:
            return True
        shown = sorted(
            (g for g in own if g.cell.key not in suppressed),
            key=lambda g: (len(g.node_ids), g.cell.ring),
        )
        protects = ", ".join(sorted(g.cell.ring for g in hidden))
        if not shown:
            reasons.append(
                f"{_total_name(tg.total)}: complementary (total − published cells would"
                f" reveal rings {protects}: {len(union)} nodes < k={k})"
            )
            return False
        victim = shown[0]
        suppressed.add(victim.cell.key)
        reasons.append(
            f"{_cell_name(victim.cell)}: complementary (protects rings {protects}:"
            f" {len(union)} nodes < k={k})"
        )
