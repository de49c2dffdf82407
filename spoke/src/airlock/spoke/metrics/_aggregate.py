"""The first step of a metrics export: nodes' metric windows summed into cells.

A *cell* is one model version's figures in one ring over one export window,
added up over every node that reported them (:class:`CellGroup`); a *total*
is one model version's figures over one window across every ring
(:class:`TotalGroup`). The rules:

- a :class:`~airlock.spoke.site._fleet_tables.MetricWindow` row counts in the export
  when the spoke *received* it (``received_at``, the spoke's own clock) inside
  ``[start, end)`` — the same rule as canary analysis, so a late report counts
  exactly once, in the window it arrived in;
- export windows are aligned on multiples of ``window_minutes`` since the Unix
  epoch (UTC) and clipped to ``[start, end)``;
- a row without a ring (older rows) belongs to :data:`STABLE_RING`;
- request, error and shadow counts are summed, latency sketches merged
  (:class:`~airlock.bundles.metrics._sketch.LatencySketch`), prediction and confidence
  counts summed per key;
- what leaves is never free text: a prediction or confidence key that is not
  a plain label (:data:`LABEL_PATTERN`) is counted under ``"other"``, and when
  a cell has more than :data:`MAX_LABELS` keys the smallest counts (ties: by
  key) fold into ``"other"`` as well;
- ``nodes`` is how many distinct nodes contributed. Which nodes they were
  (``node_ids``) is kept beside the cell for the k-anonymity rules
  (:mod:`airlock.spoke.metrics._anonymise`) and never leaves the site.

Pure functions: no database, no files. The export command queries the rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from airlock.bundles.clock import parse_utc, utc_iso
from airlock.bundles.errors import AirlockError, UsageError
from airlock.bundles.metrics import (
    LABEL_PATTERN,
    MAX_LABELS,
    STABLE_RING,
    LatencySketch,
    MetricsCell,
    MetricsTotal,
)
from airlock.spoke.site._fleet_tables import MetricWindow

OTHER_LABEL = "other"
"""Where keys that are not plain labels, and the rarest keys past :data:`MAX_LABELS`, go."""

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class CellGroup:
    """A cell and the nodes behind it (``cell.nodes == len(node_ids)``; ids never leave)."""

    cell: MetricsCell
    node_ids: frozenset[str]


@dataclass(frozen=True)
class TotalGroup:
    """A total and the nodes behind it (``total.nodes == len(node_ids)``; ids never leave)."""

    total: MetricsTotal
    node_ids: frozenset[str]


def _aware(when: dt.datetime, what: str) -> dt.datetime:
    if when.tzinfo is None:
        raise UsageError(f"the {what} {when.isoformat()} has no time zone", hint="pass UTC times")
    return when.astimezone(dt.UTC)


def window_floor(when: dt.datetime, minutes: int) -> dt.datetime:
    """The start of the ``minutes``-long window holding ``when``, aligned on the Unix epoch.

    Args:
        when: An aware time.
        minutes: The window length in minutes (at least 1).

    Returns:
        The latest multiple of ``minutes`` since 1970-01-01T00:00Z not after ``when`` (UTC).

    Raises:
        UsageError: ``minutes`` is below 1 or ``when`` is naive.
    """
    if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes < 1:
        raise UsageError(f"the window length {minutes!r} is not a whole number of minutes >= 1")
    seconds = (_aware(when, "time") - _EPOCH) // dt.timedelta(seconds=1)
    step = minutes * 60
    return _EPOCH + dt.timedelta(seconds=seconds - seconds % step)


@dataclass
class _Acc:
    window_end: str
    node_ids: set[str] = field(default_factory=set)
    requests: int = 0
    errors: int = 0
    latency: LatencySketch = field(default_factory=LatencySketch)
    predictions: dict[str, int] = field(default_factory=dict)
    confidence: dict[str, int] = field(default_factory=dict)
    shadow_compared: int = 0
    shadow_disagreed: int = 0

    def add(self, row: MetricWindow, what: str) -> None:
        self.node_ids.add(row.node_id)
        self.requests += row.requests
        self.errors += row.errors
        self.shadow_compared += row.shadow_compared
        self.shadow_disagreed += row.shadow_disagreed
        try:
            self.latency.merge(LatencySketch.from_dict(row.latency))
            _add_counts(self.predictions, row.predictions)
            _add_counts(self.confidence, row.confidence)
        except (TypeError, ValueError) as exc:
            raise AirlockError(
                f"a stored metric window of {what} is malformed ({exc})",
                hint="the spoke database holds a row its ingest checks should have refused",
            ) from None


def _add_counts(into: dict[str, int], counts: Mapping[str, object]) -> None:
    for key, value in (counts or {}).items():
        count = int(str(value))
        if count < 0:
            raise ValueError(f"negative count for {str(key)[:40]!r}")
        label = key if isinstance(key, str) and LABEL_PATTERN.fullmatch(key) else OTHER_LABEL
        into[label] = into.get(label, 0) + count


def sanitise_labels(counts: Mapping[str, int]) -> dict[str, int]:
    """Counts with plain-label keys only, at most :data:`MAX_LABELS` of them.

    Keys that are not plain labels are counted under ``"other"``; past
    ``MAX_LABELS`` keys, the smallest counts (ties: by key) fold into ``"other"``.
    Zero counts are dropped. The result is sorted by key.
    """
    plain: dict[str, int] = {}
    _add_counts(plain, counts)
    if len(plain) > MAX_LABELS:
        other = plain.pop(OTHER_LABEL, 0)
        ranked = sorted(plain.items(), key=lambda kv: (-kv[1], kv[0]))
        keep = dict(ranked[: MAX_LABELS - 1])
        other += sum(count for _, count in ranked[MAX_LABELS - 1 :])
        plain = keep | {OTHER_LABEL: other}
    return {key: count for key, count in sorted(plain.items()) if count}


def aggregate(
    rows: Iterable[MetricWindow], start: dt.datetime, end: dt.datetime, window_minutes: int
) -> list[CellGroup]:
    """Sums the rows the spoke received in ``[start, end)`` into cells.

    Args:
        rows: Metric windows (any; those received outside ``[start, end)`` are skipped).
        start: Where the export begins (aware).
        end: Where the export ends, exclusive (aware, after ``start``).
        window_minutes: The export window length; windows are epoch-aligned and clipped.

    Returns:
        One group per (model, version, ring, window_start), sorted by that key.

    Raises:
        UsageError: ``end`` is not after ``start``, a time is naive, or the length is below 1.
        AirlockError: a stored row is malformed.
    """
    start, end = _aware(start, "export start"), _aware(end, "export end")
    if end <= start:
        raise UsageError(f"the export window {utc_iso(start)} - {utc_iso(end)} is empty")
    step = dt.timedelta(minutes=window_minutes)
    window_floor(start, window_minutes)  # validates window_minutes
    accs: dict[tuple[str, str, str, str], _Acc] = {}
    for row in rows:
        what = f"{row.model}@{row.version}"
        try:
            received = parse_utc(row.received_at)
        except ValueError:
            raise AirlockError(
                f"a stored metric window of {what} has a bad time {row.received_at[:40]!r}",
                hint="the spoke database holds a row its ingest should have refused",
            ) from None
        if not start <= received < end:
            continue
        floor = window_floor(received, window_minutes)
        key = (row.model, row.version, row.ring or STABLE_RING, utc_iso(max(floor, start)))
        acc = accs.get(key)
        if acc is None:
            acc = accs[key] = _Acc(window_end=utc_iso(min(floor + step, end)))
        acc.add(row, what)
    return [_group(key, accs[key]) for key in sorted(accs)]


def _group(key: tuple[str, str, str, str], acc: _Acc) -> CellGroup:
    model, version, ring, window_start = key
    cell = MetricsCell(
        model=model,
        version=version,
        ring=ring,
        window_start=window_start,
        window_end=acc.window_end,
        nodes=len(acc.node_ids),
        requests=acc.requests,
        errors=acc.errors,
        latency=acc.latency.to_dict(),
        predictions=sanitise_labels(acc.predictions),
        confidence=sanitise_labels(acc.confidence),
        shadow_compared=acc.shadow_compared,
        shadow_disagreed=acc.shadow_disagreed,
    )
    return CellGroup(cell, frozenset(acc.node_ids))


def totals_of(groups: Sequence[CellGroup]) -> list[TotalGroup]:
    """Per (model, version, window_start): requests and errors across rings, nodes united.

    Args:
        groups: Cells (typically from :func:`aggregate`, possibly noised).

    Returns:
        One total per (model, version, window_start), sorted by that key.
    """
    sums: dict[tuple[str, str, str], tuple[str, int, int, frozenset[str]]] = {}
    for group in groups:
        cell = group.cell
        key = (cell.model, cell.version, cell.window_start)
        _end, requests, errors, nodes = sums.get(key, (cell.window_end, 0, 0, frozenset()))
        sums[key] = (
            cell.window_end,
            requests + cell.requests,
            errors + cell.errors,
            nodes | group.node_ids,
        )
    out: list[TotalGroup] = []
    for (model, version, window_start), (window_end, requests, errors, nodes) in sorted(
        sums.items()
    ):
        total = MetricsTotal(model, version, window_start, window_end, len(nodes), requests, errors)
        out.append(TotalGroup(total, nodes))
    return out
