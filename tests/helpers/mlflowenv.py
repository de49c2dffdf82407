"""A real MLflow registry (SQLite + local artifacts) holding real ONNX models, for intake tests.

:func:`make_registry` trains a scikit-learn logistic regression on iris,
converts it with skl2onnx (opset 17, ``zipmap`` off: plain arrays out), and
logs and registers it with params, metrics, a signature and a training
dataset (``mlflow.log_input``, so the run has a data digest). Logging is
slow (``import mlflow`` alone takes seconds): build one registry per session
and let tests that change it use their own aliases or model names.

The fluent MLflow API keeps its tracking URI in process-wide state (and in
env ``MLFLOW_TRACKING_URI``); :func:`tracking` sets it for one block and puts
both back, so the code under test only ever sees the URI it is given.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import mlflow  # telemetry is switched off first
import mlflow.onnx
from mlflow import MlflowClient

IRIS = "iris"
CHAMPION = "champion"
CHALLENGER = "challenger"
EXTERNAL = "big-adder"
PIP_REQUIREMENTS = ["onnxruntime"]  # explicit: skips seconds of requirement inference


@dataclass
class Registry:
    """A SQLite MLflow store with its artifact root, and what was registered in it."""

    root: Path
    tracking_uri: str
    artifact_root: str
    validation_set: Path
    versions: dict[str, Any] = field(default_factory=dict)

    def client(self) -> MlflowClient:
        """A client bound to this store (tracking and registry)."""
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        """Points ``name@alias`` at ``version``."""
        self.client().set_registered_model_alias(name, alias, version)


@contextlib.contextmanager
def tracking(uri: str) -> Iterator[None]:
    """Sets the fluent API's tracking URI for one block, then restores it and the env."""
    saved = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
        if saved is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = saved


def iris_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Iris as float32 features and int64 labels: (x_fit, y_fit, x_test, y_test)."""
    from sklearn.datasets import load_iris

    features, labels = load_iris(return_X_y=True)
    order = np.random.default_rng(7).permutation(len(labels))
    test, fit = order[:30], order[30:]
    x, y = features.astype(np.float32), labels.astype(np.int64)
    return x[fit], y[fit], x[test], y[test]


def train_iris(c: float) -> tuple[Any, float]:
    """A logistic regression on iris as ONNX (opset 17, plain arrays), and its accuracy."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    x_fit, y_fit, x_test, y_test = iris_split()
    model = LogisticRegression(C=c, max_iter=1000).fit(x_fit, y_fit)
    proto = to_onnx(model, x_fit[:1], options={id(model): {"zipmap": False}}, target_opset=17)
    return proto, float((model.predict(x_test) == y_test).mean())


def write_validation_set(path: Path) -> Path:
    """The iris test split as ``inputs`` (float32) and ``expected`` (int64 labels)."""
    _, _, x_test, y_test = iris_split()
    np.savez(path, inputs=x_test, expected=y_test)
    return path


def log_iris(registry: Registry, c: float, sha256_digest: bool) -> str:
    """Trains, logs and registers one iris version; returns its version number.

    Args:
        registry: Where to log.
        c: The regularisation parameter (different values give different bytes).
        sha256_digest: Also tag the run with the SHA-256 of the training data
            (``airlock.training_data_sha256``): MLflow's own dataset digest is
            a short hash (it refuses digests longer than 36 characters).
    """
    from mlflow.models import infer_signature

    proto, accuracy = train_iris(c)
    x_fit, y_fit, _, _ = iris_split()
    digest = hashlib.sha256(x_fit.tobytes() + y_fit.tobytes()).hexdigest()
    with tracking(registry.tracking_uri):
        mlflow.set_experiment(IRIS)
        with mlflow.start_run():
            mlflow.log_params({"C": c, "max_iter": 1000, "solver": "lbfgs"})
            mlflow.log_metrics({"accuracy": accuracy, "train_rows": len(y_fit)})
            mlflow.set_tag("team", "vision")
            if sha256_digest:
                mlflow.set_tag("airlock.training_data_sha256", digest)
            dataset = mlflow.data.from_numpy(x_fit, targets=y_fit, name="iris-fit")
            mlflow.log_input(dataset, context="training")
            info = mlflow.onnx.log_model(
                proto,
                name="model",
                registered_model_name=IRIS,
                pip_requirements=PIP_REQUIREMENTS,
                signature=infer_signature(x_fit, y_fit),
            )
    version = str(info.registered_model_version)
    registry.versions[f"{IRIS}/{version}"] = {
        "c": c,
        "accuracy": accuracy,
        "sha256": digest,
        "mlflow_digest": dataset.digest,
    }
    return version


def log_external_data_model(registry: Registry, name: str = EXTERNAL) -> str:
    """Logs a model whose weights MLflow saves as an external-data file; returns its version."""
    import onnx

    from helpers.onnx_models import make_onnx_model

    path = make_onnx_model(registry.root / "src" / "adder.onnx", width=2048, seed=5)
    with tracking(registry.tracking_uri):
        mlflow.set_experiment("adders")
        with mlflow.start_run():
            mlflow.log_param("width", 2048)
            info = mlflow.onnx.log_model(
                onnx.load(str(path)),
                name="model",
                registered_model_name=name,
                pip_requirements=PIP_REQUIREMENTS,
                save_as_external_data=True,
            )
    return str(info.registered_model_version)


def make_registry(root: Path) -> Registry:
    """A store with ``iris`` versions 1 (``@challenger``) and 2 (``@champion``, its run
    tagged with the training data's SHA-256), ``big-adder`` version 1 (external data),
    and a validation set."""
    root.mkdir(parents=True, exist_ok=True)
    registry = Registry(
        root=root,
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        artifact_root=(root / "artifacts").as_uri(),
        validation_set=write_validation_set(root / "validation.npz"),
    )
    client = registry.client()
    for experiment in (IRIS, "adders"):
        location = f"{registry.artifact_root}/{experiment}"
        client.create_experiment(experiment, artifact_location=location)
    first = log_iris(registry, c=1.0, sha256_digest=False)
    second = log_iris(registry, c=0.05, sha256_digest=True)
    registry.set_alias(IRIS, CHALLENGER, first)
    registry.set_alias(IRIS, CHAMPION, second)
    log_external_data_model(registry)
    return registry
