"""The rollout plan: how fast a model version reaches a site's nodes, and when it stops.

The hub signs a plan into the site's Director targets, in the custom field of
the version's primary file (``custom.airlock.rollout``); the spoke's rollout
engine (:mod:`airlock.spoke.rollout`) runs it. A plan is a list of rings::

    {"interval_seconds": 60,
     "health": {"max_error_rate": "0.01", "max_p99_latency_ratio": "1.5",
                "min_samples": 50, "failure_limit": 3, "consecutive_successes": 3},
     "rings": [{"name": "canary", "nodes": "0.05", "bake_seconds": 300,
                "traffic": "all", "split_percent": null, "approval": "auto"}, ...]}

- ``nodes`` is a fraction of the site's enrolled nodes (a decimal string such
  as ``"0.25"``; at least one node) or a count (an integer). Rings are
  cumulative: ring 2 covers ring 1's nodes and more. The last ring must reach
  every node (``"1"``).
- ``traffic`` says what the candidate does on a ring's nodes: ``all`` (it
  answers every request), ``split`` (it answers ``split_percent`` of each
  node's requests, the stable version the rest) or ``shadow`` (it sees every
  request and its answers are recorded and compared, but only the stable
  version answers).
- ``approval``: ``auto`` promotes a healthy ring on its own; ``manual`` waits
  for ``airlock spoke rollout promote`` once the ring is healthy.

Defaults come from the anchors (Argo Rollouts, Flagger, Kayenta, AWS IoT
Jobs): interval 60 s, failure limit 3, 99 % success, p99 no worse than 1.5x
the stable cohort, 50 samples before judging. A site may make a plan slower
(:meth:`RolloutPlan.slowed`), never faster. Fractions are decimal strings
because TUF signs canonical JSON, which has no floats.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from airlock.bundles.errors import UsageError
from airlock.bundles.release._record import decimal

TRAFFIC_MODES = ("all", "split", "shadow")
APPROVALS = ("auto", "manual")
DEFAULT_INTERVAL_SECONDS = 60
DEFAULT_BAKE_SECONDS = 300


@dataclass(frozen=True)
class HealthCriteria:
    """What a canary cohort must show, interval after interval, to be promoted."""

    max_error_rate: str = "0.01"
    max_p99_latency_ratio: str = "1.5"
    min_samples: int = 50
    failure_limit: int = 3
    consecutive_successes: int = 3

    def __post_init__(self) -> None:
        rate = decimal(self.max_error_rate, "max_error_rate")
        ratio = decimal(self.max_p99_latency_ratio, "max_p99_latency_ratio")
        if not Decimal(0) <= rate <= Decimal(1):
            raise UsageError(f"max_error_rate must be between 0 and 1, not {rate}")
        if ratio < Decimal(1):
            raise UsageError(f"max_p99_latency_ratio must be at least 1, not {ratio}")
        for name in ("min_samples", "failure_limit", "consecutive_successes"):
            if int(getattr(self, name)) < 1:
                raise UsageError(f"{name} must be at least 1")

    @property
    def error_rate(self) -> Decimal:
        """``max_error_rate`` as a number."""
        return decimal(self.max_error_rate, "max_error_rate")

    @property
    def latency_ratio(self) -> Decimal:
        """``max_p99_latency_ratio`` as a number."""
        return decimal(self.max_p99_latency_ratio, "max_p99_latency_ratio")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "max_error_rate": self.max_error_rate,
            "max_p99_latency_ratio": self.max_p99_latency_ratio,
            "min_samples": self.min_samples,
            "failure_limit": self.failure_limit,
            "consecutive_successes": self.consecutive_successes,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HealthCriteria:
        """Parses :meth:`to_dict` output; missing keys take the defaults."""
        defaults = cls()
        return cls(
            max_error_rate=str(decimal(data.get("max_error_rate", defaults.max_error_rate), "x")),
            max_p99_latency_ratio=str(
                decimal(data.get("max_p99_latency_ratio", defaults.max_p99_latency_ratio), "x")
            ),
            min_samples=int(data.get("min_samples", defaults.min_samples)),
            failure_limit=int(data.get("failure_limit", defaults.failure_limit)),
            consecutive_successes=int(
                data.get("consecutive_successes", defaults.consecutive_successes)
            ),
        )


@dataclass(frozen=True)
class Ring:
    """One phase of a rollout: which nodes, how long at least, and how the candidate runs."""

    name: str
    nodes: str | int
    bake_seconds: int = DEFAULT_BAKE_SECONDS
    traffic: str = "all"
    split_percent: int | None = None
    approval: str = "auto"

    def __post_init__(self) -> None:
        if not self.name:
            raise UsageError("every ring needs a name")
        if isinstance(self.nodes, int):
            if self.nodes < 1:
                raise UsageError(f"ring {self.name!r}: a node count must be at least 1")
        else:
            share = decimal(self.nodes, f"ring {self.name!r} nodes")
            if not Decimal(0) < share <= Decimal(1):
                raise UsageError(
                    f"ring {self.name!r}: a node fraction must be above 0 and at most 1",
                    hint='write a fraction such as "0.25", or a whole number of nodes',
                )
        if self.bake_seconds < 0:
            raise UsageError(f"ring {self.name!r}: bake_seconds cannot be negative")
        if self.traffic not in TRAFFIC_MODES:
            raise UsageError(
                f"ring {self.name!r}: traffic {self.traffic!r} is not one of {TRAFFIC_MODES}"
            )
        if self.traffic == "split" and not (
            self.split_percent is not None and 1 <= self.split_percent <= 99
        ):
            raise UsageError(f"ring {self.name!r}: split traffic needs split_percent 1-99")
        if self.approval not in APPROVALS:
            raise UsageError(f"ring {self.name!r}: approval must be one of {APPROVALS}")

    @property
    def is_everyone(self) -> bool:
        """Whether the ring covers every node."""
        return not isinstance(self.nodes, int) and decimal(self.nodes, "nodes") == Decimal(1)

    def node_count(self, enrolled: int) -> int:
        """How many of ``enrolled`` nodes the ring covers (at least 1 when any exist)."""
        if enrolled <= 0:
            return 0
        if isinstance(self.nodes, int):
            return min(self.nodes, enrolled)
        share = decimal(self.nodes, "nodes") * enrolled
        whole = int(share.to_integral_value(rounding="ROUND_CEILING"))
        return max(1, min(enrolled, whole))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "nodes": self.nodes,
            "bake_seconds": self.bake_seconds,
            "traffic": self.traffic,
            "split_percent": self.split_percent,
            "approval": self.approval,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Ring:
        """Parses :meth:`to_dict` output."""
        nodes = data["nodes"]
        split = data.get("split_percent")
        return cls(
            name=str(data["name"]),
            nodes=nodes if isinstance(nodes, int) else str(nodes),
            bake_seconds=int(data.get("bake_seconds", DEFAULT_BAKE_SECONDS)),
            traffic=str(data.get("traffic", "all")),
            split_percent=None if split is None else int(split),
            approval=str(data.get("approval", "auto")),
        )


def default_rings() -> tuple[Ring, ...]:
    """Three rings: a canary (5 %, at least one node), a quarter, then everyone."""
    return (
        Ring("canary", "0.05"),
        Ring("quarter", "0.25"),
        Ring("all", "1"),
    )


@dataclass(frozen=True)
class RolloutPlan:
    """Rings, analysis interval and health criteria of one version's rollout at a site."""

    rings: tuple[Ring, ...] = field(default_factory=default_rings)
    interval_seconds: int = DEFAULT_INTERVAL_SECONDS
    health: HealthCriteria = field(default_factory=HealthCriteria)

    def __post_init__(self) -> None:
        if not self.rings:
            raise UsageError("a rollout plan needs at least one ring")
        if not self.rings[-1].is_everyone:
            raise UsageError(
                f"the last ring ({self.rings[-1].name!r}) must cover every node",
                hint='give the last ring nodes = "1"',
            )
        if self.interval_seconds < 1:
            raise UsageError("interval_seconds must be at least 1")
        names = [r.name for r in self.rings]
        if len(set(names)) != len(names):
            raise UsageError(f"ring names repeat: {names}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``custom.airlock.rollout``)."""
        return {
            "interval_seconds": self.interval_seconds,
            "health": self.health.to_dict(),
            "rings": [r.to_dict() for r in self.rings],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RolloutPlan:
        """Parses :meth:`to_dict` output (or a release engineer's TOML plan); ``None`` → defaults.

        Raises:
            UsageError: malformed plan.
        """
        if not data:
            return cls()
        try:
            rings = data.get("rings")
            return cls(
                rings=tuple(Ring.from_dict(r) for r in rings) if rings else default_rings(),
                interval_seconds=int(data.get("interval_seconds", DEFAULT_INTERVAL_SECONDS)),
                health=HealthCriteria.from_dict(data.get("health") or {}),
            )
        except UsageError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UsageError(
                f"malformed rollout plan ({type(exc).__name__}: {exc})",
                hint="see the release engineer's guide for the plan format",
            ) from None

    def slowed(self, limits: SiteLimits) -> RolloutPlan:
        """This plan as a site runs it: the site may only make it slower, never faster."""
        rings = tuple(
            replace(
                r,
                bake_seconds=max(r.bake_seconds, limits.min_bake_seconds),
                approval="manual" if limits.manual_promotion else r.approval,
            )
            for r in self.rings
        )
        health = replace(
            self.health,
            consecutive_successes=max(
                self.health.consecutive_successes, limits.min_consecutive_successes
            ),
        )
        return replace(
            self,
            rings=rings,
            interval_seconds=max(self.interval_seconds, limits.min_interval_seconds),
            health=health,
        )


@dataclass(frozen=True)
class SiteLimits:
    """A site admin's ``[rollout]`` settings: floors that can only slow a plan down."""

    min_bake_seconds: int = 0
    min_interval_seconds: int = 0
    min_consecutive_successes: int = 0
    manual_promotion: bool = False

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> SiteLimits:
        """Parses the ``[rollout]`` section of a spoke's airlock.toml.

        Raises:
            UsageError: a value is not a whole number / boolean.
        """
        section = section or {}
        try:
            manual = section.get("manual_promotion", False)
            if not isinstance(manual, bool):
                raise ValueError(f"manual_promotion must be true or false, not {manual!r}")
            return cls(
                min_bake_seconds=int(section.get("min_bake_seconds", 0)),
                min_interval_seconds=int(section.get("min_interval_seconds", 0)),
                min_consecutive_successes=int(section.get("min_consecutive_successes", 0)),
                manual_promotion=manual,
            )
        except (TypeError, ValueError) as exc:
            raise UsageError(
                f"the [rollout] settings are malformed: {exc}",
                hint="use whole numbers of seconds and true/false",
            ) from None
