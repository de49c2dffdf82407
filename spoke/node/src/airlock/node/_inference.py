"""Serving inference on a node: which model version answers, and what it is measured as.

Per model family the :class:`Predictor` holds the stable version and, during
a rollout, the candidate with its traffic mode (from the node's
:class:`~airlock.bundles.protocol.NodeModel`):

- ``all``: the candidate answers every request;
- ``split``: the candidate answers ``split_percent`` % of requests (drawn
  with an injectable :class:`random.Random`), the stable version the rest;
- ``shadow``: the stable version answers; the candidate runs on the same
  input and its answers are compared row by row (label equality for
  classification, ``allclose`` for regression) — ``shadow_compared`` and
  ``shadow_disagreed`` count rows.

Every run is recorded per model version and role (:mod:`.recorder`): a
request, an error when it raised, its latency measured around the session
run, its answers (class labels, or a coarse bucket of the first value for
regression) and their confidence (:mod:`airlock.bundles.metrics._prediction_stats`).
:class:`FaultSpec` injects faults per ``model@version`` for the simulator:
added latency really sleeps inside the measured time, errors raise, wrong
answers replace the label with another class. Thread-safe.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from airlock.bundles.errors import AirlockError, NotFoundError, UsageError
from airlock.bundles.metrics import answer_labels, confidences, labels, rows
from airlock.node._recorder import Recorder


class NotServingError(AirlockError):
    """The family is assigned to this node but no version is committed yet (HTTP 503)."""


class InferenceFailedError(AirlockError):
    """The model version raised while answering (counted as an error; HTTP 500)."""


@dataclass(frozen=True)
class FaultSpec:
    """Faults injected into one model version (simulator only)."""

    latency_ms: float = 0
    error_rate: float = 0
    wrong_rate: float = 0


@dataclass(frozen=True)
class LoadedModel:
    """A model version loaded in an onnxruntime session, ready to answer."""

    model: str
    version: str
    session: Any
    input_name: str
    input_dtype: Any
    input_shape: tuple[int | None, ...]
    task: str
    """``classification`` (answers are class labels) or ``regression``."""

    @property
    def ref(self) -> str:
        """``model@version``."""
        return f"{self.model}@{self.version}"

    def run(self, inputs: np.ndarray) -> list[np.ndarray]:
        """Runs the session on ``inputs`` (already checked and cast)."""
        return [np.asarray(out) for out in self.session.run(None, {self.input_name: inputs})]

    def prepare(self, inputs: Any) -> np.ndarray:
        """``inputs`` as an array of the model's type and rank.

        Raises:
            UsageError: the shape does not fit the model's input.
        """
        try:
            array = np.asarray(inputs, dtype=self.input_dtype)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"inputs for {self.model} are not numeric arrays: {exc}") from None
        if array.ndim != len(self.input_shape) or any(
            want is not None and want != got
            for want, got in zip(self.input_shape, array.shape, strict=True)
        ):
            raise UsageError(
                f"{self.model} takes inputs of shape "
                f"{['N' if d is None else d for d in self.input_shape]}, not {list(array.shape)}"
            )
        return array


@dataclass(frozen=True)
class Route:
    """How one family answers now."""

    stable: LoadedModel | None
    candidate: LoadedModel | None = None
    traffic: str = "all"
    split_percent: int = 0


@dataclass(frozen=True)
class PredictResult:
    """One answer: the outputs by name, and which version (and role) gave them."""

    model: str
    version: str
    role: str
    outputs: dict[str, np.ndarray]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the predict endpoint's response)."""
        return {
            "model": self.model,
            "version": self.version,
            "role": self.role,
            "outputs": {name: value.tolist() for name, value in self.outputs.items()},
        }


class Predictor:
    """Routes each request of a family to its stable or candidate version and records it."""

    def __init__(
        self,
        recorder: Recorder,
        rng: random.Random | None = None,
        faults: Mapping[str, FaultSpec] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.recorder = recorder
        self._rng = rng or random.Random()  # noqa: S311 - traffic split, not security
        self._faults = dict(faults or {})
        self._sleep = sleep
        self._routes: dict[str, Route] = {}
        self._lock = threading.Lock()

    def set_fault(self, ref: str, fault: FaultSpec | None) -> None:
        """Injects (or with None, clears) a fault for ``model@version``."""
        with self._lock:
            if fault is None:
                self._faults.pop(ref, None)
            else:
                self._faults[ref] = fault

    def fault(self, ref: str) -> FaultSpec:
        """The fault injected into ``model@version`` (none by default)."""
        with self._lock:
            return self._faults.get(ref, FaultSpec())

    def serve(self, model: str, route: Route) -> None:
        """Sets how ``model`` answers from now on (requests under way finish as they were)."""
        with self._lock:
            self._routes[model] = route

    def stop(self, model: str) -> None:
        """Stops serving ``model`` (unknown from now on)."""
        with self._lock:
            self._routes.pop(model, None)

    def route(self, model: str) -> Route | None:
        """How ``model`` answers now, if it is served."""
        with self._lock:
            return self._routes.get(model)

    def models(self) -> dict[str, Route]:
        """Every family served, and its route."""
        with self._lock:
            return dict(self._routes)

    def predict(self, model: str, inputs: Any) -> PredictResult:
        """Answers one request.

        Raises:
            NotFoundError: ``model`` is not a family this node serves.
            NotServingError: nothing is committed for it yet.
            UsageError: the inputs do not fit the model.
            InferenceFailedError: the answering version raised.
        """
        with self._lock:
            route = self._routes.get(model)
            draw = self._rng.random() * 100
        if route is None:
            raise NotFoundError(f"this node does not serve model {model!r}")
        to_candidate = route.candidate is not None and (
            route.stable is None
            or route.traffic == "all"
            or (route.traffic == "split" and draw < route.split_percent)
        )
        answering = route.candidate if to_candidate else route.stable
        role = "candidate" if to_candidate else "stable"
        if answering is None:
            raise NotServingError(
                f"model {model!r} has no committed version on this node yet",
                hint="wait for the node to install and health-check its assigned version",
            )
        array = answering.prepare(inputs)
        outputs = self._run(answering, role, array)
        shadow = route.candidate if route.traffic == "shadow" and role == "stable" else None
        if shadow is not None:
            try:
                shadow_outputs = self._run(shadow, "candidate", shadow.prepare(array))
            except AirlockError:
                pass
            else:
                self._compare(shadow, outputs[0], shadow_outputs[0])
        names = [o.name for o in answering.session.get_outputs()]
        return PredictResult(
            model, answering.version, role, dict(zip(names, outputs, strict=False))
        )

    def _run(self, loaded: LoadedModel, role: str, array: np.ndarray) -> list[np.ndarray]:
        fault = self.fault(loaded.ref)
        with self._lock:
            fails = fault.error_rate > 0 and self._rng.random() < fault.error_rate
        start = time.perf_counter()
        try:
            if fault.latency_ms > 0:
                self._sleep(fault.latency_ms / 1000)
            if fails:
                raise RuntimeError("injected fault")
            outputs = loaded.run(array)
        except Exception as exc:
            elapsed = (time.perf_counter() - start) * 1000
            self.recorder.record(loaded.model, loaded.version, role, elapsed, error=True)
            raise InferenceFailedError(
                f"{loaded.ref} failed to answer: {' '.join(str(exc).split())[:300]}"
            ) from None
        elapsed = (time.perf_counter() - start) * 1000
        if fault.wrong_rate > 0:
            outputs = self._wrong(outputs, fault.wrong_rate, loaded.task)
        answers = answer_labels(outputs[0], loaded.task)
        self.recorder.record(
            loaded.model,
            loaded.version,
            role,
            elapsed,
            predictions=answers,
            confidence=confidences(outputs, loaded.task),
        )
        return outputs

    def _compare(self, candidate: LoadedModel, stable: np.ndarray, shadow: np.ndarray) -> None:
        compared = len(stable) if stable.ndim else 1
        if candidate.task == "classification":
            same = [a == b for a, b in zip(labels(stable), labels(shadow), strict=False)]
        else:
            left, right = rows(stable), rows(shadow)
            same = [
                a.shape == b.shape and bool(np.allclose(a, b))
                for a, b in zip(left, right, strict=False)
            ]
        disagreed = compared - sum(same)
        self.recorder.shadow(candidate.model, candidate.version, compared, disagreed)

    def _wrong(self, outputs: list[np.ndarray], rate: float, task: str) -> list[np.ndarray]:
        first = outputs[0].copy()
        with self._lock:
            hits = [self._rng.random() < rate for _ in range(len(first) if first.ndim else 1)]
            offsets = [self._rng.randrange(1, 1 << 16) for _ in hits]
        if first.ndim == 0:
            return outputs
        classes = _class_count(outputs)
        for row, hit in enumerate(hits):
            if not hit:
                continue
            if task != "classification":
                value = first[row]
                first[row] = value + 1 + np.abs(value)
            elif first.ndim == 2 and first.shape[1] > 1:
                first[row] = np.roll(first[row], 1)
            elif classes:
                label = int(first[row])
                first[row] = (label + 1 + offsets[row] % (classes - 1)) % classes
            else:
                first[row] = first[row] + 1
        return [first, *outputs[1:]]


def _class_count(outputs: list[np.ndarray]) -> int | None:
    for out in outputs[1:]:
        if out.ndim == 2 and out.shape[1] > 1:
            return int(out.shape[1])
    return None
