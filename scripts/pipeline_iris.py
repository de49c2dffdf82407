"""A tiny training pipeline for the demo: iris → scikit-learn → ONNX → MLflow.

Each step is one command, so that the demo can wrap it in ``in-toto-run`` and
the pipeline's functionary key signs a link per step (train, evaluate,
convert); ``register`` logs the converted ONNX file to MLflow (SQLite) and
points an alias at the new version. ``--broken`` trains on shuffled labels:
a model that converts and loads fine but fails the site's accuracy floor.

    python scripts/pipeline_iris.py keygen pipeline.pem pipeline.pub.pem
    python scripts/pipeline_iris.py train data.npz weights.npz [--broken]
    python scripts/pipeline_iris.py evaluate data.npz weights.npz metrics.json
    python scripts/pipeline_iris.py convert weights.npz model.onnx
    python scripts/pipeline_iris.py register model.onnx data.npz metrics.json \
        --tracking-uri sqlite:///mlflow.db --name iris --alias champion --validation validation.npz
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np


def keygen(private: Path, public: Path) -> None:
    """An Ed25519 functionary key for the pipeline (unencrypted: demo only)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    private.chmod(0o600)
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _classifier(weights: Path) -> object:
    from sklearn.linear_model import LogisticRegression

    saved = np.load(weights, allow_pickle=False)
    model = LogisticRegression()
    model.coef_ = saved["coef"]
    model.intercept_ = saved["intercept"]
    model.classes_ = saved["classes"]
    return model


def train(data: Path, weights: Path, broken: bool) -> None:
    """Fits a logistic regression on iris; writes the data split and the weights."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    features = features.astype(np.float32)
    rng = np.random.default_rng(7)
    order = rng.permutation(len(labels))
    test, fit = order[:30], order[30:]
    fit_labels = rng.permutation(labels[fit]) if broken else labels[fit]
    model = LogisticRegression(max_iter=1000).fit(features[fit], fit_labels)
    np.savez(
        data, x_fit=features[fit], y_fit=labels[fit], x_test=features[test], y_test=labels[test]
    )
    np.savez(weights, coef=model.coef_, intercept=model.intercept_, classes=model.classes_)


def evaluate(data: Path, weights: Path, metrics: Path) -> None:
    """Accuracy on the held-out split."""
    split = np.load(data, allow_pickle=False)
    model = _classifier(weights)
    accuracy = float((model.predict(split["x_test"]) == split["y_test"]).mean())  # type: ignore[attr-defined]
    metrics.write_text(json.dumps({"accuracy": round(accuracy, 4)}))


def convert(weights: Path, onnx_file: Path) -> None:
    """scikit-learn → ONNX (opset 17, plain arrays out)."""
    import onnx
    from skl2onnx import to_onnx

    model = _classifier(weights)
    proto = to_onnx(
        model,
        np.zeros((1, 4), dtype=np.float32),
        options={id(model): {"zipmap": False}},
        target_opset=17,
    )
    onnx.save(proto, str(onnx_file))


def register(args: argparse.Namespace) -> None:
    """Logs the ONNX file to MLflow, registers it and sets the alias; writes the validation set."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow
    import onnx
    from mlflow import MlflowClient

    split = np.load(args.data, allow_pickle=False)
    np.savez(args.validation, inputs=split["x_test"], expected=split["y_test"].astype(np.int64))
    mlflow.set_tracking_uri(args.tracking_uri)
    mlflow.set_experiment("iris")
    with mlflow.start_run():
        mlflow.log_params({"model": "LogisticRegression", "max_iter": 1000})
        mlflow.log_metrics(json.loads(Path(args.metrics).read_text()))
        from mlflow.data.numpy_dataset import from_numpy

        dataset = from_numpy(split["x_fit"], targets=split["y_fit"], name="iris")
        mlflow.log_input(dataset, context="training")
        info = mlflow.onnx.log_model(
            onnx.load(str(args.onnx)),
            name="model",
            registered_model_name=args.name,
            pip_requirements=["onnxruntime"],
        )
    version = str(info.registered_model_version)
    MlflowClient().set_registered_model_alias(args.name, args.alias, version)
    print(f"registered {args.name} version {version} as @{args.alias}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    steps = parser.add_subparsers(dest="step", required=True)
    p = steps.add_parser("keygen")
    p.add_argument("private", type=Path)
    p.add_argument("public", type=Path)
    p = steps.add_parser("train")
    p.add_argument("data", type=Path)
    p.add_argument("weights", type=Path)
    p.add_argument("--broken", action="store_true")
    p = steps.add_parser("evaluate")
    p.add_argument("data", type=Path)
    p.add_argument("weights", type=Path)
    p.add_argument("metrics", type=Path)
    p = steps.add_parser("convert")
    p.add_argument("weights", type=Path)
    p.add_argument("onnx", type=Path)
    p = steps.add_parser("register")
    p.add_argument("onnx", type=Path)
    p.add_argument("data", type=Path)
    p.add_argument("metrics", type=Path)
    p.add_argument("--tracking-uri", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--alias", required=True)
    p.add_argument("--validation", type=Path, required=True)
    args = parser.parse_args()
    if args.step == "keygen":
        keygen(args.private, args.public)
    elif args.step == "train":
        train(args.data, args.weights, args.broken)
    elif args.step == "evaluate":
        evaluate(args.data, args.weights, args.metrics)
    elif args.step == "convert":
        convert(args.weights, args.onnx)
    else:
        register(args)


if __name__ == "__main__":
    main()
