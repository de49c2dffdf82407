"""What a node reports to its spoke: its installed versions and refusals
(:class:`VersionReport`) and its metrics windows (:class:`MetricsReport`), each sent as the
``signed`` part of a :class:`~airlock.bundles.protocol.SignedDocument`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airlock.bundles.clock import parse_utc
from airlock.bundles.errors import UsageError


@dataclass(frozen=True)
class ModelVersionMetrics:
    """One model version's figures on one node over one report window."""

    model: str
    version: str
    role: str
    requests: int = 0
    errors: int = 0
    latency: dict[str, int] = field(default_factory=dict)
    """A :class:`airlock.bundles.metrics._sketch.LatencySketch` in its ``to_dict`` form."""
    predictions: dict[str, int] = field(default_factory=dict)
    """Answer (class label, or a bucketed value for regression) → count."""
    shadow_compared: int = 0
    shadow_disagreed: int = 0
    confidence: dict[str, int] = field(default_factory=dict)
    """Confidence bucket (highest class probability, ``"0.0"`` … ``"0.9"``) → count."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "model": self.model,
            "version": self.version,
            "role": self.role,
            "requests": self.requests,
            "errors": self.errors,
            "latency": self.latency,
            "predictions": self.predictions,
            "confidence": self.confidence,
            "shadow_compared": self.shadow_compared,
            "shadow_disagreed": self.shadow_disagreed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelVersionMetrics:
        """Parses :meth:`to_dict` output."""
        return cls(
            model=str(data["model"]),
            version=str(data["version"]),
            role=str(data.get("role", "stable")),
            requests=int(data.get("requests", 0)),
            errors=int(data.get("errors", 0)),
            latency={str(k): int(v) for k, v in (data.get("latency") or {}).items()},
            predictions={str(k): int(v) for k, v in (data.get("predictions") or {}).items()},
            confidence={str(k): int(v) for k, v in (data.get("confidence") or {}).items()},
            shadow_compared=int(data.get("shadow_compared", 0)),
            shadow_disagreed=int(data.get("shadow_disagreed", 0)),
        )


@dataclass(frozen=True)
class MetricsReport:
    """What a node measured over one window (``signed`` part of a SignedDocument)."""

    node_id: str
    window_start: str
    window_end: str
    models: tuple[ModelVersionMetrics, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "type": "metrics",
            "node_id": self.node_id,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "models": [m.to_dict() for m in self.models],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricsReport:
        """Parses :meth:`to_dict` output.

        Raises:
            UsageError: malformed, or the window is not two UTC times in order.
        """
        try:
            report = cls(
                node_id=str(data["node_id"]),
                window_start=str(data["window_start"]),
                window_end=str(data["window_end"]),
                models=tuple(ModelVersionMetrics.from_dict(m) for m in data.get("models") or []),
            )
            if parse_utc(report.window_end) < parse_utc(report.window_start):
                raise ValueError("the window ends before it starts")
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"malformed metrics report: {exc}") from None
        return report


@dataclass(frozen=True)
class InstalledModel:
    """One model family on a node, as the node reports it."""

    model: str
    active_version: str | None
    active_slot: str
    standby_version: str | None = None
    candidate_version: str | None = None
    traffic: str = "all"
    state: str = "committed"
    """``committed``, ``installing``, ``health-check``, ``fell-back`` or ``refused``."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "model": self.model,
            "active_version": self.active_version,
            "active_slot": self.active_slot,
            "standby_version": self.standby_version,
            "candidate_version": self.candidate_version,
            "traffic": self.traffic,
            "state": self.state,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InstalledModel:
        """Parses :meth:`to_dict` output."""
        return cls(
            model=str(data["model"]),
            active_version=data.get("active_version"),
            active_slot=str(data.get("active_slot", "A")),
            standby_version=data.get("standby_version"),
            candidate_version=data.get("candidate_version"),
            traffic=str(data.get("traffic", "all")),
            state=str(data.get("state", "committed")),
        )


HEALTH_CHECK = "health-check"
"""The :attr:`Refusal.kind` of a version that failed the node's health check."""


@dataclass(frozen=True)
class Refusal:
    """A version the node would not install, and why.

    ``kind`` is :data:`HEALTH_CHECK` when the node installed the version and
    fell back because it failed its health check (bad health: the rollout
    engine counts it as a failed analysis), else ``refused`` (incompatible,
    waiting for a dependency, a failed download or verification).
    """

    model: str
    version: str
    reason: str
    time: str
    kind: str = "refused"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "model": self.model,
            "version": self.version,
            "reason": self.reason,
            "time": self.time,
            "kind": self.kind,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Refusal:
        """Parses :meth:`to_dict` output."""
        return cls(
            str(data["model"]),
            str(data["version"]),
            str(data["reason"]),
            str(data["time"]),
            str(data.get("kind", "refused")),
        )


@dataclass(frozen=True)
class VersionReport:
    """A node's signed account of what it runs (Uptane's version report, per node)."""

    node_id: str
    counter: int
    time: str
    installed: tuple[InstalledModel, ...] = ()
    last_verified: str | None = None
    refusals: tuple[Refusal, ...] = ()
    runtime: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "type": "version-report",
            "node_id": self.node_id,
            "counter": self.counter,
            "time": self.time,
            "installed": [m.to_dict() for m in self.installed],
            "last_verified": self.last_verified,
            "refusals": [r.to_dict() for r in self.refusals],
            "runtime": self.runtime,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VersionReport:
        """Parses :meth:`to_dict` output.

        Raises:
            UsageError: malformed.
        """
        try:
            return cls(
                node_id=str(data["node_id"]),
                counter=int(data["counter"]),
                time=str(data["time"]),
                installed=tuple(InstalledModel.from_dict(m) for m in data.get("installed") or []),
                last_verified=data.get("last_verified"),
                refusals=tuple(Refusal.from_dict(r) for r in data.get("refusals") or []),
                runtime=dict(data.get("runtime") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"malformed version report: {exc}") from None

    def active_version(self, model: str) -> str | None:
        """The version of ``model`` this node answers with, if any."""
        for item in self.installed:
            if item.model == model:
                return item.active_version
        return None
