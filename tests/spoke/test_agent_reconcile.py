"""The agent's reconcile loop: install, health-check, commit or fall back, refuse, report."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from helpers.agentenv import (
    AGENT_TIME,
    LocalVerifier,
    Node,
    RecordingSender,
    assignment,
    make_node,
)
from helpers.gatemodels import GateModel, classification, make_iris, site_compatibility

from airlock.bundles.clock import FixedClock, utc_iso
from airlock.bundles.errors import NotFoundError, TrustError, UsageError
from airlock.bundles.protocol import HEALTH_CHECK, MetricsReport, SignedDocument, VersionReport
from airlock.bundles.release import Compatibility, Dependency, ReleaseInfo
from airlock.node import LOG_FILE, Agent, AgentHome, FaultSpec, VerifiedAssignment

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
PASSPHRASE = "node passphrase for tests"


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> GateModel:
    return make_iris(tmp_path_factory.mktemp("iris"))


def _files(iris: GateModel, model: Path | None = None) -> dict[str, tuple[Path, str]]:
    return {
        "iris.onnx": (model or iris.path, "model"),
        "validation.npz": (iris.sets["good"], "validation"),
    }


def _version(
    iris: GateModel,
    version: str,
    model: str = "iris",
    release: ReleaseInfo | None = None,
    graph: Path | None = None,
    **node: object,
) -> tuple[VerifiedAssignment, dict[str, tuple[Path, str]]]:
    files = _files(iris, graph)
    release = release or ReleaseInfo(
        validation=classification(), compatibility=site_compatibility()
    )
    return assignment(model, version, files, release, **node), files  # type: ignore[arg-type]


def _report(node: Node) -> VersionReport:
    path, doc = [p for p in node.sender.posted if p[1].signed["type"] == "version-report"][-1]
    assert path == f"/v1/nodes/{node.agent.node_id}/reports"
    return VersionReport.from_dict(doc.verify(node.signer.public_key))


def _family(node: Node, model: str = "iris") -> dict[str, Any]:
    return next(m.to_dict() for m in _report(node).installed if m.model == model)


def test_a_stable_version_is_installed_checked_committed_served_and_reported(
    tmp_path: Path, iris: GateModel
) -> None:
    node = make_node(tmp_path)
    with pytest.raises(NotFoundError):
        node.agent.predictor.predict("iris", ROWS)
    node.verifier.assign(_version(iris, "1"))
    outcome = node.agent.poll_once()
    assert outcome.ok and outcome.report_sent
    assert outcome.changes == ["installed iris@1 slot A", "commit iris@1 slot A"]
    assert node.agent.predictor.predict("iris", ROWS).version == "1"
    report = _report(node)
    assert report.counter == 1 and report.last_verified == utc_iso(AGENT_TIME)
    assert report.installed[0].to_dict() == {
        "model": "iris",
        "active_version": "1",
        "active_slot": "A",
        "standby_version": None,
        "candidate_version": None,
        "traffic": "all",
        "state": "committed",
    }
    assert report.runtime["memory_mb"] == 4096 and report.refusals == ()

    node.agent.poll_once()  # nothing changes, nothing is downloaded again
    assert len(node.verifier.downloads) == 2
    assert _report(node).counter == 2
    metrics = node.sender.documents("metrics")
    assert len(metrics) == 1  # one request was answered in the first window
    window = MetricsReport.from_dict(metrics[0])
    assert [(m.version, m.role, m.requests) for m in window.models] == [("1", "stable", 1)]
    path, doc = next(p for p in node.sender.posted if p[1].signed["type"] == "metrics")
    assert path == "/v1/nodes/node-1/metrics"
    assert doc.verify(node.signer.public_key) == window.to_dict()


def test_a_shadow_candidate_goes_to_the_other_slot_and_only_the_stable_answers(
    tmp_path: Path, iris: GateModel
) -> None:
    node = make_node(tmp_path)
    node.verifier.assign(_version(iris, "1"))
    node.agent.poll_once()
    node.verifier.assign(
        _version(iris, "1"), _version(iris, "2", role="candidate", traffic="shadow")
    )
    node.agent.poll_once()
    for _ in range(4):
        assert node.agent.predictor.predict("iris", ROWS).version == "1"
    assert _family(node) == {
        "model": "iris",
        "active_version": "1",
        "active_slot": "A",
        "standby_version": "2",
        "candidate_version": "2",
        "traffic": "shadow",
        "state": "committed",
    }
    node.agent.report_once()
    window = MetricsReport.from_dict(node.sender.documents("metrics")[-1])
    candidate = next(m for m in window.models if m.role == "candidate")
    assert (candidate.version, candidate.requests, candidate.shadow_compared) == ("2", 4, 8)


def test_a_candidate_answering_all_commits_its_slot_and_a_rollback_is_instant(
    tmp_path: Path, iris: GateModel
) -> None:
    node = make_node(tmp_path)
    node.verifier.assign(_version(iris, "1"))
    node.agent.poll_once()
    node.verifier.assign(_version(iris, "1"), _version(iris, "2", role="candidate"))
    node.agent.poll_once()
    result = node.agent.predictor.predict("iris", ROWS)
    assert (result.version, result.role) == ("2", "candidate")
    assert _family(node)["active_slot"] == "B" and _family(node)["active_version"] == "2"
    downloads = len(node.verifier.downloads)

    node.verifier.assign(_version(iris, "1"))  # the site director rolls the node back
    outcome = node.agent.poll_once()
    assert "commit iris@1 slot A" in outcome.changes
    assert len(node.verifier.downloads) == downloads  # the previous version was still in slot A
    assert node.agent.predictor.predict("iris", ROWS).version == "1"
    family = _family(node)
    assert (family["active_slot"], family["standby_version"]) == ("A", "2")
    assert family["candidate_version"] is None

    node.verifier.assign(_version(iris, "2"))  # promoted: the candidate becomes stable
    node.agent.poll_once()
    assert len(node.verifier.downloads) == downloads
    assert _family(node)["active_slot"] == "B"


def test_a_candidate_failing_its_health_check_falls_back_and_is_not_retried(
    tmp_path: Path, iris: GateModel
) -> None:
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not an onnx model" * 10)
    node = make_node(tmp_path)
    node.verifier.assign(_version(iris, "1"))
    node.agent.poll_once()
    node.verifier.assign(_version(iris, "1"), _version(iris, "2", graph=corrupt, role="candidate"))
    outcome = node.agent.poll_once()
    assert "fell back from iris@2" in outcome.changes
    assert node.agent.predictor.predict("iris", ROWS).version == "1"
    family = _family(node)
    assert (family["state"], family["active_version"], family["candidate_version"]) == (
        "fell-back",
        "1",
        None,
    )
    (refusal,) = _report(node).refusals
    assert (refusal.model, refusal.version) == ("iris", "2")
    assert refusal.reason == (
        "health check: iris@2 does not load: iris.onnx is not a readable ONNX model "
        "(malformed protobuf)"
    )
    downloads = len(node.verifier.downloads)
    node.agent.poll_once()
    assert len(node.verifier.downloads) == downloads
    assert _report(node).refusals == (refusal,)  # same reason, same time: one refusal
    assert (node.agent.home.path / "slots" / "iris" / "A" / "iris.onnx").exists()


def test_a_slow_candidate_fails_its_health_check_with_injected_latency(
    tmp_path: Path, iris: GateModel
) -> None:
    node = make_node(tmp_path)
    node.agent.predictor.set_fault("iris@2", FaultSpec(latency_ms=20))
    slow = ReleaseInfo(validation=classification(max_p95_latency_ms="5", latency_runs=3))
    node.verifier.assign(_version(iris, "1"))
    node.agent.poll_once()
    node.verifier.assign(_version(iris, "1"), _version(iris, "2", release=slow, role="candidate"))
    node.agent.poll_once()
    (refusal,) = _report(node).refusals
    assert "warm-up p95 latency" in refusal.reason and "above the signed maximum 5 ms" in (
        refusal.reason
    )
    assert refusal.kind == HEALTH_CHECK  # bad health: the spoke's rollout engine fails the ring
    assert node.agent.predictor.predict("iris", ROWS).version == "1"


@pytest.mark.parametrize(
    ("compatibility", "words"),
    [
        (site_compatibility(architectures=("s390x",)), "is built for s390x"),
        (site_compatibility(min_memory_mb=1_000_000), "needs 1000000 MB of memory"),
    ],
    ids=["architecture", "memory"],
)
def test_an_incompatible_version_is_refused_reported_and_not_served(
    tmp_path: Path, iris: GateModel, compatibility: Compatibility, words: str
) -> None:
    node = make_node(tmp_path)
    node.verifier.assign(_version(iris, "1", release=ReleaseInfo(compatibility=compatibility)))
    outcome = node.agent.poll_once()
    assert outcome.changes[-1] == "refused iris@1"
    (refusal,) = _report(node).refusals
    assert words in refusal.reason and refusal.version == "1"
    assert refusal.kind == "refused"  # incompatible, not unhealthy: no verdict on the rollout
    assert _family(node)["state"] == "refused" and _family(node)["active_version"] is None
    downloads = len(node.verifier.downloads)
    node.agent.poll_once()
    assert len(node.verifier.downloads) == downloads
    log = [json.loads(line) for line in (node.agent.home.path / LOG_FILE).read_text().splitlines()]
    assert [e["event"] for e in log if e["event"] == "refused"] == ["refused"]


def test_a_version_waits_for_its_dependency_then_installs_after_it(
    tmp_path: Path, iris: GateModel
) -> None:
    needs = ReleaseInfo(compatibility=Compatibility(depends=(Dependency("perception", "1.5"),)))
    node = make_node(tmp_path)
    node.verifier.assign(_version(iris, "2.1", "alpha", needs))
    node.agent.poll_once()
    (refusal,) = _report(node).refusals
    assert refusal.reason == "waiting for dependency perception>=1.5"
    assert node.verifier.downloads == []

    node.verifier.assign(_version(iris, "2.1", "alpha", needs), _version(iris, "1.4", "perception"))
    node.agent.poll_once()
    assert _report(node).refusals[0].reason == "waiting for dependency perception>=1.5"

    node.verifier.assign(_version(iris, "2.1", "alpha", needs), _version(iris, "1.5", "perception"))
    outcome = node.agent.poll_once()  # alpha sorts first; it installs once perception did
    assert outcome.changes.index("installed perception@1.5 slot B") < outcome.changes.index(
        "installed alpha@2.1 slot A"
    )
    assert _report(node).refusals == ()
    assert node.agent.predictor.predict("alpha", ROWS).version == "2.1"


def test_versions_the_verifier_no_longer_returns_are_unloaded_at_once(
    tmp_path: Path, iris: GateModel
) -> None:
    node = make_node(tmp_path)
    node.verifier.assign(_version(iris, "1"), _version(iris, "1", "other"))
    node.agent.poll_once()
    node.verifier.assign(_version(iris, "1"), _version(iris, "2", role="candidate"))
    node.agent.poll_once()
    assert node.agent.predictor.predict("iris", ROWS).version == "2"
    with pytest.raises(NotFoundError):  # a family no longer assigned is not served
        node.agent.predictor.predict("other", ROWS)

    node.verifier.assign(_version(iris, "1"))  # iris@2 revoked: the Image no longer signs it
    outcome = node.agent.poll_once()
    assert "unloaded iris@2" in outcome.changes
    assert node.agent.predictor.predict("iris", ROWS).version == "1"
    assert "iris" in {m.model for m in _report(node).installed}
    assert "other" not in {m.model for m in _report(node).installed}


def test_a_failed_verification_keeps_serving_and_reports_why(
    tmp_path: Path, iris: GateModel
) -> None:
    node = make_node(tmp_path)
    node.verifier.assign(_version(iris, "1"))
    node.agent.poll_once()
    node.verifier.failure = TrustError("Image metadata does not verify: bad signature")
    outcome = node.agent.poll_once()
    assert not outcome.ok and outcome.error is node.verifier.failure
    assert node.agent.predictor.predict("iris", ROWS).version == "1"
    (refusal,) = _report(node).refusals
    assert (refusal.model, refusal.version, refusal.reason) == (
        "*",
        "*",
        "Image metadata does not verify: bad signature",
    )
    node.verifier.failure = None
    assert node.agent.poll_once().ok
    assert _report(node).refusals == ()


def test_metrics_are_kept_while_the_spoke_is_unreachable(tmp_path: Path, iris: GateModel) -> None:
    node = make_node(tmp_path)
    node.verifier.assign(_version(iris, "1"))
    node.agent.poll_once()
    node.sender.unreachable = True
    node.agent.predictor.predict("iris", ROWS)
    outcome = node.agent.report_once()
    assert not outcome.ok and not outcome.report_sent and outcome.metrics_sent == 0
    node.clock.advance(dt.timedelta(seconds=10))
    node.agent.predictor.predict("iris", ROWS)
    node.agent.report_once()
    node.sender.unreachable = False
    node.clock.advance(dt.timedelta(seconds=10))
    assert node.agent.report_once().metrics_sent == 2
    windows = [MetricsReport.from_dict(d) for d in node.sender.documents("metrics")]
    assert windows[0].window_end == windows[1].window_start
    assert sum(m.requests for w in windows for m in w.models) == 2


def test_the_report_counter_grows_across_restarts_and_the_active_version_is_restored(
    tmp_path: Path, iris: GateModel
) -> None:
    AgentHome.create(tmp_path / "home", "node-7", PASSPHRASE)
    clock = FixedClock(AGENT_TIME)
    verifier, sender = LocalVerifier(), RecordingSender()
    verifier.assign(_version(iris, "1"))
    home = AgentHome(tmp_path / "home", lambda _name: PASSPHRASE)
    first = Agent(home, verifier, sender, clock)
    first.poll_once()
    first.poll_once()
    again = Agent(AgentHome(tmp_path / "home", lambda _name: PASSPHRASE), verifier, sender, clock)
    assert again.predictor.predict("iris", ROWS).version == "1"  # served before any poll
    again.poll_once()
    key = home.identity().public_key
    counters = [
        SignedDocument.from_dict(doc.to_dict()).verify(key)["counter"]
        for _, doc in sender.posted
        if doc.signed["type"] == "version-report"
    ]
    assert counters == [1, 2, 3]
    assert len(verifier.downloads) == 2  # the restart found iris@1 in its slot
    log_text = (tmp_path / "home" / LOG_FILE).read_text()
    assert PASSPHRASE not in log_text
    assert [json.loads(line)["event"] for line in log_text.splitlines()][:3] == [
        "installed",
        "health-passed",
        "commit",
    ]


def test_split_and_a_candidate_without_a_stable_version_route_as_assigned(
    tmp_path: Path, iris: GateModel
) -> None:
    node = make_node(tmp_path)
    node.verifier.assign(
        _version(iris, "1"),
        _version(iris, "2", role="candidate", traffic="split", split_percent=50),
    )
    node.agent.poll_once()
    versions = {node.agent.predictor.predict("iris", ROWS).version for _ in range(60)}
    assert versions == {"1", "2"}
    assert (_family(node)["traffic"], _family(node)["candidate_version"]) == ("split", "2")

    node.verifier.assign(_version(iris, "1", "fresh", role="candidate", traffic="shadow"))
    node.agent.poll_once()  # a new family with only a candidate: it answers (nothing else can)
    result = node.agent.predictor.predict("fresh", ROWS)
    assert (result.version, result.role) == ("1", "candidate")
    family = _family(node, "fresh")
    assert (family["active_version"], family["candidate_version"]) == ("1", "1")
    assert not (node.agent.home.path / "state.json").exists()  # ephemeral: state in memory


def test_home_settings_have_defaults_and_environment_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = AgentHome.create(tmp_path / "home", "node-3", PASSPHRASE)
    assert (home.poll_seconds, home.report_seconds, home.listen) == (10, 10, ("127.0.0.1", 8760))
    monkeypatch.setenv("AIRLOCK_AGENT_POLL_SECONDS", "2.5")
    monkeypatch.setenv("AIRLOCK_AGENT_LISTEN", "10.0.0.5:9000")
    assert (home.poll_seconds, home.listen) == (2.5, ("10.0.0.5", 9000))
    monkeypatch.setenv("AIRLOCK_AGENT_POLL_SECONDS", "0")
    with pytest.raises(UsageError, match="positive number of seconds"):
        home.poll_seconds  # noqa: B018
    monkeypatch.setenv("AIRLOCK_AGENT_LISTEN", "nowhere")
    with pytest.raises(UsageError, match="HOST:PORT"):
        home.listen  # noqa: B018
