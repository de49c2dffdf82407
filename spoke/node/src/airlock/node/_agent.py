"""The node agent's reconcile loop: verify, install, health-check, serve, report.

Each :meth:`Agent.poll_once`:

1. ``verifier.refresh()`` — the node's assignment, verified end to end
   (:class:`~airlock.node._verify.NodeVerifier`). On failure the node
   keeps serving what it has and reports the refusal (``*@*``) with the reason.
2. Unload at once every version the verifier no longer returns (revoked by the
   hub, or unassigned by the site director); stop serving unassigned families.
3. Reconcile each family (families waiting on a dependency are retried in the
   same poll once the others moved): the stable version, then the candidate —
   dependencies, download into the inactive slot, compatibility, health check,
   then commit (switch the active slot) or fall back (keep it). A version that
   failed its health check is not retried; a refused one is not downloaded
   again while this process runs.
4. Send a signed :class:`~airlock.bundles.protocol.VersionReport` (its counter
   persisted before use) and the metrics window.

The verifier and the report sender are injected (:class:`Verifier`,
:class:`ReportSender`): a real ``NodeVerifier`` and ``NodeClient`` in
production. Installs, commits, fallbacks and refusals go to the home's
``agent-log.jsonl``.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from airlock.bundles.clock import Clock, utc_iso
from airlock.bundles.errors import AirlockError, MediaError, SecretError
from airlock.bundles.protocol import (
    NODES_PATH,
    InstalledModel,
    MetricsReport,
    Refusal,
    SignedDocument,
    VersionReport,
)
from airlock.node._home import AgentHome
from airlock.node._inference import Predictor
from airlock.node._reconcile import METADATA_REFUSAL, Reconciler, default_model
from airlock.node._recorder import Recorder
from airlock.node._verify import VerifiedAssignment, VerifiedFile

MAX_PENDING_WINDOWS = 60


class Verifier(Protocol):
    """What the agent needs of :class:`~airlock.node._verify.NodeVerifier`."""

    @property
    def last_verified(self) -> Any:
        """When the assignment last verified (a datetime, or None)."""
        ...

    def refresh(self) -> Sequence[VerifiedAssignment]:
        """The verified assignment; raises AirlockError when it does not verify."""
        ...

    def download(self, file: VerifiedFile, dest: Path) -> Path:
        """Fetches and verifies one file to ``dest``."""
        ...


class ReportSender(Protocol):
    """What the agent needs of :class:`~airlock.node._client.NodeClient`."""

    def post_document(self, path: str, doc: SignedDocument) -> dict[str, Any]:
        """POSTs a signed document to the spoke; raises AirlockError on failure."""
        ...


def reports_path(node_id: str) -> str:
    """Where a node posts its version reports."""
    return f"{NODES_PATH}/{node_id}/reports"


def metrics_path(node_id: str) -> str:
    """Where a node posts its metrics windows."""
    return f"{NODES_PATH}/{node_id}/metrics"


@dataclass
class PollOutcome:
    """What one poll did."""

    verified: bool
    error: AirlockError | None = None
    """Why the assignment did not verify (the node kept what it had)."""
    changes: list[str] = field(default_factory=list)
    refusals: tuple[Refusal, ...] = ()
    report_sent: bool = False
    metrics_sent: int = 0
    send_error: AirlockError | None = None

    @property
    def ok(self) -> bool:
        """Verified, and the reports reached the spoke."""
        return self.verified and self.send_error is None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "ok": self.ok,
            "verified": self.verified,
            "error": self.error.to_dict() if self.error else None,
            "changes": self.changes,
            "refusals": [r.to_dict() for r in self.refusals],
            "report_sent": self.report_sent,
            "metrics_sent": self.metrics_sent,
            "send_error": self.send_error.to_dict() if self.send_error else None,
        }


class Agent:
    """One node: its slots, its served models, its reports.

    Args:
        home: The agent's home (key, state, slots).
        verifier: Verifies the assignment and downloads files.
        sender: Posts signed documents to the spoke.
        clock: Report times and metrics windows (defaults to the home's clock).
        predictor: Serves inference (a new one recording into a new Recorder by default).
    """

    def __init__(
        self,
        home: AgentHome,
        verifier: Verifier,
        sender: ReportSender,
        clock: Clock | None = None,
        predictor: Predictor | None = None,
    ) -> None:
        self.home = home
        self.verifier = verifier
        self.sender = sender
        self.clock = clock or home.clock
        self.predictor = predictor or Predictor(Recorder(home.node_id, self.clock.now()))
        self.recorder = self.predictor.recorder
        self._lock = threading.RLock()
        self._poll_lock = threading.Lock()
        self._report_lock = threading.Lock()
        self.state = home.load_state()
        self._pending: list[MetricsReport] = []
        self.reconciler = Reconciler(home, self.state, self.predictor, self._lock, self.clock)
        self.reconciler.restore()

    @property
    def node_id(self) -> str:
        """This node's id."""
        return self.home.node_id

    def poll_once(self) -> PollOutcome:
        """Verifies, reconciles every family, then reports (see the module docstring)."""
        with self._poll_lock:
            try:
                assignments = list(self.verifier.refresh())
            except AirlockError as exc:
                outcome = PollOutcome(verified=False, error=exc)
                self._refuse_metadata(exc)
            else:
                outcome = PollOutcome(verified=True)
                with self._lock:
                    self.state.refusals.pop(METADATA_REFUSAL, None)
                outcome.changes = self.reconciler.reconcile(assignments, self.verifier.download)
            self.report_once(outcome)
            outcome.refusals = tuple(self.state.refusals.values())
            return outcome

    def report_once(self, outcome: PollOutcome | None = None) -> PollOutcome:
        """Sends the version report and the metrics window(s) due."""
        outcome = outcome or PollOutcome(verified=True)
        with self._report_lock:
            try:
                self.send_version_report()
                outcome.report_sent = True
            except AirlockError as exc:
                outcome.send_error = exc
                self.home.log("report-failed", reason=exc.message)
            sent, error = self.send_metrics()
        outcome.metrics_sent = sent
        outcome.send_error = outcome.send_error or error
        return outcome

    def version_report(self) -> VersionReport:
        """A new version report (takes the next counter value and persists it first)."""
        with self._lock:
            self.state.counter += 1
            self.home.save_state(self.state)
            installed = tuple(self._installed())
            refusals = tuple(self.state.refusals.values())
            counter = self.state.counter
        return VersionReport(
            node_id=self.node_id,
            counter=counter,
            time=utc_iso(self.clock.now()),
            installed=installed,
            last_verified=_iso(self.verifier.last_verified),
            refusals=refusals,
            runtime=self.home.runtime().to_dict(),
        )

    def send_version_report(self) -> VersionReport:
        """Signs and sends a version report; returns it.

        Raises:
            AirlockError: the spoke did not take it (transport, refusal).
        """
        report = self.version_report()
        doc = SignedDocument.sign(self.home.signer(), report.to_dict())
        self.sender.post_document(reports_path(self.node_id), doc)
        return report

    def send_metrics(self) -> tuple[int, AirlockError | None]:
        """Flushes the metrics window and sends it with any not sent before.

        A transport failure keeps the windows for the next try; a window the
        spoke refuses (e.g. already counted) is dropped.
        """
        report = self.recorder.flush(self.clock.now())
        if report is not None:
            self._pending.append(report)
            del self._pending[:-MAX_PENDING_WINDOWS]
        sent = 0
        while self._pending:
            try:
                doc = SignedDocument.sign(self.home.signer(), self._pending[0].to_dict())
                self.sender.post_document(metrics_path(self.node_id), doc)
            except (MediaError, SecretError) as exc:
                return sent, exc
            except AirlockError as exc:
                self.home.log("metrics-dropped", reason=exc.message)
                self._pending.pop(0)
                return sent, exc
            self._pending.pop(0)
            sent += 1
        return sent, None

    def run(self, stop: threading.Event) -> None:
        """Polls every ``poll_seconds`` and reports every ``report_seconds`` until ``stop``."""
        next_poll = next_report = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            try:
                if now >= next_poll:
                    self.poll_once()
                    next_poll = now + self.home.poll_seconds
                    next_report = now + self.home.report_seconds
                elif now >= next_report:
                    self.report_once()
                    next_report = now + self.home.report_seconds
            except Exception as exc:  # keep serving whatever goes wrong in one round
                self.home.log("error", reason=f"{type(exc).__name__}: {exc}"[:300])
                next_poll = now + self.home.poll_seconds
            stop.wait(max(0.0, min(next_poll, next_report) - time.monotonic()))

    def status(self) -> dict[str, Any]:
        """The node's state: families, slots, refusals, counter (the status endpoint)."""
        with self._lock:
            return {
                "node_id": self.node_id,
                "counter": self.state.counter,
                "installed": [m.to_dict() for m in self._installed()],
                "families": {n: f.to_dict() for n, f in sorted(self.state.families.items())},
                "refusals": [r.to_dict() for r in self.state.refusals.values()],
                "last_verified": _iso(self.verifier.last_verified),
            }

    def _installed(self) -> list[InstalledModel]:
        models = []
        for name in sorted(self.reconciler.assigned):
            family = self.state.families.get(name)
            if family is None:
                continue
            route = self.predictor.route(name)
            candidate = route.candidate if route else None
            default = default_model(route)
            standby = family.slots[family.other(family.active)]
            models.append(
                InstalledModel(
                    model=name,
                    active_version=default.version if default else None,
                    active_slot=family.active,
                    standby_version=standby.version if standby.state != "failed" else None,
                    candidate_version=candidate.version if candidate else None,
                    traffic=route.traffic if route and candidate else "all",
                    state=family.state,
                )
            )
        return models

    def _refuse_metadata(self, exc: AirlockError) -> None:
        with self._lock:
            previous = self.state.refusals.get(METADATA_REFUSAL)
            if previous is None or previous.reason != exc.message:
                refusal = Refusal("*", "*", exc.message, utc_iso(self.clock.now()))
                self.state.refusals[METADATA_REFUSAL] = refusal
                self.home.save_state(self.state)
                self.home.log("refused", model="*", version="*", reason=exc.message)


def _iso(value: Any) -> str | None:
    """A verifier's ``last_verified`` (datetime, text or None) as report text."""
    if value is None:
        return None
    return utc_iso(value) if isinstance(value, dt.datetime) else str(value)
