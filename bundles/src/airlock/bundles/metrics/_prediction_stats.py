"""What the prediction and confidence distributions count, the same on a node and at the hub.

A node counts, per request row, the answer of the model version that served
it and how confident it was; the hub computes the same figures for a version's
validation set, as the reference that fleet drift is measured against. Both
sides must bucket identically, so the rules live here:

- **answer**: a classifier's class label (the label output, or the arg-max of
  a ``[N, C]`` score output); a regressor's first value rounded down to one
  significant digit (:func:`value_bucket`);
- **confidence**: a classifier's highest class probability per row, in ten
  equal buckets named by their lower edge (``"0.0"`` … ``"0.9"``); regressors
  and classifiers without probabilities report none.

Arrays are duck-typed NumPy arrays (``ndim``, ``shape``, ``reshape``,
``argmax``, ``max``, ``item``): this package does not depend on NumPy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

CONFIDENCE_BUCKETS = 10


def labels(first_output: Any) -> list[str]:
    """Class labels of a classifier's first output (labels [N], or arg-max of scores [N, C])."""
    if first_output.ndim == 2 and first_output.shape[1] > 1:
        return [str(int(v)) for v in first_output.argmax(axis=1)]
    return [str(v.item()) for v in first_output.reshape(-1)]


def answer_labels(first_output: Any, task: str) -> list[str]:
    """What the prediction distribution counts: labels, or the bucket of each row's first value."""
    if task == "classification":
        return labels(first_output)
    return [value_bucket(float(row.reshape(-1)[0])) for row in rows(first_output) if row.size]


def value_bucket(value: float) -> str:
    """A coarse bucket of a regression value: rounded down to one significant digit."""
    if not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if value == 0:
        return "0"
    exponent = math.floor(math.log10(abs(value)))
    step = 10.0**exponent
    bucket = math.floor(value / step) * step
    return f"{bucket:.{max(0, -exponent)}f}"


def rows(array: Any) -> list[Any]:
    """The rows of an output, each flattened (a scalar output is one row)."""
    if array.ndim == 0:
        return [array.reshape(1)]
    return [row.reshape(-1) for row in array]


def probabilities(outputs: Sequence[Any], task: str) -> Any | None:
    """The ``[N, C]`` class-probability output of a classifier, or None when it has none.

    That is the first 2-D output with more than one column after the label
    output (skl2onnx's ``probabilities``), or the first output itself when it
    is already ``[N, C]`` scores that look like probabilities (each in 0..1).
    """
    if task != "classification":
        return None
    for out in outputs[1:]:
        if getattr(out, "ndim", 0) == 2 and out.shape[1] > 1:
            return out
    first = outputs[0] if outputs else None
    if (
        first is not None
        and first.ndim == 2
        and first.shape[1] > 1
        and float(first.min()) >= 0.0
        and float(first.max()) <= 1.0
    ):
        return first
    return None


def confidence_bucket(confidence: float) -> str:
    """The bucket of a confidence in 0..1: its lower edge with one decimal (1.0 → "0.9")."""
    if not math.isfinite(confidence):
        confidence = 0.0
    index = min(CONFIDENCE_BUCKETS - 1, max(0, math.floor(confidence * CONFIDENCE_BUCKETS)))
    return f"{index / CONFIDENCE_BUCKETS:.1f}"


def confidences(outputs: Sequence[Any], task: str) -> list[str]:
    """The confidence bucket of every row (empty when the model reports no probabilities)."""
    probs = probabilities(outputs, task)
    if probs is None:
        return []
    return [confidence_bucket(float(row.max())) for row in probs]


def count(values: Iterable[str]) -> dict[str, int]:
    """Value → how many times it occurs."""
    out: dict[str, int] = {}
    for value in values:
        out[value] = out.get(value, 0) + 1
    return out
