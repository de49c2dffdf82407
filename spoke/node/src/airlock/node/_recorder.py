"""Per-window metrics of the models a node serves, as it reports them to the spoke.

The predictor calls :meth:`Recorder.record` for every request a model version
answered (or ran in shadow) and :meth:`Recorder.shadow` for every comparison;
the agent calls :meth:`Recorder.flush` every report interval and signs the
:class:`~airlock.bundles.protocol.MetricsReport` it returns. Windows are
contiguous: each starts where the previous report ended, and a window in
which nothing happened is not reported but carried into the next one.
Thread-safe.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from airlock.bundles.clock import utc_iso
from airlock.bundles.metrics import LatencySketch
from airlock.bundles.protocol import MetricsReport, ModelVersionMetrics

RequestListener = Callable[[str, str, str, float, bool], None]
"""Told of every recorded request: ``(model, version, role, latency_ms, error)``."""


@dataclass
class _Counts:
    requests: int = 0
    errors: int = 0
    latency: LatencySketch = field(default_factory=LatencySketch)
    predictions: dict[str, int] = field(default_factory=dict)
    confidence: dict[str, int] = field(default_factory=dict)
    shadow_compared: int = 0
    shadow_disagreed: int = 0


class Recorder:
    """Accumulates figures per (model, version, role) until the next flush."""

    def __init__(self, node_id: str, start: dt.datetime) -> None:
        self.node_id = node_id
        self._start = start
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, str], _Counts] = {}
        self._listeners: list[RequestListener] = []

    def add_listener(self, listener: RequestListener) -> None:
        """Also tells ``listener`` of every request (the node's ``/metrics`` counters)."""
        with self._lock:
            self._listeners.append(listener)

    @property
    def window_start(self) -> dt.datetime:
        """Where the current window began."""
        return self._start

    def record(
        self,
        model: str,
        version: str,
        role: str,
        latency_ms: float,
        error: bool = False,
        predictions: Iterable[str] = (),
        confidence: Iterable[str] = (),
    ) -> None:
        """Records one request: its latency, whether it failed, its answers and their confidence.

        ``confidence`` holds one bucket per answered row
        (:func:`airlock.bundles.metrics._prediction_stats.confidence_bucket`).
        """
        with self._lock:
            counts = self._counts.setdefault((model, version, role), _Counts())
            counts.requests += 1
            counts.errors += int(error)
            counts.latency.add(latency_ms)
            for answer in predictions:
                counts.predictions[answer] = counts.predictions.get(answer, 0) + 1
            for bucket in confidence:
                counts.confidence[bucket] = counts.confidence.get(bucket, 0) + 1
            listeners = list(self._listeners)
        for listener in listeners:
            listener(model, version, role, latency_ms, error)

    def shadow(self, model: str, version: str, compared: int, disagreed: int) -> None:
        """Records shadow comparisons of a candidate's answers with the stable ones."""
        with self._lock:
            counts = self._counts.setdefault((model, version, "candidate"), _Counts())
            counts.shadow_compared += compared
            counts.shadow_disagreed += disagreed

    def pending(self) -> bool:
        """Whether anything was recorded since the last flush."""
        with self._lock:
            return bool(self._counts)

    def flush(self, now: dt.datetime) -> MetricsReport | None:
        """The window from the previous flush to ``now``, or None when nothing happened.

        An empty window is not reported; the next report covers it.
        """
        with self._lock:
            if not self._counts:
                return None
            counts, self._counts = self._counts, {}
            start, self._start = self._start, max(now, self._start)
        models = tuple(
            ModelVersionMetrics(
                model=model,
                version=version,
                role=role,
                requests=c.requests,
                errors=c.errors,
                latency=c.latency.to_dict(),
                predictions=dict(sorted(c.predictions.items())),
                confidence=dict(sorted(c.confidence.items())),
                shadow_compared=c.shadow_compared,
                shadow_disagreed=c.shadow_disagreed,
            )
            for (model, version, role), c in sorted(counts.items())
        )
        return MetricsReport(self.node_id, utc_iso(start), utc_iso(max(now, start)), models)
