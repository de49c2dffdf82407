"""Phased rollouts inside a site: rings, the engine's tick, canary analysis, the site
admin's actions, change windows and the rollout history.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.spoke.rollout._admin import (
    abort,
    list_rollouts,
    pause,
    promote,
    resume,
    show_rollout,
)
from airlock.spoke.rollout._analysis import (
    FAILED,
    INCONCLUSIVE,
    PASSED,
    Cohort,
    judge,
    read_cohort,
)
from airlock.spoke.rollout._decisions import ENGINE_PRINCIPAL, event_dict
from airlock.spoke.rollout._engine import TickMemo, step, tick
from airlock.spoke.rollout._rings import ring_order

__all__ = [
    "ENGINE_PRINCIPAL",
    "FAILED",
    "INCONCLUSIVE",
    "PASSED",
    "Cohort",
    "TickMemo",
    "abort",
    "event_dict",
    "judge",
    "list_rollouts",
    "pause",
    "promote",
    "read_cohort",
    "resume",
    "ring_order",
    "show_rollout",
    "step",
    "tick",
]
