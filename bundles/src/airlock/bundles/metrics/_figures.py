"""The figures a site reports: one cell per model version, ring and window, one total
per model version and window, and the field checks every figure passes.

A cell (:class:`MetricsCell`) adds up the figures of every node in its group —
request and error counts, a mergeable latency sketch
(:mod:`airlock.bundles.metrics._sketch`), counts per predicted class and a
confidence histogram — and says how many nodes contributed (never which). The
same figures are a row of the hub's and the spoke's tables
(:mod:`airlock.bundles.metrics._rows`).

``from_dict`` runs on untrusted input and raises
:class:`~airlock.bundles.errors.MediaError` for anything malformed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airlock.bundles.clock import parse_utc
from airlock.bundles.errors import MediaError

STABLE_RING = "stable"
"""The ring name of figures a version earned as a site's stable version."""
CANDIDATE_RING = "candidate"
"""The ring name of candidate figures received when no rollout of the version was active."""
LABEL_PATTERN = re.compile(r"[A-Za-z0-9._+-]{1,64}")
"""What a prediction class or a histogram key may look like (never free text)."""
MAX_LABELS = 256


def counts_field(value: Any, what: str) -> dict[str, int]:
    """Parses a map of plain labels to counts (predictions, confidence) named ``what``.

    Raises:
        MediaError: not a map, too many keys, a key not a label or a value not a count.
    """
    if not isinstance(value, Mapping) or len(value) > 4 * MAX_LABELS:
        raise MediaError(f"{what} is not a map of counts")
    out: dict[str, int] = {}
    for key, count in value.items():
        if not isinstance(key, str) or not LABEL_PATTERN.fullmatch(key):
            raise MediaError(f"{what} has a key that is not a plain label: {str(key)[:40]!r}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise MediaError(f"{what}[{key}] is not a count")
        out[key] = count
    return out


def count_field(data: Mapping[str, Any], name: str) -> int:
    """The count ``data[name]`` (0 when absent).

    Raises:
        MediaError: not a non-negative integer.
    """
    value = data.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MediaError(f"{name} is not a count")
    return value


def time_field(data: Mapping[str, Any], name: str) -> str:
    """The UTC time ``data[name]``, as given (checked to parse).

    Raises:
        KeyError: absent. ValueError: not a UTC time.
    """
    value = str(data[name])
    parse_utc(value)
    return value


@dataclass(frozen=True)
class MetricsCell:
    """One model version's figures in one ring over one window, summed over its nodes."""

    model: str
    version: str
    ring: str
    window_start: str
    window_end: str
    nodes: int
    requests: int = 0
    errors: int = 0
    latency: dict[str, int] = field(default_factory=dict)
    """A :class:`~airlock.bundles.metrics.LatencySketch` in ``to_dict`` form (bucket → count)."""
    predictions: dict[str, int] = field(default_factory=dict)
    """Predicted class (or regression value bucket) → count."""
    confidence: dict[str, int] = field(default_factory=dict)
    """Confidence bucket (``"0.0"`` … ``"0.9"``, the lower edge) → count."""
    shadow_compared: int = 0
    shadow_disagreed: int = 0

    @property
    def key(self) -> tuple[str, str, str, str]:
        """(model, version, ring, window_start)."""
        return (self.model, self.version, self.ring, self.window_start)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "model": self.model,
            "version": self.version,
            "ring": self.ring,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "nodes": self.nodes,
            "requests": self.requests,
            "errors": self.errors,
            "latency": dict(self.latency),
            "predictions": dict(self.predictions),
            "confidence": dict(self.confidence),
            "shadow_compared": self.shadow_compared,
            "shadow_disagreed": self.shadow_disagreed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricsCell:
        """Parses :meth:`to_dict` output (MediaError when malformed)."""
        try:
            latency = data.get("latency") or {}
            if not isinstance(latency, Mapping) or not all(
                re.fullmatch(r"-?\d{1,6}", str(k)) for k in latency
            ):
                raise MediaError("latency is not a sketch (bucket index → count)")
            return cls(
                model=label_field(data, "model"),
                version=label_field(data, "version"),
                ring=label_field(data, "ring"),
                window_start=time_field(data, "window_start"),
                window_end=time_field(data, "window_end"),
                nodes=count_field(data, "nodes"),
                requests=count_field(data, "requests"),
                errors=count_field(data, "errors"),
                latency={str(k): count_field(latency, k) for k in latency},
                predictions=counts_field(data.get("predictions") or {}, "predictions"),
                confidence=counts_field(data.get("confidence") or {}, "confidence"),
                shadow_compared=count_field(data, "shadow_compared"),
                shadow_disagreed=count_field(data, "shadow_disagreed"),
            )
        except MediaError as exc:
            raise MediaError(f"malformed metrics cell: {exc.message}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise MediaError(f"malformed metrics cell: {exc}") from None


def label_field(data: Mapping[str, Any], name: str) -> str:
    """The plain name ``data[name]`` (a model, version or ring).

    Raises:
        KeyError: absent. MediaError: not a plain name.
    """
    value = data[name]
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", value):
        raise MediaError(f"{name} is not a plain name")
    return value


@dataclass(frozen=True)
class MetricsTotal:
    """One model version's site-wide counts over one window, across every ring."""

    model: str
    version: str
    window_start: str
    window_end: str
    nodes: int
    requests: int = 0
    errors: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "model": self.model,
            "version": self.version,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "nodes": self.nodes,
            "requests": self.requests,
            "errors": self.errors,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricsTotal:
        """Parses :meth:`to_dict` output (MediaError when malformed)."""
        try:
            return cls(
                model=label_field(data, "model"),
                version=label_field(data, "version"),
                window_start=time_field(data, "window_start"),
                window_end=time_field(data, "window_end"),
                nodes=count_field(data, "nodes"),
                requests=count_field(data, "requests"),
                errors=count_field(data, "errors"),
            )
        except MediaError as exc:
            raise MediaError(f"malformed metrics total: {exc.message}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise MediaError(f"malformed metrics total: {exc}") from None
