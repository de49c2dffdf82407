"""Serving on a node: traffic split, shadow comparison, fault injection, per-window metrics."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import numpy as np
import pytest
from helpers.agentenv import AGENT_TIME
from helpers.gatemodels import GateModel, make_iris

from airlock.bundles.clock import utc_iso
from airlock.bundles.errors import NotFoundError, UsageError
from airlock.bundles.metrics import LatencySketch, value_bucket
from airlock.bundles.protocol import MetricsReport
from airlock.bundles.release import ReleaseInfo
from airlock.node import (
    FaultSpec,
    InferenceFailedError,
    LoadedModel,
    NotServingError,
    Predictor,
    Recorder,
    Route,
    open_model,
)

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> GateModel:
    return make_iris(tmp_path_factory.mktemp("iris"))


def _load(iris: GateModel, version: str) -> LoadedModel:
    return open_model("iris", version, iris.path, ReleaseInfo())


def _predictor(seed: int = 1) -> Predictor:
    return Predictor(Recorder("node-1", AGENT_TIME), rng=random.Random(seed))


def _metrics(predictor: Predictor) -> dict[tuple[str, str], dict[str, Any]]:
    report = predictor.recorder.flush(AGENT_TIME + dt.timedelta(seconds=10))
    assert report is not None
    return {(m.version, m.role): m.to_dict() for m in report.models}


def test_the_stable_version_answers_and_is_recorded(iris: GateModel) -> None:
    predictor = _predictor()
    predictor.serve("iris", Route(_load(iris, "1")))
    result = predictor.predict("iris", ROWS)
    assert (result.version, result.role) == ("1", "stable")
    assert result.outputs["label"].tolist() == [0, 2, 1]
    assert result.to_dict()["outputs"]["probabilities"][0][0] > 0.5
    figures = _metrics(predictor)[("1", "stable")]
    assert figures["requests"] == 1 and figures["errors"] == 0
    assert figures["predictions"] == {"0": 1, "1": 1, "2": 1}
    assert LatencySketch.from_dict(figures["latency"]).count == 1
    # one confidence bucket per answered row: the tenth its highest class probability falls in
    probabilities = result.outputs["probabilities"]
    expected: dict[str, int] = {}
    for row in probabilities:
        bucket = f"{min(9, int(float(row.max()) * 10)) / 10:.1f}"
        expected[bucket] = expected.get(bucket, 0) + 1
    assert figures["confidence"] == expected and sum(expected.values()) == len(ROWS)


def test_split_sends_about_the_configured_share_to_the_candidate(iris: GateModel) -> None:
    predictor = _predictor(seed=7)
    predictor.serve("iris", Route(_load(iris, "1"), _load(iris, "2"), "split", 30))
    roles = [predictor.predict("iris", ROWS[:1]).role for _ in range(1000)]
    share = roles.count("candidate") / len(roles)
    assert 0.25 < share < 0.35
    figures = _metrics(predictor)
    assert figures[("2", "candidate")]["requests"] == roles.count("candidate")
    assert figures[("1", "stable")]["requests"] == roles.count("stable")


def test_traffic_all_lets_the_candidate_answer_everything(iris: GateModel) -> None:
    predictor = _predictor()
    predictor.serve("iris", Route(_load(iris, "1"), _load(iris, "2"), "all"))
    assert {predictor.predict("iris", ROWS).role for _ in range(20)} == {"candidate"}


def test_shadow_only_the_stable_answers_and_the_candidate_is_compared(iris: GateModel) -> None:
    predictor = _predictor()
    predictor.serve("iris", Route(_load(iris, "1"), _load(iris, "2"), "shadow"))
    for _ in range(10):
        result = predictor.predict("iris", ROWS)
        assert (result.version, result.role) == ("1", "stable")
    figures = _metrics(predictor)
    candidate = figures[("2", "candidate")]
    assert candidate["requests"] == 10
    assert (candidate["shadow_compared"], candidate["shadow_disagreed"]) == (30, 0)
    assert figures[("1", "stable")]["shadow_compared"] == 0


def test_shadow_counts_disagreements_of_a_candidate_giving_wrong_answers(
    iris: GateModel,
) -> None:
    predictor = _predictor()
    predictor.set_fault("iris@2", FaultSpec(wrong_rate=1.0))
    predictor.serve("iris", Route(_load(iris, "1"), _load(iris, "2"), "shadow"))
    for _ in range(5):
        assert predictor.predict("iris", ROWS).outputs["label"].tolist() == [0, 2, 1]
    candidate = _metrics(predictor)[("2", "candidate")]
    assert (candidate["shadow_compared"], candidate["shadow_disagreed"]) == (15, 15)
    assert set(candidate["predictions"]) <= {"0", "1", "2"}


def test_a_failing_shadow_candidate_never_fails_the_request(iris: GateModel) -> None:
    predictor = _predictor()
    predictor.set_fault("iris@2", FaultSpec(error_rate=1.0))
    predictor.serve("iris", Route(_load(iris, "1"), _load(iris, "2"), "shadow"))
    assert predictor.predict("iris", ROWS).role == "stable"
    candidate = _metrics(predictor)[("2", "candidate")]
    assert (candidate["requests"], candidate["errors"]) == (1, 1)


def test_injected_errors_are_raised_and_counted(iris: GateModel) -> None:
    predictor = _predictor(seed=3)
    predictor.set_fault("iris@1", FaultSpec(error_rate=0.5))
    predictor.serve("iris", Route(_load(iris, "1")))
    failures = 0
    for _ in range(200):
        try:
            predictor.predict("iris", ROWS[:1])
        except InferenceFailedError as exc:
            assert "iris@1 failed to answer: injected fault" in exc.message
            failures += 1
    assert 70 < failures < 130
    figures = _metrics(predictor)[("1", "stable")]
    assert (figures["requests"], figures["errors"]) == (200, failures)
    predictor.set_fault("iris@1", None)
    assert predictor.predict("iris", ROWS).version == "1"


def test_injected_latency_is_inside_the_measured_time(iris: GateModel) -> None:
    predictor = _predictor()
    predictor.set_fault("iris@1", FaultSpec(latency_ms=30))
    predictor.serve("iris", Route(_load(iris, "1")))
    predictor.predict("iris", ROWS)
    sketch = LatencySketch.from_dict(_metrics(predictor)[("1", "stable")]["latency"])
    assert (sketch.quantile(0.5) or 0) >= 30 * 0.98


def test_unknown_unserved_and_malformed_requests(iris: GateModel) -> None:
    predictor = _predictor()
    with pytest.raises(NotFoundError):
        predictor.predict("iris", ROWS)
    predictor.serve("iris", Route(None))
    with pytest.raises(NotServingError):
        predictor.predict("iris", ROWS)
    predictor.serve("iris", Route(_load(iris, "1")))
    with pytest.raises(UsageError, match="takes inputs of shape"):
        predictor.predict("iris", [1.0, 2.0])
    with pytest.raises(UsageError, match="not numeric"):
        predictor.predict("iris", [["a", "b", "c", "d"]])
    assert predictor.recorder.flush(AGENT_TIME) is None  # client mistakes are not model errors
    predictor.stop("iris")
    with pytest.raises(NotFoundError):
        predictor.predict("iris", ROWS)


def test_recorder_windows_are_contiguous_and_empty_ones_carry_over() -> None:
    recorder = Recorder("node-1", AGENT_TIME)
    assert recorder.flush(AGENT_TIME + dt.timedelta(seconds=10)) is None
    recorder.record("iris", "1", "stable", 2.0, predictions=["0", "0"])
    recorder.record("iris", "1", "stable", 4.0, error=True)
    recorder.shadow("iris", "2", compared=3, disagreed=1)
    first = recorder.flush(AGENT_TIME + dt.timedelta(seconds=20))
    assert first is not None
    assert (first.window_start, first.window_end) == (
        utc_iso(AGENT_TIME),
        utc_iso(AGENT_TIME + dt.timedelta(seconds=20)),
    )
    stable = next(m for m in first.models if m.role == "stable")
    assert (stable.requests, stable.errors, stable.predictions) == (2, 1, {"0": 2})
    candidate = next(m for m in first.models if m.role == "candidate")
    assert (candidate.shadow_compared, candidate.shadow_disagreed) == (3, 1)
    recorder.record("iris", "1", "stable", 1.0)
    second = recorder.flush(AGENT_TIME + dt.timedelta(seconds=30))
    assert second is not None and second.window_start == first.window_end
    assert MetricsReport.from_dict(second.to_dict()) == second


def test_regression_answers_are_bucketed_coarsely() -> None:
    assert [value_bucket(v) for v in (0.0, 37.2, -0.042, 1.0, 999.0)] == [
        "0",
        "30",
        "-0.05",
        "1",
        "900",
    ]
    assert value_bucket(float("nan")) == "nan"
    assert np.isfinite(float(value_bucket(123456.0)))
