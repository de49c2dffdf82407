"""The node's predict endpoint answers with the committed version, and says why when it cannot."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from helpers.agentenv import Node, assignment, make_node
from helpers.gatemodels import GateModel, classification, make_iris

from airlock.bundles.release import ReleaseInfo
from airlock.spoke.agent.inference import FaultSpec, Route
from airlock.spoke.agent.predict_server import create_app

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
