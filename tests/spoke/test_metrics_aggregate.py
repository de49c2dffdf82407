"""Metrics export aggregation: epoch-aligned clipped windows, sums per version and ring,
merged sketches, sanitised labels, distinct node counts, totals across rings."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from airlock.bundles.errors import UsageError
from airlock.bundles.metrics import MAX_LABELS, STABLE_RING, LatencySketch, MetricsCell
from airlock.spoke.metrics import (
    OTHER_LABEL,
    aggregate,
    sanitise_labels,
    totals_of,
    window_floor,
)
from airlock.spoke.site import MetricWindow

T0 = dt.datetime(2025, 3, 4, 10, 0, tzinfo=dt.UTC)


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def row(node: str, minutes: float, ring: str = "canary", **fields: Any) -> MetricWindow:
    """A metric window of iris@2 that the spoke received ``minutes`` after 10:00."""
    values: dict[str, Any] = {
        "node_id": node,
        "model": "iris",
        "version": "2",
        "role": "candidate",
        "ring": ring,
        "window_start": "2025-03-04T09:00:00Z",
        "window_end": "2025-03-04T09:05:00Z",
        "received_at": at(minutes).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "requests": 10,
        "errors": 1,
    }
    values.update(fields)
    return MetricWindow(**values)


def test_window_floor_is_aligned_on_the_epoch() -> None:
    assert window_floor(at(37.5), 60) == T0
    assert window_floor(at(37.5), 15) == at(30)
    assert window_floor(at(60), 60) == at(60)
    # 7 minutes does not divide an hour: alignment is on the epoch, not the hour
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    floor = window_floor(at(3), 7)
    assert (floor - epoch) % dt.timedelta(minutes=7) == dt.timedelta(0)
    assert floor <= at(3) < floor + dt.timedelta(minutes=7)
    other_zone = at(37.5).astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30)))
    assert window_floor(other_zone, 60) == T0


@pytest.mark.parametrize("minutes", [0, -5, True])
def test_window_length_must_be_positive(minutes: int) -> None:
    with pytest.raises(UsageError):
        window_floor(T0, minutes)


def test_naive_or_empty_export_window_refused() -> None:
    with pytest.raises(UsageError, match="time zone"):
        aggregate([], T0.replace(tzinfo=None), at(60), 60)
    with pytest.raises(UsageError, match="empty"):
        aggregate([], at(60), at(60), 60)


def test_rows_are_taken_by_received_time_in_half_open_range() -> None:
    rows = [row("a", -0.01), row("b", 0), row("c", 59.99), row("d", 60)]
    [group] = aggregate(rows, at(0), at(60), 60)
    assert group.node_ids == {"b", "c"}
    assert group.cell.requests == 20


def test_windows_are_clipped_to_the_export_range() -> None:
    rows = [row("a", 35), row("b", 70), row("c", 130)]
    groups = aggregate(rows, at(30), at(135), 60)
    spans = [(g.cell.window_start, g.cell.window_end) for g in groups]
    assert spans == [
        ("2025-03-04T10:30:00Z", "2025-03-04T11:00:00Z"),
        ("2025-03-04T11:00:00Z", "2025-03-04T12:00:00Z"),
        ("2025-03-04T12:00:00Z", "2025-03-04T12:15:00Z"),
    ]


def test_sums_per_version_ring_and_window() -> None:
    lat_a, lat_b = [3.0, 4.5, 100.0], [2.0, 4.4, 7.0, 8.0]
    rows = [
        row(
            "a",
            1,
            latency=LatencySketch.of(lat_a).to_dict(),
            predictions={"setosa": 2, "virginica": 1},
            confidence={"0.9": 3},
            shadow_compared=5,
            shadow_disagreed=1,
        ),
        row(
            "b",
            2,
            latency=LatencySketch.of(lat_b).to_dict(),
            predictions={"setosa": 4},
            confidence={"0.9": 1, "0.5": 3},
            shadow_compared=4,
            shadow_disagreed=2,
        ),
        row("a", 3),  # the same node again in the same window: still one node
        row("c", 4, ring=""),  # no ring recorded: stable
        row("d", 5, version="3"),
    ]
    groups = aggregate(rows, at(0), at(60), 60)
    assert [g.cell.key[:3] for g in groups] == [
        ("iris", "2", "canary"),
        ("iris", "2", STABLE_RING),
        ("iris", "3", "canary"),
    ]
    canary = groups[0]
    assert canary.node_ids == {"a", "b"}
    assert canary.cell.nodes == 2
    assert (canary.cell.requests, canary.cell.errors) == (30, 3)
    assert canary.cell.latency == LatencySketch.of(lat_a + lat_b).to_dict()
    assert canary.cell.predictions == {"setosa": 6, "virginica": 1}
    assert canary.cell.confidence == {"0.5": 3, "0.9": 4}
    assert (canary.cell.shadow_compared, canary.cell.shadow_disagreed) == (9, 3)
    assert groups[1].node_ids == {"c"}
    # what leaves is a valid payload cell and names no node
    text = json.dumps(canary.cell.to_dict())
    assert MetricsCell.from_dict(json.loads(text)) == canary.cell
    assert '"a"' not in text and '"b"' not in text


def test_free_text_labels_become_other() -> None:
    rows = [
        row("a", 1, predictions={"cat": 2, "Mr. Smith, 42 Elm St": 3, "": 1, "x" * 65: 1}),
        row("b", 2, predictions={"other": 1}, confidence={"0.9": 1, "high!": 2}),
    ]
    [group] = aggregate(rows, at(0), at(60), 60)
    assert group.cell.predictions == {"cat": 2, OTHER_LABEL: 6}
    assert group.cell.confidence == {"0.9": 1, OTHER_LABEL: 2}


def test_too_many_labels_fold_smallest_into_other() -> None:
    counts = {f"class{i:04d}": 1000 - i for i in range(MAX_LABELS + 10)}
    counts["tie-b"] = counts["tie-a"] = 5000  # ties among the kept are broken by key
    counts["bad label"] = 7
    out = sanitise_labels(counts)
    assert len(out) == MAX_LABELS
    assert sum(out.values()) == sum(counts.values())
    assert out["tie-a"] == out["tie-b"] == 5000
    kept = sorted(k for k in out if k.startswith("class"))
    assert kept == [f"class{i:04d}" for i in range(MAX_LABELS - 3)]
    folded = sum(1000 - i for i in range(MAX_LABELS - 3, MAX_LABELS + 10))
    assert out[OTHER_LABEL] == folded + 7


def test_fold_ties_at_the_cut_are_broken_by_key() -> None:
    counts = {f"k{i:04d}": 1 for i in range(MAX_LABELS + 1)}
    out = sanitise_labels(counts)
    assert OTHER_LABEL in out and out[OTHER_LABEL] == 2
    assert "k0000" in out and f"k{MAX_LABELS:04d}" not in out


def test_totals_sum_rings_and_unite_nodes() -> None:
    rows = [
        row("a", 1, ring="canary"),
        row("b", 2, ring="canary"),
        row("a", 3, ring=STABLE_RING, requests=5, errors=0),  # moved ring mid-window
        row("c", 4, ring=STABLE_RING, requests=7, errors=2),
        row("d", 65, ring=STABLE_RING),
    ]
    groups = aggregate(rows, at(0), at(90), 60)
    totals = totals_of(groups)
    assert [(t.total.window_start, t.total.window_end) for t in totals] == [
        ("2025-03-04T10:00:00Z", "2025-03-04T11:00:00Z"),
        ("2025-03-04T11:00:00Z", "2025-03-04T11:30:00Z"),
    ]
    first = totals[0]
    assert first.node_ids == {"a", "b", "c"}
    assert first.total.nodes == 3  # not 4: node a reported in two rings
    assert (first.total.requests, first.total.errors) == (32, 4)
    assert totals[1].total.nodes == 1
