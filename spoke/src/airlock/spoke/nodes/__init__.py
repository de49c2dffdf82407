"""The site's inference nodes: enrolment, and simulated nodes (real node agents on
loopback) for tests, the demo and the fleet benchmark.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.spoke.nodes._enrolment import enroll, enroll_node, remove_node
from airlock.spoke.nodes._simulate import (
    Simulation,
    SimulationSettings,
    parse_fault,
    shard,
    versions_in_use,
    wait_until,
)

__all__ = [
    "Simulation",
    "SimulationSettings",
    "enroll",
    "enroll_node",
    "parse_fault",
    "remove_node",
    "shard",
    "versions_in_use",
    "wait_until",
]
