"""Simulated nodes: real node agents against a real spoke on loopback, with injected faults.

``airlock spoke simulate`` lets a site admin (and the demo, the benchmark and
the end-to-end tests) watch rollouts and rollbacks without hardware. Each
simulated node is a real :class:`~airlock.node._agent.Agent`: its own
Ed25519 key (kept in memory), enrolled at the spoke like any node, verifying
Image and site-director metadata with ``tuf.ngclient`` over HTTP through
signed requests, installing into A/B slots on disk, health-checking and
serving in onnxruntime, and sending signed version reports and metrics. What
is simulated is only the outside world:

- the hardware: every node runs in this process (one thread for its agent
  loop, one for its traffic), or spread over several processes
  (``--processes``), with its slots under ``--work-dir``;
- the traffic: each node answers ``--rps`` requests a second on random inputs
  of the model's input shape;
- faults, per model version (``--fault iris@2:latency_ms=30,error_rate=0.05``):
  added latency (really slept, inside the measured time), an error rate, and a
  rate of wrong answers (:class:`~airlock.node._inference.FaultSpec`).
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from securesystemslib.signer import Signer

from airlock.bundles.clock import Clock, SystemClock
from airlock.bundles.db import session_scope
from airlock.bundles.errors import AirlockError, UsageError
from airlock.bundles.keys import generate_signer
from airlock.bundles.protocol import NodeIdentity
from airlock.node import (
    Agent,
    AgentHome,
    FaultSpec,
    NodeClient,
    Predictor,
    Recorder,
    SignedFetcher,
    make_verifier,
)
from airlock.spoke.nodes._enrolment import enroll_node
from airlock.spoke.site._home import SpokeHome

FAULT_KEYS = ("latency_ms", "error_rate", "wrong_rate")


def parse_fault(text: str) -> tuple[str, FaultSpec]:
    """Parses ``MODEL@VERSION:latency_ms=30,error_rate=0.05,wrong_rate=0.1``.

    Raises:
        UsageError: not in that form, an unknown key, or a rate outside 0-1.
    """
    ref, sep, spec = text.partition(":")
    if not sep or "@" not in ref or not spec:
        raise UsageError(
            f"fault {text!r} is not MODEL@VERSION:KEY=VALUE[,KEY=VALUE]",
            hint="e.g. --fault iris@2:latency_ms=30,error_rate=0.05",
        )
    values: dict[str, float] = {}
    for item in spec.split(","):
        key, _, value = item.partition("=")
        if key not in FAULT_KEYS:
            raise UsageError(f"unknown fault {key!r} in {text!r}", hint=f"use {FAULT_KEYS}")
        try:
            values[key] = float(value)
        except ValueError:
            raise UsageError(f"fault {key} in {text!r} is not a number") from None
        if values[key] < 0 or (key != "latency_ms" and values[key] > 1):
            raise UsageError(f"fault {key} in {text!r} is out of range")
    return ref, FaultSpec(**values)


@dataclass(frozen=True)
class SimulationSettings:
    """What to simulate (see the module docstring)."""

    spoke_url: str
    nodes: int
    prefix: str = "sim"
    first_index: int = 0
    rps: float = 5.0
    poll_seconds: float = 2.0
    report_seconds: float = 2.0
    faults: Mapping[str, FaultSpec] = field(default_factory=dict)
    tls_ca_pem: str | None = None
    seed: int = 7

    def __post_init__(self) -> None:
        if self.nodes < 1:
            raise UsageError("simulate at least one node")
        if self.rps < 0 or self.poll_seconds <= 0 or self.report_seconds <= 0:
            raise UsageError("rates and intervals must be positive")

    def node_ids(self) -> list[str]:
        """The simulated nodes' ids, e.g. ``sim-0000``."""
        return [
            f"{self.prefix}-{i:04d}" for i in range(self.first_index, self.first_index + self.nodes)
        ]


@dataclass
class SimulatedNode:
    """One simulated node: its agent and the HTTP client it talks through."""

    agent: Agent
    client: NodeClient
    rng: random.Random


class Simulation:
    """Enrols the simulated nodes at the spoke, then runs their agents and their traffic."""

    def __init__(
        self,
        spoke: SpokeHome,
        settings: SimulationSettings,
        work_dir: Path,
        clock: Clock | None = None,
    ) -> None:
        self.spoke = spoke
        self.settings = settings
        self.work_dir = Path(work_dir)
        self.clock = clock or SystemClock()
        self.nodes: list[SimulatedNode] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def enroll(self, site_signer: Signer) -> list[str]:
        """Creates each node's key and enrols all of them in one transaction (audited).

        Raises:
            ConflictError: a node id is already enrolled with another key (pick another
                ``--prefix`` or remove the old nodes).
        """
        settings = self.settings
        signers = {node_id: generate_signer() for node_id in settings.node_ids()}
        with session_scope(self.spoke.engine) as session:
            bootstraps = {
                node_id: enroll_node(
                    self.spoke,
                    session,
                    NodeIdentity(node_id, signer.public_key),
                    {"simulated": "true"},
                    settings.spoke_url,
                    site_signer,
                    self.clock.now(),
                    tls_ca_pem=settings.tls_ca_pem,
                )
                for node_id, signer in signers.items()
            }
        agent_settings = {
            "agent": {
                "poll_seconds": settings.poll_seconds,
                "report_seconds": settings.report_seconds,
            }
        }
        for index, (node_id, signer) in enumerate(signers.items()):
            bootstrap = bootstraps[node_id]
            home = AgentHome.ephemeral(
                self.work_dir / node_id, node_id, signer, settings=agent_settings, clock=self.clock
            )
            client = NodeClient(
                bootstrap.spoke_url, node_id, signer, self.clock, ca_pem=bootstrap.tls_ca_pem
            )
            verifier = make_verifier(home, bootstrap, SignedFetcher(client))
            verifier.trust(bootstrap.image_root.encode(), bootstrap.site_root.encode())
            rng = random.Random(settings.seed * 100_003 + index)  # noqa: S311 - traffic, not keys
            predictor = Predictor(
                Recorder(node_id, self.clock.now()), rng=rng, faults=dict(settings.faults)
            )
            agent = Agent(home, verifier, client, self.clock, predictor)
            self.nodes.append(SimulatedNode(agent, client, rng))
        return list(signers)

    def start(self) -> None:
        """Starts every node's agent loop and traffic, in threads of this process."""
        for node in self.nodes:
            for target, name in ((node.agent.run, "agent"), (self._traffic, "traffic")):
                args: tuple[Any, ...] = (self._stop,) if name == "agent" else (node,)
                thread = threading.Thread(
                    target=target, args=args, name=f"{node.agent.node_id}-{name}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        """Stops the loops and closes the clients."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        for node in self.nodes:
            node.client.close()

    def _traffic(self, node: SimulatedNode) -> None:
        rps = self.settings.rps
        if rps <= 0:
            return
        gap = 1.0 / rps
        while not self._stop.wait(gap * (0.5 + node.rng.random())):
            for model, route in node.agent.predictor.models().items():
                loaded = route.stable or route.candidate
                if loaded is None:
                    continue
                shape = tuple(d if d is not None else 1 for d in loaded.input_shape)
                inputs = np.asarray(
                    [node.rng.uniform(0.0, 8.0) for _ in range(int(np.prod(shape)))]
                ).reshape(shape)
                # injected errors are counted by the predictor; the traffic goes on
                with contextlib.suppress(AirlockError):
                    node.agent.predictor.predict(model, inputs.astype(loaded.input_dtype))

    def fleet_view(self) -> dict[str, dict[str, str | None]]:
        """node id → model → the version that answers now (what an operator would see)."""
        view: dict[str, dict[str, str | None]] = {}
        for node in self.nodes:
            answering = {}
            for model, route in node.agent.predictor.models().items():
                loaded = route.stable or route.candidate
                answering[model] = loaded.version if loaded is not None else None
            view[node.agent.node_id] = answering
        return view


def versions_in_use(view: Mapping[str, Mapping[str, str | None]], model: str) -> dict[str, int]:
    """How many nodes answer with each version of ``model`` (``"-"``: none)."""
    counts: dict[str, int] = {}
    for models in view.values():
        version = models.get(model) or "-"
        counts[version] = counts.get(version, 0) + 1
    return dict(sorted(counts.items()))


def shard(settings: SimulationSettings, index: int, count: int) -> SimulationSettings:
    """The part of ``settings`` that process ``index`` of ``count`` simulates."""
    per = -(-settings.nodes // count)
    first = settings.first_index + index * per
    nodes = max(0, min(per, settings.first_index + settings.nodes - first))
    return SimulationSettings(
        spoke_url=settings.spoke_url,
        nodes=nodes,
        prefix=settings.prefix,
        first_index=first,
        rps=settings.rps,
        poll_seconds=settings.poll_seconds,
        report_seconds=settings.report_seconds,
        faults=settings.faults,
        tls_ca_pem=settings.tls_ca_pem,
        seed=settings.seed,
    )


def wait_until(predicate: Callable[[], bool], timeout: float, poll: float = 0.2) -> bool:
    """Polls ``predicate()`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return bool(predicate())
