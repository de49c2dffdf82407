"""A mergeable latency sketch: log-spaced buckets with a bounded relative error.

Nodes record every request's latency into a :class:`LatencySketch`; the spoke
adds node sketches together per model version and cohort and reads p50/p99
from the sum (issue 7 sends the same sums to the hub). Bucket ``i`` holds the
values in ``(GAMMA**(i-1), GAMMA**i]`` milliseconds, so any quantile read back
is within ``(GAMMA - 1) / 2`` (2 %) of a value that was recorded — the DDSketch
construction, kept to the few lines Airlock needs and serialised as plain JSON
(bucket index → count), which canonical JSON can sign.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

GAMMA = 1.04
MIN_MS = 0.001
"""Latencies below this (1 µs) fall into the lowest bucket."""

_LOG_GAMMA = math.log(GAMMA)


def bucket_of(latency_ms: float) -> int:
    """The bucket index holding ``latency_ms``."""
    return math.ceil(math.log(max(latency_ms, MIN_MS)) / _LOG_GAMMA)


def bucket_value(index: int) -> float:
    """The representative value of bucket ``index`` (its midpoint in relative terms)."""
    return 2 * GAMMA**index / (GAMMA + 1)


@dataclass
class LatencySketch:
    """Counts of latencies by log bucket; add sketches to merge them."""

    buckets: dict[int, int] = field(default_factory=dict)

    @property
    def count(self) -> int:
        """How many latencies were recorded."""
        return sum(self.buckets.values())

    def add(self, latency_ms: float) -> None:
        """Records one latency in milliseconds."""
        index = bucket_of(latency_ms)
        self.buckets[index] = self.buckets.get(index, 0) + 1

    def merge(self, other: LatencySketch) -> None:
        """Adds ``other``'s counts to this sketch."""
        for index, count in other.buckets.items():
            self.buckets[index] = self.buckets.get(index, 0) + count

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (0-1) in milliseconds, or None when the sketch is empty."""
        total = self.count
        if total == 0:
            return None
        rank = q * (total - 1)
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen > rank:
                return bucket_value(index)
        return bucket_value(max(self.buckets))

    def to_dict(self) -> dict[str, int]:
        """JSON-ready form: bucket index (as text) → count."""
        return {str(i): c for i, c in sorted(self.buckets.items()) if c}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> LatencySketch:
        """Parses :meth:`to_dict` output.

        Raises:
            ValueError: an index or count is not a whole number, or a count is negative.
        """
        buckets: dict[int, int] = {}
        for key, value in (data or {}).items():
            count = int(value)
            if count < 0:
                raise ValueError(f"negative count in latency bucket {key}")
            buckets[int(key)] = count
        return cls(buckets)

    @classmethod
    def of(cls, latencies_ms: Iterable[float]) -> LatencySketch:
        """A sketch of the given latencies."""
        sketch = cls()
        for value in latencies_ms:
            sketch.add(value)
        return sketch

    @classmethod
    def merged(cls, sketches: Iterable[LatencySketch]) -> LatencySketch:
        """The sum of ``sketches``."""
        total = cls()
        for sketch in sketches:
            total.merge(sketch)
        return total
