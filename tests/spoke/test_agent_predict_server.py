"""The node's predict endpoint answers with the committed version, and says why when it cannot."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from helpers.agentenv import Node, assignment, make_node
from helpers.gatemodels import GateModel, classification, make_iris
from prometheus_client.parser import text_string_to_metric_families

from airlock.bundles.release import ReleaseInfo
from airlock.node import FaultSpec, Route, create_app

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> GateModel:
    return make_iris(tmp_path_factory.mktemp("iris"))


def _serving(tmp_path: Path, iris: GateModel) -> tuple[Node, TestClient]:
    node = make_node(tmp_path)
    files = {
        "iris.onnx": (iris.path, "model"),
        "validation.npz": (iris.sets["good"], "validation"),
    }
    node.verifier.assign(
        (assignment("iris", "1", files, ReleaseInfo(validation=classification())), files)
    )
    node.agent.poll_once()
    app = create_app(node.agent.predictor, node.agent.status, node.agent.node_id)
    return node, TestClient(app)


def test_predict_answers_with_the_committed_version(tmp_path: Path, iris: GateModel) -> None:
    _node, client = _serving(tmp_path, iris)
    response = client.post("/v1/predict/iris", json={"inputs": ROWS})
    assert response.status_code == 200
    body = response.json()
    assert (body["model"], body["version"], body["role"]) == ("iris", "1", "stable")
    assert body["outputs"]["label"] == [0, 2]
    assert len(body["outputs"]["probabilities"][0]) == 3
    assert client.get("/healthz").json() == {"status": "ok", "node_id": "node-1"}
    status = client.get("/v1/status").json()
    assert status["installed"][0]["active_version"] == "1"
    assert status["families"]["iris"]["slots"]["A"]["state"] == "ready"


def test_predict_errors_say_what_is_wrong(tmp_path: Path, iris: GateModel) -> None:
    node, client = _serving(tmp_path, iris)
    unknown = client.post("/v1/predict/other", json={"inputs": ROWS})
    assert unknown.status_code == 404
    assert unknown.json()["message"] == "this node does not serve model 'other'"
    shape = client.post("/v1/predict/iris", json={"inputs": [[1.0, 2.0]]})
    assert shape.status_code == 400 and "takes inputs of shape" in shape.json()["message"]
    assert client.post("/v1/predict/iris", json={"rows": ROWS}).status_code == 422

    node.agent.predictor.set_fault("iris@1", FaultSpec(error_rate=1.0))
    failed = client.post("/v1/predict/iris", json={"inputs": ROWS})
    assert failed.status_code == 500 and "injected fault" in failed.json()["message"]

    node.agent.predictor.serve("iris", Route(None))
    waiting = client.post("/v1/predict/iris", json={"inputs": ROWS})
    assert waiting.status_code == 503
    assert waiting.json()["message"] == "model 'iris' has no committed version on this node yet"


def _metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_expose_what_the_node_serves_without_identifying_it(
    tmp_path: Path, iris: GateModel
) -> None:
    node, _client = _serving(tmp_path, iris)
    app = create_app(node.agent.predictor, node.agent.status, node.agent.node_id)
    client = TestClient(app, client=("127.0.0.1", 40000))
    assert client.post("/v1/predict/iris", json={"inputs": ROWS}).status_code == 200
    assert client.post("/v1/predict/other", json={"inputs": ROWS}).status_code == 404
    node.agent.predictor.set_fault("iris@1", FaultSpec(error_rate=1.0))
    assert client.post("/v1/predict/iris", json={"inputs": ROWS}).status_code == 500

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert node.agent.node_id not in response.text
    found = _metrics(response.text)
    http = "airlock_agent_http_requests_total"
    route = (("method", "POST"), ("route", "/v1/predict/{model}"))
    assert found[(http, (*route, ("status", "200")))] == 1
    assert found[(http, (*route, ("status", "404")))] == 1
    assert found[(http, (*route, ("status", "500")))] == 1
    stable = (("model", "iris"), ("role", "stable"), ("version", "1"))
    assert found[("airlock_agent_model_requests_total", stable)] == 2
    assert found[("airlock_agent_model_errors_total", stable)] == 1
    assert found[("airlock_agent_model_latency_seconds_count", stable)] == 2
    assert found[("airlock_agent_model_version", stable)] == 1
    assert found[("airlock_agent_family_state", (("model", "iris"), ("state", "committed")))] == 1
    assert found[("airlock_agent_refusals", ())] == 0
    assert found[("airlock_agent_assignment_counter", ())] == node.agent.status()["counter"]
    assert found[("airlock_agent_last_verified_timestamp_seconds", ())] > 0


def test_metrics_answer_loopback_scrapers_only_unless_allowed(
    tmp_path: Path, iris: GateModel
) -> None:
    node, _client = _serving(tmp_path, iris)
    args = (node.agent.predictor, node.agent.status, node.agent.node_id)
    remote = TestClient(create_app(*args), client=("192.0.2.10", 40000))
    refused = remote.get("/metrics")
    assert refused.status_code == 403
    assert (
        "loopback" in refused.json()["message"] and "agent.metrics_remote" in refused.json()["hint"]
    )
    allowed = TestClient(create_app(*args, metrics_remote=True), client=("192.0.2.10", 40000))
    assert allowed.get("/metrics").status_code == 200
