"""The drift reference: what a model version answered on its own signed validation set.

Fleet drift compares what a version answers in the field with what it
answered when it was validated. The version's signed release record names
its validation set (:class:`~airlock.bundles.release._record.ValidationSpec`); the
hub runs the version's ONNX graph on it with onnxruntime and counts the
answers and their confidence with :mod:`airlock.bundles.metrics._prediction_stats`,
exactly as nodes count live requests (``source="validation-set"``). When
the model cannot run at the hub (an operator the hub's runtime lacks, more
than one input, a fixed batch that does not fit), the expected labels of the
validation set stand in (``source="expected-labels"``, no confidence).

A version without a validation set has no reference (``None``); so has one
whose validation set cannot be read (a warning is logged). The result is
cached in :class:`~airlock.hub.store._fleet_tables.HubReferenceDistribution`,
keyed by (model, version) and the validation file's SHA-256; the row is
added to the caller's session, which commits it.

:func:`js_distance` is the drift measure: the Jensen–Shannon distance.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlmodel import Session

from airlock.bundles.clock import utc_iso
from airlock.bundles.errors import AirlockError
from airlock.bundles.metrics import answer_labels, confidences, count
from airlock.bundles.models import ModelFile, ModelVersion
from airlock.bundles.release import ValidationSpec
from airlock.hub.catalog import _catalog as catalog
from airlock.hub.context._context import HubContext
from airlock.hub.store._fleet_tables import HubReferenceDistribution

log = logging.getLogger(__name__)

VALIDATION_SET = "validation-set"
EXPECTED_LABELS = "expected-labels"
BATCH_ROWS = 256
"""Rows per run for models with a dynamic batch dimension (memory stays bounded)."""
PROVIDERS = ["CPUExecutionProvider"]


class _CannotRun(Exception):
    """The model does not run on its validation set at the hub (fall back to labels)."""


def reference_distribution(
    session: Session, ctx: HubContext, model: str, version: str
) -> HubReferenceDistribution | None:
    """The prediction and confidence distribution ``model@version`` had on its validation set.

    Computed once and cached (the row is added to ``session``; the caller commits).

    Args:
        session: A session of the hub's database.
        ctx: The hub (blob store, temporary directory, clock).
        model: The model family.
        version: The version.

    Returns:
        The reference, or None when the version is not released, has no
        validation set, or its validation set cannot be read.
    """
    released = catalog.find_model(session, model, version)
    spec = released.release.validation if released is not None else None
    if released is None or spec is None:
        return None
    validation = _validation_file(released, spec)
    if validation is None:
        return None
    cached = session.get(HubReferenceDistribution, (model, version))
    if cached is not None and cached.validation_sha256 == validation.sha256:
        return cached
    try:
        figures = _compute(ctx, released, spec)
    except AirlockError as exc:
        log.warning("no drift reference for %s: %s", released.ref, exc.message)
        return None
    except OSError as exc:  # the temporary copy failed: no reference now, try next time
        log.warning("no drift reference for %s: %s", released.ref, exc)
        return None
    row = cached or HubReferenceDistribution(
        model=model, version=version, validation_sha256=validation.sha256, source=""
    )
    row.validation_sha256 = validation.sha256
    row.source, row.predictions, row.confidence, row.rows = figures
    row.computed_at = utc_iso(ctx.clock.now())
    session.add(row)
    return row


def js_distance(p: Mapping[str, int], q: Mapping[str, int]) -> float | None:
    """The Jensen–Shannon distance (base 2, in [0, 1]) of two count distributions.

    0 means the same proportions, 1 means no class in common. None when either
    distribution has no counts.
    """
    p_total, q_total = sum(p.values()), sum(q.values())
    if p_total <= 0 or q_total <= 0:
        return None
    divergence = 0.0
    for key in set(p) | set(q):
        a, b = p.get(key, 0) / p_total, q.get(key, 0) / q_total
        middle = (a + b) / 2
        if a > 0:
            divergence += 0.5 * a * math.log2(a / middle)
        if b > 0:
            divergence += 0.5 * b * math.log2(b / middle)
    return min(1.0, math.sqrt(max(0.0, divergence)))


def _validation_file(released: ModelVersion, spec: ValidationSpec) -> ModelFile | None:
    for item in released.files_of_kind("validation"):
        if item.filename == spec.file:
            return item
    return None


Figures = tuple[str, dict[str, int], dict[str, int], int]
"""(source, predictions, confidence, rows)."""


def _compute(ctx: HubContext, released: ModelVersion, spec: ValidationSpec) -> Figures:
    """Lays the version's files out by name in a temporary directory and measures them.

    Raises:
        AirlockError: a blob is missing or altered, or the validation set is unusable.
    """
    ctx.home.tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="reference-", dir=ctx.home.tmp_dir) as tmp:
        directory = Path(tmp)
        for item in [*released.files_of_kind("model"), *released.files_of_kind("validation")]:
            _place(ctx.blobs.checked_path(item.sha256, item.length), directory / item.filename)
        inputs, expected = _load_set(directory / spec.file, spec, released.ref)
        graph = _primary(released)
        try:
            if graph is None:
                raise _CannotRun("no primary ONNX file")
            outputs = _run(directory / graph, inputs)
        except _CannotRun as exc:
            log.warning("%s does not run at the hub (%s): reference from labels", released.ref, exc)
            answers = answer_labels(expected, spec.task)
            return EXPECTED_LABELS, count(answers), {}, len(answers)
        return (
            VALIDATION_SET,
            count(answer_labels(outputs[0], spec.task)),
            count(confidences(outputs, spec.task)),
            len(inputs),
        )


def _place(blob: Path, target: Path) -> None:
    """A hard link to the blob (a copy across file systems): onnxruntime finds external data."""
    try:
        os.link(blob, target)
    except OSError:
        shutil.copyfile(blob, target)


def _primary(released: ModelVersion) -> str | None:
    models = released.files_of_kind("model")
    for item in models:
        if item.primary:
            return item.filename
    graphs = [f.filename for f in models if f.filename.endswith(".onnx")]
    return graphs[0] if len(graphs) == 1 else None


def _load_set(path: Path, spec: ValidationSpec, ref: str) -> tuple[Any, Any]:
    """The inputs and expected arrays of an ``.npz`` validation set (no pickles).

    Raises:
        AirlockError: not such an archive, arrays missing, or of different lengths.
    """
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as archive:
            inputs, expected = archive[spec.inputs_key], archive[spec.expected_key]
    except (KeyError, OSError, ValueError) as exc:
        raise AirlockError(
            f"the validation set {spec.file} of {ref} is unusable ({exc})",
            hint="the release's validation set must be an .npz with its inputs and expected arrays",
        ) from None
    if inputs.ndim == 0 or expected.ndim == 0 or len(inputs) != len(expected) or not len(inputs):
        raise AirlockError(
            f"the validation set {spec.file} of {ref} has mismatched or empty arrays",
            hint="the release's validation set needs one expected value per input row",
        )
    return inputs, expected


def _run(graph: Path, inputs: Any) -> list[Any]:
    """Every output of the model on ``inputs``, batch by batch, concatenated per output.

    Raises:
        _CannotRun: onnxruntime cannot load or run the model on these inputs.
    """
    import numpy as np
    import onnxruntime
    from onnx import TensorProto, helper

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    try:
        session = onnxruntime.InferenceSession(str(graph), options, providers=PROVIDERS)
        feeds = session.get_inputs()
        if len(feeds) != 1:
            raise _CannotRun(f"it takes {len(feeds)} inputs")
        feed = feeds[0]
        element = feed.type.removeprefix("tensor(").removesuffix(")").upper()
        with contextlib.suppress(AttributeError, KeyError, TypeError, ValueError):
            dtype = helper.tensor_dtype_to_np_dtype(getattr(TensorProto, element))
            inputs = inputs.astype(dtype, copy=False)
        fixed = bool(feed.shape) and isinstance(feed.shape[0], int) and feed.shape[0] > 0
        batch = int(feed.shape[0]) if fixed else BATCH_ROWS
        runs: list[Sequence[Any]] = [
            session.run(None, {feed.name: inputs[start : start + batch]})
            for start in range(0, len(inputs), batch)
        ]
        return [
            np.concatenate([np.asarray(run[i]) for run in runs], axis=0)
            for i in range(len(runs[0]))
        ]
    except _CannotRun:
        raise
    except Exception as exc:
        raise _CannotRun(" ".join(str(exc).split())[:300]) from None
