"""What the hub signs about a model version besides its bytes: lineage, validation, compatibility.

The record travels in the custom field of the version's primary ONNX target
(``custom.airlock.release``), so the Image repository signs it and the spoke
reads it only from verified metadata::

    {"lineage":       {source, registered_model, registered_version, alias, run_id,
                       model_id, params, metrics, tags, signature, training_data_sha256},
     "validation":    {file, inputs_key, expected_key, task, min_accuracy, max_error,
                       max_p95_latency_ms, latency_runs},
     "compatibility": {opset, min_onnxruntime, providers, architectures,
                       min_memory_mb, depends: [{model, min_version}]}}

Every part is optional. TUF signs canonical JSON, which has no floating-point
numbers, so fractional values (metrics, thresholds) are decimal strings —
:func:`decimal` parses them. Other files of a version carry a ``kind``:
``model`` (the graph and its external data), ``validation`` (the validation
set, e.g. ``validation.npz``), ``layout`` and ``link`` (in-toto attestations).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from airlock.bundles.errors import UsageError

FILE_KINDS = ("model", "validation", "layout", "link")
TASKS = ("classification", "regression")
DEFAULT_INPUTS_KEY = "inputs"
DEFAULT_EXPECTED_KEY = "expected"
DEFAULT_LATENCY_RUNS = 50
VERSION_PATTERN = re.compile(r"[0-9]+(\.[0-9]+)*")


def decimal(value: Any, what: str) -> Decimal:
    """Parses a decimal string (or int) from signed metadata.

    Raises:
        UsageError: not a finite decimal number.
    """
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise UsageError(f"{what} is not a decimal number: {value!r}") from None
    if not number.is_finite():
        raise UsageError(f"{what} is not a finite number: {value!r}")
    return number


def _decimal_text(value: Any, what: str) -> str | None:
    return None if value is None else str(decimal(value, what))


def version_tuple(text: str) -> tuple[int, ...]:
    """``"1.5.2"`` → ``(1, 5, 2)`` for comparing model versions and runtime versions.

    Raises:
        UsageError: not dot-separated numbers.
    """
    if not VERSION_PATTERN.fullmatch(text):
        raise UsageError(
            f"version {text!r} is not dot-separated numbers",
            hint="dependencies and runtime minimums compare versions like 1.5 or 1.17.3",
        )
    return tuple(int(part) for part in text.split("."))


@dataclass(frozen=True)
class Lineage:
    """Where a model version came from (MLflow registry and run)."""

    source: str
    registered_model: str = ""
    registered_version: str = ""
    alias: str = ""
    run_id: str = ""
    model_id: str = ""
    params: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    signature: Mapping[str, Any] | None = None
    training_data_sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (and canonical-JSON-safe) form."""
        return {
            "source": self.source,
            "registered_model": self.registered_model,
            "registered_version": self.registered_version,
            "alias": self.alias,
            "run_id": self.run_id,
            "model_id": self.model_id,
            "params": {str(k): str(v) for k, v in self.params.items()},
            "metrics": {str(k): str(decimal(v, f"metric {k}")) for k, v in self.metrics.items()},
            "tags": {str(k): str(v) for k, v in self.tags.items()},
            "signature": dict(self.signature) if self.signature is not None else None,
            "training_data_sha256": self.training_data_sha256,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Lineage:
        """Parses :meth:`to_dict` output."""
        return cls(
            source=str(data["source"]),
            registered_model=str(data.get("registered_model", "")),
            registered_version=str(data.get("registered_version", "")),
            alias=str(data.get("alias", "")),
            run_id=str(data.get("run_id", "")),
            model_id=str(data.get("model_id", "")),
            params=dict(data.get("params") or {}),
            metrics=dict(data.get("metrics") or {}),
            tags=dict(data.get("tags") or {}),
            signature=data.get("signature"),
            training_data_sha256=data.get("training_data_sha256"),
        )


@dataclass(frozen=True)
class ValidationSpec:
    """The signed validation set of a version and the thresholds it must meet at the site.

    ``file`` names a file of kind ``validation`` in the same version (a NumPy
    ``.npz`` archive with arrays ``inputs_key`` and ``expected_key``).
    Classification compares the arg-max (or the label output) with the
    expected labels (``min_accuracy``); regression compares values
    (``max_error``, the largest absolute error). ``max_p95_latency_ms`` bounds
    the 95th percentile of single-row inference time over ``latency_runs``
    runs on the site's CPU.
    """

    file: str
    task: str = "classification"
    inputs_key: str = DEFAULT_INPUTS_KEY
    expected_key: str = DEFAULT_EXPECTED_KEY
    min_accuracy: str | None = None
    max_error: str | None = None
    max_p95_latency_ms: str | None = None
    latency_runs: int = DEFAULT_LATENCY_RUNS

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise UsageError(f"validation task {self.task!r} is not one of {', '.join(TASKS)}")
        for what, value in (
            ("min_accuracy", self.min_accuracy),
            ("max_error", self.max_error),
            ("max_p95_latency_ms", self.max_p95_latency_ms),
        ):
            _decimal_text(value, what)
        if self.min_accuracy is None and self.max_error is None:
            raise UsageError(
                "a validation set needs a threshold: min_accuracy or max_error",
                hint="say what the model must achieve on its validation set",
            )
        if not 1 <= self.latency_runs <= 10_000:
            raise UsageError("latency_runs must be between 1 and 10000")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "file": self.file,
            "task": self.task,
            "inputs_key": self.inputs_key,
            "expected_key": self.expected_key,
            "min_accuracy": _decimal_text(self.min_accuracy, "min_accuracy"),
            "max_error": _decimal_text(self.max_error, "max_error"),
            "max_p95_latency_ms": _decimal_text(self.max_p95_latency_ms, "max_p95_latency_ms"),
            "latency_runs": self.latency_runs,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ValidationSpec:
        """Parses :meth:`to_dict` output (or a release engineer's thresholds file)."""

        def text(key: str) -> str | None:
            value = data.get(key)
            return None if value is None else str(value)

        return cls(
            file=str(data["file"]),
            task=str(data.get("task", "classification")),
            inputs_key=str(data.get("inputs_key", DEFAULT_INPUTS_KEY)),
            expected_key=str(data.get("expected_key", DEFAULT_EXPECTED_KEY)),
            min_accuracy=text("min_accuracy"),
            max_error=text("max_error"),
            max_p95_latency_ms=text("max_p95_latency_ms"),
            latency_runs=int(data.get("latency_runs", DEFAULT_LATENCY_RUNS)),
        )


@dataclass(frozen=True)
class Dependency:
    """This version needs another model at or above a version (``perception >= 1.5``)."""

    model: str
    min_version: str

    def __post_init__(self) -> None:
        version_tuple(self.min_version)

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form."""
        return {"model": self.model, "min_version": self.min_version}

    @classmethod
    def parse(cls, text: str) -> Dependency:
        """Parses ``"perception>=1.5"`` (spaces allowed).

        Raises:
            UsageError: not ``NAME>=VERSION``.
        """
        name, sep, version = text.replace(" ", "").partition(">=")
        if not sep or not name:
            raise UsageError(
                f"dependency {text!r} is not NAME>=VERSION", hint="e.g. perception>=1.5"
            )
        return cls(name, version)


@dataclass(frozen=True)
class Compatibility:
    """What a site's runtime must offer to run this version."""

    opset: int | None = None
    min_onnxruntime: str | None = None
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    architectures: tuple[str, ...] = ()
    min_memory_mb: int | None = None
    depends: tuple[Dependency, ...] = ()

    def __post_init__(self) -> None:
        if self.min_onnxruntime is not None:
            version_tuple(self.min_onnxruntime)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "opset": self.opset,
            "min_onnxruntime": self.min_onnxruntime,
            "providers": list(self.providers),
            "architectures": list(self.architectures),
            "min_memory_mb": self.min_memory_mb,
            "depends": [d.to_dict() for d in self.depends],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Compatibility:
        """Parses :meth:`to_dict` output (or a release engineer's compatibility file)."""
        depends = []
        for item in data.get("depends") or []:
            depends.append(
                Dependency.parse(item)
                if isinstance(item, str)
                else Dependency(str(item["model"]), str(item["min_version"]))
            )
        opset = data.get("opset")
        memory = data.get("min_memory_mb")
        runtime = data.get("min_onnxruntime")
        return cls(
            opset=None if opset is None else int(opset),
            min_onnxruntime=None if runtime is None else str(runtime),
            providers=tuple(str(p) for p in data.get("providers") or ("CPUExecutionProvider",)),
            architectures=tuple(str(a) for a in data.get("architectures") or ()),
            min_memory_mb=None if memory is None else int(memory),
            depends=tuple(depends),
        )


@dataclass(frozen=True)
class ReleaseInfo:
    """Everything signed about a version besides its files (each part optional)."""

    lineage: Lineage | None = None
    validation: ValidationSpec | None = None
    compatibility: Compatibility | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``custom.airlock.release``)."""
        return {
            "lineage": self.lineage.to_dict() if self.lineage else None,
            "validation": self.validation.to_dict() if self.validation else None,
            "compatibility": self.compatibility.to_dict() if self.compatibility else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ReleaseInfo:
        """Parses :meth:`to_dict` output; ``None`` or ``{}`` is an empty record.

        Raises:
            UsageError: a part is malformed.
        """
        if not data:
            return cls()
        try:
            return cls(
                lineage=Lineage.from_dict(data["lineage"]) if data.get("lineage") else None,
                validation=ValidationSpec.from_dict(data["validation"])
                if data.get("validation")
                else None,
                compatibility=Compatibility.from_dict(data["compatibility"])
                if data.get("compatibility")
                else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UsageError(f"malformed release record ({type(exc).__name__}: {exc})") from None
