"""Running a model on its signed validation set with onnxruntime: the gate's measurements.

:func:`open_session` loads a graph from a directory where every model file
of the version sits under its target file name (external data is found next
to the graph) — the gate loads every ONNX file of every version this way,
signed validation set or not; :func:`measure` runs the validation set and times
single-row inference. Thresholds are compared by :mod:`airlock.spoke.gate._gate`;
here we only measure, and raise :class:`GateError` when the model or its
validation set cannot be used at all.
"""

from __future__ import annotations

import math
import os
import re
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from airlock.bundles.errors import GateError
from airlock.bundles.release import ValidationSpec

PROVIDERS = ["CPUExecutionProvider"]
"""The gate runs on the CPU: every site has one, and results are comparable."""
LATENCY_PERCENTILE = 95
WARM_UP_RUNS = 1
BATCH_ROWS = 256
"""Rows per run for models with a dynamic batch dimension (memory stays bounded)."""

ORT_DTYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int16)": np.int16,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}
"""onnxruntime's input type names → NumPy dtypes (validation inputs are cast to the model's)."""


@dataclass(frozen=True)
class Measurement:
    """What the gate measured on one validation set."""

    samples: int
    correct: int | None
    max_abs_error: float | None
    latency_ns: tuple[int, ...]

    @property
    def accuracy(self) -> Decimal | None:
        """Exact fraction of correct predictions (classification)."""
        if self.correct is None:
            return None
        return Decimal(self.correct) / Decimal(self.samples)

    @property
    def p95_latency_ms(self) -> Decimal:
        """95th percentile (nearest rank) of the single-row latencies, in milliseconds."""
        ordered = sorted(self.latency_ns)
        rank = max(1, math.ceil(LATENCY_PERCENTILE / 100 * len(ordered)))
        return Decimal(ordered[rank - 1]) / Decimal(1_000_000)


def runtime_version() -> str:
    """The version of the onnxruntime the gate loads models in."""
    import onnxruntime

    return str(onnxruntime.__version__)


_SOURCE_LOCATION = re.compile(r"/?onnxruntime_src/\S+:\d+ [^()]*\([^()]*\)(?: const)? ?")


def load_reason(exc: BaseException, model_dir: Path) -> str:
    """onnxruntime's reason, without its status prefix, C++ source location and scratch path."""
    reason = " ".join(str(exc).split())
    reason = reason.replace(f"{model_dir}{os.sep}", "")
    reason = " ".join(_SOURCE_LOCATION.sub(" ", reason).split())
    reason = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", reason)
    if "ONNX Runtime only" in reason:
        reason = reason[reason.index("ONNX Runtime only") :]
    return reason[:400]


def open_session(model_dir: Path, graph: str, ref: str, version: str, optimize: bool = True) -> Any:
    """An onnxruntime session for ``model_dir/graph`` on the CPU.

    Creating the session is the load check: onnxruntime refuses an IR version,
    opset or operator it does not support, and external data it cannot read.

    Args:
        model_dir: The directory holding the version's model files under their names.
        graph: The ONNX file to load.
        ref: ``name@version``, for messages.
        version: The onnxruntime version, for messages.
        optimize: Apply graph optimisations (for a session that will run);
            without, creating the session costs less for a big model.

    Raises:
        GateError: onnxruntime cannot load the model; ``figures`` name the file
            and onnxruntime's reason.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    if not optimize:
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        return onnxruntime.InferenceSession(str(model_dir / graph), options, providers=PROVIDERS)
    except Exception as exc:
        reason = load_reason(exc, model_dir)
        raise GateError(
            f"validation gate: onnxruntime {version} cannot load {ref} ({graph}): {reason}",
            hint="this site's runtime cannot run the model (IR version, opset or operators "
            "newer than it supports, or broken model data): do not use this version; ask "
            f"the hub for a build for onnxruntime {version}, or upgrade the site's onnxruntime",
            figures={
                "failed": "load",
                "load": {"onnxruntime": version, "file": graph, "reason": reason},
            },
        ) from None


def load_validation_set(path: Path, spec: ValidationSpec, ref: str) -> tuple[Any, Any]:
    """The inputs and expected arrays of a validation set (``.npz``, no pickles).

    Raises:
        GateError: not an ``.npz`` archive, arrays missing, or their lengths differ.
    """
    hint = "the hub signed an unusable validation set; report it to the release engineer"
    try:
        with np.load(path, allow_pickle=False) as archive:
            inputs, expected = archive[spec.inputs_key], archive[spec.expected_key]
    except KeyError as exc:
        raise GateError(
            f"validation gate: the validation set {spec.file} of {ref} has no array {exc}",
            hint=hint,
            figures={"failed": "validation set"},
        ) from None
    except (OSError, ValueError) as exc:
        raise GateError(
            f"validation gate: the validation set {spec.file} of {ref} is not a NumPy "
            f".npz archive without pickles ({exc})",
            hint=hint,
            figures={"failed": "validation set"},
        ) from None
    if inputs.ndim == 0 or len(inputs) == 0 or len(inputs) != len(expected):
        raise GateError(
            f"validation gate: the validation set {spec.file} of {ref} has "
            f"{len(inputs) if inputs.ndim else 0} inputs and "
            f"{len(expected) if expected.ndim else 0} expected values",
            hint=hint,
            figures={"failed": "validation set"},
        )
    return inputs, expected


def measure(session: Any, spec: ValidationSpec, validation: Path, ref: str) -> Measurement:
    """Runs the validation set through ``session`` and times single-row inference.

    Latency is the time of one ``run`` with one row (or one batch, when the
    model's batch dimension is fixed), after a warm-up run.

    The model's first output is read: for classification, class labels if it
    is one-dimensional, else the arg-max of its scores; for regression, the
    values, compared element by element with the expected ones.

    Raises:
        GateError: the set does not fit the model (inputs, shapes, types).
    """
    inputs, expected = load_validation_set(validation, spec, ref)
    model_inputs = session.get_inputs()
    if len(model_inputs) != 1:
        raise GateError(
            f"validation gate: {ref} takes {len(model_inputs)} inputs; "
            "the gate feeds exactly one (the validation set's inputs array)",
            hint="ask the hub for a single-input model or a gate-compatible validation set",
            figures={"failed": "validation set"},
        )
    feed = model_inputs[0]
    dtype = ORT_DTYPES.get(feed.type)
    if dtype is not None:
        inputs = inputs.astype(dtype, copy=False)
    fixed = bool(feed.shape) and isinstance(feed.shape[0], int) and feed.shape[0] > 0
    batch = feed.shape[0] if fixed else BATCH_ROWS
    row = inputs[:batch] if fixed else inputs[:1]
    try:
        outputs = [
            np.asarray(session.run(None, {feed.name: inputs[start : start + batch]})[0])
            for start in range(0, len(inputs), batch)
        ]
        predictions = np.concatenate(outputs, axis=0)
        for _ in range(WARM_UP_RUNS):
            session.run(None, {feed.name: row})
        latency = []
        for _ in range(spec.latency_runs):
            start_ns = time.perf_counter_ns()
            session.run(None, {feed.name: row})
            latency.append(time.perf_counter_ns() - start_ns)
    except Exception as exc:
        raise GateError(
            f"validation gate: {ref} does not run on its validation set {spec.file}: "
            f"{' '.join(str(exc).split())[:300]}",
            hint="the validation set does not fit the model; report it to the release engineer",
            figures={"failed": "validation set"},
        ) from None
    if spec.task == "classification":
        correct = _correct(predictions, expected, ref, spec.file)
        return Measurement(len(inputs), correct, None, tuple(latency))
    return Measurement(
        len(inputs), None, _max_abs_error(predictions, expected, ref, spec.file), tuple(latency)
    )


def _correct(predictions: Any, expected: Any, ref: str, file: str) -> int:
    if predictions.ndim == 2 and predictions.shape[1] > 1:
        labels = predictions.argmax(axis=1)
    elif predictions.ndim == 1 or (predictions.ndim == 2 and predictions.shape[1] == 1):
        labels = predictions.reshape(-1)
    else:
        raise GateError(
            f"validation gate: cannot read classes from {ref}'s first output "
            f"(shape {list(predictions.shape)})",
            hint="classification expects labels [N] or scores [N, classes] as the first output",
            figures={"failed": "validation set"},
        )
    expected = expected.reshape(-1)
    if labels.shape != expected.shape:
        raise GateError(
            f"validation gate: {ref} gave {labels.shape[0]} labels for {expected.shape[0]} "
            f"expected in {file}",
            hint="the validation set does not fit the model; report it to the release engineer",
            figures={"failed": "validation set"},
        )
    return int((labels == expected).sum())


def _max_abs_error(predictions: Any, expected: Any, ref: str, file: str) -> float:
    if predictions.size != expected.size:
        raise GateError(
            f"validation gate: {ref} gave {predictions.size} values for {expected.size} "
            f"expected in {file}",
            hint="the validation set does not fit the model; report it to the release engineer",
            figures={"failed": "validation set"},
        )
    difference = np.abs(
        predictions.reshape(-1).astype(np.float64) - expected.reshape(-1).astype(np.float64)
    )
    return float(difference.max()) if difference.size else 0.0
