"""The ``[fleet]`` limits that fleet verdicts and alerts judge by (``airlock.toml`` or
``AIRLOCK_FLEET_*``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from airlock.bundles.config import HomeConfig
from airlock.bundles.errors import UsageError


@dataclass(frozen=True)
class FleetLimits:
    """The ``[fleet]`` settings (env ``AIRLOCK_FLEET_*``) that verdicts and alerts use."""

    drift_limit: float = 0.2
    error_rate_limit: float = 0.05
    min_requests: int = 200
    lookback_days: int = 7

    @classmethod
    def from_config(cls, config: HomeConfig) -> FleetLimits:
        """Reads and checks the hub's ``[fleet]`` settings.

        Raises:
            UsageError: a limit is not a fraction in (0, 1], or a count not a positive integer.
        """
        defaults = cls()
        values: dict[str, Any] = {}
        for name in ("drift_limit", "error_rate_limit"):
            raw = config.get(f"fleet.{name}", getattr(defaults, name))
            try:
                number = float(raw)
            except (TypeError, ValueError):
                number = -1.0
            if isinstance(raw, bool) or not 0 < number <= 1:
                raise _bad_setting(name, raw, "a fraction in (0, 1]")
            values[name] = number
        for name in ("min_requests", "lookback_days"):
            raw = config.get(f"fleet.{name}", getattr(defaults, name))
            try:
                whole = int(str(raw))
            except ValueError:
                whole = 0
            if isinstance(raw, bool) or whole < 1:
                raise _bad_setting(name, raw, "a whole number of at least 1")
            values[name] = whole
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _bad_setting(name: str, raw: Any, what: str) -> UsageError:
    return UsageError(
        f"[fleet] {name} must be {what}, not {raw!r}",
        hint=f"fix airlock.toml or AIRLOCK_FLEET_{name.upper()}",
    )
