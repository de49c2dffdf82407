"""Whether a model version may run on this node: dependencies, compatibility, health.

Three steps, in the order the agent takes them:

1. :func:`unmet_dependency` — before anything is downloaded: each signed
   ``compatibility.depends`` (``perception >= 1.5``) must be met by a version
   this node has committed; otherwise the agent waits and retries next poll.
2. :func:`check_node_compatibility` — the signed compatibility record against
   this node's runtime (architecture, onnxruntime version, providers, memory,
   opset), reusing the validation gate's checks
   (:func:`airlock.node.runtime._compat.check_compatibility`). A mismatch is a
   refusal, reported with the reason.
3. :func:`health_check` — load the primary file in onnxruntime (the signed
   providers, else the CPU), warm up on the signed validation inputs (or one
   zero input shaped like the model's), and hold the warm-up's 95th
   percentile latency to the signed ``max_p95_latency_ms`` (the latency
   floor). Any failure is a failed health check: the agent falls back.

Failures raise :class:`~airlock.bundles.errors.GateError` whose message is
the reason the node reports and ``figures["failed"]`` names the check.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path

import numpy as np

from airlock.bundles.errors import AirlockError, GateError
from airlock.bundles.release import ReleaseInfo, ValidationSpec, version_tuple
from airlock.node._inference import LoadedModel
from airlock.node.runtime._compat import check_compatibility
from airlock.node.runtime._run import BATCH_ROWS, ORT_DTYPES, load_validation_set
from airlock.node.runtime._runtime import SiteRuntime

MAX_WARM_UP_RUNS = 20
"""Timed single-row runs at most (the signed ``latency_runs`` if fewer)."""
ZERO_INPUT_RUNS = 3
LATENCY_PERCENTILE = 95
CPU = "CPUExecutionProvider"
COMPATIBILITY_CHECKS = frozenset({"onnxruntime", "providers", "architecture", "memory", "opset"})
"""``figures["failed"]`` of a compatibility refusal; any other failure is a failed health check."""
GATE_PREFIX = "validation gate: "


def unmet_dependency(release: ReleaseInfo, committed: Mapping[str, str | None]) -> str | None:
    """The first dependency (``"perception>=1.5"``) the committed versions do not meet, if any.

    Args:
        release: The version's signed record.
        committed: Model family → the version this node has committed (answers with).
    """
    if release.compatibility is None:
        return None
    for dependency in release.compatibility.depends:
        have = committed.get(dependency.model)
        try:
            met = have is not None and version_tuple(have) >= version_tuple(dependency.min_version)
        except AirlockError:
            met = False
        if not met:
            return f"{dependency.model}>={dependency.min_version}"
    return None


def check_node_compatibility(
    ref: str, release: ReleaseInfo, runtime: SiteRuntime, primary: Path
) -> None:
    """Checks the signed compatibility record against this node (dependencies aside).

    Raises:
        GateError: the node does not meet it (``figures["failed"]`` is in
            :data:`COMPATIBILITY_CHECKS`), or the primary file is not a readable
            ONNX model (``"load"``).
    """
    if release.compatibility is None:
        return
    compat = dataclasses.replace(release.compatibility, depends=())
    try:
        check_compatibility(ref, compat, runtime, {}, primary)
    except GateError as exc:
        if exc.figures.get("failed") in COMPATIBILITY_CHECKS:
            raise _node_error(exc) from None
        raise GateError(
            f"health check: {ref} does not load: {exc.message}",
            hint="the version does not load here; the node keeps its active version",
            figures={"failed": "load"},
        ) from None


def health_check(
    model: str,
    version: str,
    slot_dir: Path,
    primary: str,
    release: ReleaseInfo,
    added_latency_ms: float = 0,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[LoadedModel, float]:
    """Loads ``slot_dir/primary`` and warms it up; returns the model and the warm-up p95 (ms).

    Args:
        model: The family.
        version: The version in the slot.
        slot_dir: The slot holding every file of the version under its file name.
        primary: The primary ONNX file's name.
        release: The version's signed record (providers, validation set, latency floor).
        added_latency_ms: Injected latency per run (simulator faults), inside the timing.
        sleep: How to wait for the injected latency.

    Raises:
        GateError: the model does not load, does not run, or is slower than signed.
    """
    ref = f"{model}@{version}"
    loaded = open_model(model, version, slot_dir / primary, release)
    spec = release.validation
    try:
        if spec is not None and (slot_dir / spec.file).is_file():
            rows = _validation_rows(loaded, spec, slot_dir / spec.file, ref)
            runs = min(spec.latency_runs, MAX_WARM_UP_RUNS)
        else:
            rows = [_zero_input(loaded)]
            runs = ZERO_INPUT_RUNS
        latencies = []
        for index in range(runs):
            start = time.perf_counter()
            if added_latency_ms > 0:
                sleep(added_latency_ms / 1000)
            loaded.run(rows[index % len(rows)])
            latencies.append((time.perf_counter() - start) * 1000)
    except GateError:
        raise
    except Exception as exc:
        raise GateError(
            f"health check: {ref} does not run on its warm-up inputs: "
            f"{' '.join(str(exc).split())[:300]}",
            hint="the version does not run here; the node keeps its active version",
            figures={"failed": "warm-up"},
        ) from None
    p95 = _percentile(latencies, LATENCY_PERCENTILE)
    limit = spec.max_p95_latency_ms if spec is not None else None
    if limit is not None and Decimal(repr(p95)) > Decimal(limit):
        raise GateError(
            f"health check: {ref} warm-up p95 latency {p95:.3f} ms is above the signed "
            f"maximum {limit} ms",
            hint="the version is too slow on this node; the node keeps its active version",
            figures={"failed": "latency", "p95_latency_ms": f"{p95:.3f}"},
        )
    return loaded, p95


def open_model(model: str, version: str, graph: Path, release: ReleaseInfo) -> LoadedModel:
    """An onnxruntime session for ``graph`` (external data beside it), ready to serve.

    Raises:
        GateError: onnxruntime cannot load it, or it does not take exactly one input.
    """
    import onnxruntime

    ref = f"{model}@{version}"
    wanted = list(release.compatibility.providers) if release.compatibility else []
    providers = [p for p in wanted if p != CPU] + [CPU]
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    try:
        session = onnxruntime.InferenceSession(str(graph), options, providers=providers)
    except Exception as exc:
        raise GateError(
            f"health check: onnxruntime cannot load {ref}: {' '.join(str(exc).split())[:300]}",
            hint="the version does not load here; the node keeps its active version",
            figures={"failed": "load"},
        ) from None
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise GateError(
            f"health check: {ref} takes {len(inputs)} inputs; the agent serves single-input models",
            hint="ask the hub for a single-input model",
            figures={"failed": "load"},
        )
    feed = inputs[0]
    shape = tuple(d if isinstance(d, int) and d > 0 else None for d in feed.shape or ())
    first = session.get_outputs()[0]
    if release.validation is not None:
        task = release.validation.task
    else:
        integer = first.type.startswith("tensor(int") or first.type.startswith("tensor(uint")
        task = "classification" if integer else "regression"
    return LoadedModel(
        model=model,
        version=version,
        session=session,
        input_name=feed.name,
        input_dtype=ORT_DTYPES.get(feed.type, np.float32),
        input_shape=shape,
        task=task,
    )


def _validation_rows(
    loaded: LoadedModel, spec: ValidationSpec, path: Path, ref: str
) -> list[np.ndarray]:
    """Single-row (or fixed-batch) inputs of the validation set; runs the whole set once."""
    try:
        inputs, _ = load_validation_set(path, spec, ref)
    except GateError as exc:
        raise _node_error(exc, "warm-up") from None
    inputs = np.asarray(inputs).astype(loaded.input_dtype, copy=False)
    fixed = loaded.input_shape[0] if loaded.input_shape else None
    batch = fixed or 1
    rows = [inputs[start : start + batch] for start in range(0, len(inputs), batch)]
    rows = [row for row in rows if len(row) == batch] or rows
    if fixed is None:
        for start in range(0, len(inputs), BATCH_ROWS):
            loaded.run(inputs[start : start + BATCH_ROWS])
    else:
        for row in rows:
            loaded.run(row)
    return rows


def _zero_input(loaded: LoadedModel) -> np.ndarray:
    shape = tuple(d if d is not None else 1 for d in loaded.input_shape)
    return np.zeros(shape, dtype=loaded.input_dtype)


def _percentile(values: list[float], percentile: int) -> float:
    """Nearest-rank percentile (as the validation gate computes it)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(percentile / 100 * len(ordered)))
    return ordered[rank - 1]


def _node_error(exc: GateError, failed: str | None = None) -> GateError:
    """The gate's error, worded for a node (``this site`` → ``this node``)."""
    message = exc.message.removeprefix(GATE_PREFIX).replace("this site", "this node")
    figures = dict(exc.figures)
    if failed:
        figures["failed"] = failed
    return GateError(message, hint=exc.hint.replace("the site", "the node"), figures=figures)
