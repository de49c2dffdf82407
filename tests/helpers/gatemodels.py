"""Real models and validation sets for the validation gate's tests, and the hub steps to ship them.

* :func:`make_iris` — a scikit-learn logistic regression on iris, converted with
  skl2onnx (opset 17, zipmap off: ``label`` [N] int64 first, then
  ``probabilities`` [N, 3]), a validation set whose labels are the model's own
  predictions under onnxruntime (accuracy 1.0), and one with shuffled labels.
* :func:`make_scores` — ``Y = X·W`` [N, 3] with a dynamic batch dimension: a
  classifier read by arg-max.
* :func:`make_adder` — :func:`helpers.onnx_models.make_onnx_model` with external
  data (``Y = X + W``, fixed batch of one) and regression sets (exact, or off by 0.5).
* :func:`release` / :func:`ship` — the hub's real release, assignment and export.

Validation sets are NumPy ``.npz`` archives with ``inputs`` and ``expected``.
"""

from __future__ import annotations

import datetime as dt
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper

from airlock.bundles.clock import FixedClock
from airlock.bundles.release import Compatibility, ReleaseInfo, ValidationSpec
from airlock.hub.context import HubContext
from airlock.hub.export import assign as assign_version
from airlock.hub.export import export
from airlock.hub.export import unassign as unassign_version
from airlock.hub.intake import release_model
from helpers.onnx_models import make_onnx_model
from helpers.spokeenv import SITE_ID

VALIDATION_FILE = "validation.npz"
IRIS_SAMPLES = 30
ADDER_SAMPLES = 20
ADDER_WIDTH = 4


@dataclass(frozen=True)
class GateModel:
    """A model on disk and its validation sets (name → ``.npz`` path)."""

    path: Path
    sets: dict[str, Path]
    accuracy: dict[str, float]


def _run(model: Path, inputs: np.ndarray) -> list[np.ndarray]:
    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: inputs})  # type: ignore[no-any-return]


def _save(path: Path, inputs: np.ndarray, expected: np.ndarray) -> Path:
    np.savez(path, inputs=inputs, expected=expected)
    return path


def make_iris(directory: Path) -> GateModel:
    """The iris classifier and its ``good`` and ``shuffled`` validation sets."""
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    directory.mkdir(parents=True, exist_ok=True)
    features, labels = load_iris(return_X_y=True)
    features = features.astype(np.float32)
    order = np.random.default_rng(7).permutation(len(labels))
    test, fit = order[:IRIS_SAMPLES], order[IRIS_SAMPLES:]
    model = LogisticRegression(max_iter=1000).fit(features[fit], labels[fit])
    proto = to_onnx(
        model,
        features[:1],
        options={id(model): {"zipmap": False}},
        target_opset=17,
    )
    path = directory / "iris.onnx"
    onnx.save(proto, str(path))
    inputs = features[test]
    predicted = _run(path, inputs)[0].astype(np.int64)
    shuffled = np.random.default_rng(11).permutation(labels[test]).astype(np.int64)
    return GateModel(
        path,
        {
            "good": _save(directory / "good.npz", inputs, predicted),
            "shuffled": _save(directory / "shuffled.npz", inputs, shuffled),
        },
        {"good": 1.0, "shuffled": float((shuffled == predicted).mean())},
    )


def make_scores(directory: Path) -> GateModel:
    """``Y = X·W`` (float [N, 4] → [N, 3], dynamic N) and a 300-row set of its arg-max."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    weights = rng.normal(size=(4, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Y"])],
        "airlock-test-scores",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 3])],
        initializer=[numpy_helper.from_array(weights, "W")],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    path = directory / "scores.onnx"
    onnx.save(proto, str(path))
    inputs = rng.normal(size=(300, 4)).astype(np.float32)
    expected = (inputs @ weights).argmax(axis=1).astype(np.int64)
    return GateModel(path, {"good": _save(directory / "good.npz", inputs, expected)}, {})


def make_adder(directory: Path) -> GateModel:
    """The external-data adder (a directory) and its ``exact`` and ``off`` regression sets."""
    graph = make_onnx_model(directory / "model" / "adder.onnx", external_data=True, seed=2)
    weights = np.arange(ADDER_WIDTH, dtype=np.float32) + np.float32(2)
    inputs = np.random.default_rng(5).normal(size=(ADDER_SAMPLES, ADDER_WIDTH))
    inputs = inputs.astype(np.float32)
    return GateModel(
        graph.parent,
        {
            "exact": _save(directory / "exact.npz", inputs, inputs + weights),
            "off": _save(directory / "off.npz", inputs, inputs + weights + np.float32(0.5)),
        },
        {},
    )


def make_opset_model(path: Path, opset: int) -> Path:
    """An ``Identity`` model (float [1, 4]) stamped with ``opset``, checked by ``onnx`` itself."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["X"], ["Y"])],
        "airlock-test-opset",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, ADDER_WIDTH])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, ADDER_WIDTH])],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    proto.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(path))
    return path


def site_compatibility(**changes: object) -> Compatibility:
    """A compatibility record this machine meets, with ``changes`` applied."""
    fields: dict[str, object] = {
        "opset": 17,
        "min_onnxruntime": "1.17",
        "providers": ("CPUExecutionProvider",),
        "architectures": (platform.machine(),),
        "min_memory_mb": 64,
    }
    fields.update(changes)
    return Compatibility(**fields)  # type: ignore[arg-type]


def release(
    hub: HubContext,
    name: str,
    version: str,
    model: Path,
    validation: Path | None = None,
    spec: ValidationSpec | None = None,
    compatibility: Compatibility | None = None,
) -> None:
    """Releases ``name@version`` at the hub with a signed validation spec and/or compatibility."""
    extras = {VALIDATION_FILE: (validation, "validation")} if validation else None
    release_model(
        hub,
        name,
        version,
        model,
        release=ReleaseInfo(validation=spec, compatibility=compatibility),
        extras=extras,  # type: ignore[arg-type]
    )


def classification(min_accuracy: str = "0.9", **changes: object) -> ValidationSpec:
    """A classification spec on :data:`VALIDATION_FILE` with a generous latency bound."""
    fields: dict[str, object] = {"max_p95_latency_ms": "1000", "latency_runs": 20}
    fields.update(changes)
    return ValidationSpec(VALIDATION_FILE, "classification", min_accuracy=min_accuracy, **fields)  # type: ignore[arg-type]


def regression(max_error: str = "0.001", **changes: object) -> ValidationSpec:
    """A regression spec on :data:`VALIDATION_FILE` with a generous latency bound."""
    fields: dict[str, object] = {"max_p95_latency_ms": "1000", "latency_runs": 20}
    fields.update(changes)
    return ValidationSpec(VALIDATION_FILE, "regression", max_error=max_error, **fields)  # type: ignore[arg-type]


def ship(
    hub: HubContext,
    clock: FixedClock,
    out_dir: Path,
    assign: tuple[str, ...] = (),
    unassign: tuple[str, ...] = (),
) -> Path:
    """Assigns ``name@version`` refs, unassigns families, exports; returns the bundle."""
    for ref in assign:
        name, version = ref.split("@")
        assign_version(hub, SITE_ID, name, version)
    for name in unassign:
        unassign_version(hub, SITE_ID, name)
    clock.advance(dt.timedelta(seconds=30))
    export(hub, SITE_ID, out_dir)
    return out_dir
