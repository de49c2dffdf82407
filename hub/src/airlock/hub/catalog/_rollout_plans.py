"""Rollout plan files: the release engineer's TOML, checked before anything is signed.

A plan file has the structure of :meth:`airlock.bundles.release._rollout_plan.RolloutPlan.to_dict`::

    interval_seconds = 60

    [health]
    max_error_rate = "0.01"
    max_p99_latency_ratio = "1.5"
    min_samples = 50
    failure_limit = 3
    consecutive_successes = 3

    [[rings]]
    name = "canary"
    nodes = "0.05"
    bake_seconds = 300

    [[rings]]
    name = "all"
    nodes = "1"

Missing keys take the defaults of :mod:`airlock.bundles.release._rollout_plan`; unknown keys
are refused (a misspelt ``bake_second`` must not silently become the
default). :func:`read_plan` is the only entry point; ``Hub.assign`` calls it
inside its audited operation, so a bad file is audited and changes nothing.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airlock.bundles.errors import UsageError
from airlock.bundles.release import HealthCriteria, Ring, RolloutPlan

PLAN_HINT = "see 'Rollout plans' in the release engineer's guide for the plan format"

_PLAN_KEYS = frozenset(RolloutPlan().to_dict())
_HEALTH_KEYS = frozenset(HealthCriteria().to_dict())
_RING_KEYS = frozenset(Ring("all", "1").to_dict())
_WHOLE_NUMBERS = {
    "the plan": ("interval_seconds",),
    "[health]": ("min_samples", "failure_limit", "consecutive_successes"),
    "ring": ("bake_seconds", "split_percent"),
}


def read_plan(path: Path) -> RolloutPlan:
    """Reads and validates a rollout plan file (TOML).

    Args:
        path: The plan file.

    Returns:
        The plan, exactly as it will be signed (``to_dict``).

    Raises:
        UsageError: the file cannot be read, is not TOML, has unknown keys or
            values the plan refuses; the message names the file.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"cannot read the rollout plan {path}: {reason}", hint=PLAN_HINT) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(
            f"the rollout plan {path} is not valid TOML: {exc}", hint=PLAN_HINT
        ) from None
    return plan_from_mapping(data, str(path))


def plan_from_mapping(data: Mapping[str, Any], source: str) -> RolloutPlan:
    """Validates a plan given as a mapping (parsed TOML or JSON).

    Args:
        data: The plan's keys.
        source: Where it came from, for error messages (a file name).

    Raises:
        UsageError: unknown keys, wrong shapes or refused values, naming ``source``.
    """
    _check_keys(data, _PLAN_KEYS, source, "the plan")
    _check_whole_numbers(data, _WHOLE_NUMBERS["the plan"], source, "the plan")
    health = data.get("health")
    if health is not None:
        if not isinstance(health, Mapping):
            raise UsageError(f"{source}: [health] must be a table", hint=PLAN_HINT)
        _check_keys(health, _HEALTH_KEYS, source, "[health]")
        _check_whole_numbers(health, _WHOLE_NUMBERS["[health]"], source, "[health]")
    rings = data.get("rings")
    if rings is not None:
        if not isinstance(rings, list) or not rings:
            raise UsageError(
                f"{source}: rings must be a non-empty array of [[rings]] tables", hint=PLAN_HINT
            )
        for number, ring in enumerate(rings, start=1):
            if not isinstance(ring, Mapping):
                raise UsageError(f"{source}: ring {number} must be a table", hint=PLAN_HINT)
            if "name" not in ring or "nodes" not in ring:
                raise UsageError(f"{source}: ring {number} needs a name and nodes", hint=PLAN_HINT)
            _check_keys(ring, _RING_KEYS, source, f"ring {number}")
            _check_whole_numbers(ring, _WHOLE_NUMBERS["ring"], source, f"ring {number}")
    try:
        return RolloutPlan.from_dict(data)
    except UsageError as exc:
        raise UsageError(f"{source}: {exc.message}", hint=exc.hint or PLAN_HINT) from None


def _check_whole_numbers(
    data: Mapping[str, Any], keys: tuple[str, ...], source: str, what: str
) -> None:
    for key in keys:
        value = data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise UsageError(
                f"{source}: {key} in {what} must be a whole number, not {value!r}",
                hint=PLAN_HINT,
            )


def _check_keys(data: Mapping[str, Any], allowed: frozenset[str], source: str, what: str) -> None:
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        raise UsageError(
            f"{source}: unknown key(s) in {what}: {', '.join(unknown)}",
            hint=f"allowed keys: {', '.join(sorted(allowed))}; {PLAN_HINT}",
        )
