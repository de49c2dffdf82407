"""The validation gate: a model version must do at this site what the hub signed it would.

Runs during import, after every verification and before anything is staged,
for each model version the bundle newly stages. The thresholds come only from
the signed release record (``custom.airlock.release`` of the version's primary
Image target, :class:`~airlock.bundles.release._record.ReleaseInfo`); the gate
enforces what was signed and records the rest as ``"not signed"``.

Checks, in order, each failing with :class:`GateError` (exit 18) that names
the check and the figures:

1. Compatibility (:mod:`airlock.node.runtime._compat`) with the site's runtime
   (:mod:`airlock.node.runtime._runtime`):
   onnxruntime version, execution providers, CPU architecture, memory, and
   the ONNX opset — the signed one and the one the graph file declares,
   against the newest opset this onnxruntime loads.
2. Dependencies: each ``model >= version`` is met by a version already
   staged here or staged by the same bundle.
3. Load — always, whether or not anything is signed: every ONNX file of the
   version in an onnxruntime session on the CPU (session creation only, no
   inference), its external-data files next to it under their target file
   names. onnxruntime checks the IR version, opsets and operators; a model
   this site's runtime cannot load is refused here, not on the canary node.
4. Validation set: classification accuracy ``>= min_accuracy``, or
   regression maximum absolute error ``<= max_error``.
5. Latency: 95th percentile of single-row inference ``<= max_p95_latency_ms``.

The figures (see :func:`check_version`) go into the audit log and into the
staged model's row, where ``airlock spoke status`` shows them.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from airlock.bundles.errors import AirlockError, GateError
from airlock.bundles.models import check_name
from airlock.bundles.release import ReleaseInfo, ValidationSpec
from airlock.bundles.tuf import VerifiedMetadata, VerifiedTarget
from airlock.node.runtime import (
    NOT_SIGNED,
    REPORT_HINT,
    Measurement,
    SiteRuntime,
    check_compatibility,
    measure,
    open_session,
    refuse,
    runtime_version,
)
from airlock.spoke.site._home import SpokeHome
from airlock.spoke.site._tables import StagedModel

PASSED, REFUSED = "passed", "refused"
ONNX_SUFFIX = ".onnx"


@dataclass(frozen=True)
class CandidateFile:
    """A verified file of a version, where it sits before promotion."""

    filename: str
    kind: str
    primary: bool
    path: Path


@dataclass(frozen=True)
class Candidate:
    """A model version the bundle would newly stage."""

    name: str
    version: str
    release: ReleaseInfo
    files: tuple[CandidateFile, ...]

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"


@dataclass
class GateReport:
    """The gate's outcome for one import: the site's runtime and each version's figures."""

    runtime: SiteRuntime | None = None
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the import's audit entry)."""
        return {
            "runtime": self.runtime.to_dict() if self.runtime else None,
            "versions": self.versions,
        }


def run_gate(
    candidates: Iterable[Candidate],
    staged: Mapping[str, Iterable[str]],
    runtime: Callable[[], SiteRuntime],
    workdir: Path,
) -> GateReport:
    """Checks every candidate; returns the figures or raises on the first failure.

    Args:
        candidates: The versions the bundle newly stages.
        staged: Model name → versions already staged at the site.
        runtime: Gives the site's runtime (called once, only if something is signed;
            every version is loaded in this process's onnxruntime regardless).
        workdir: A private directory in the import's scratch space.

    Raises:
        GateError: a check failed; ``figures`` holds the version's figures so far.
    """
    todo = sorted(candidates, key=lambda c: (c.name, c.version))
    available: dict[str, set[str]] = {name: set(versions) for name, versions in staged.items()}
    for candidate in todo:
        available.setdefault(candidate.name, set()).add(candidate.version)
    report = GateReport()
    for candidate in todo:
        signed = candidate.release.validation or candidate.release.compatibility
        if signed and report.runtime is None:
            report.runtime = runtime()
        report.versions[candidate.ref] = check_version(
            candidate, available, report.runtime, workdir
        )
    return report


def check_version(
    candidate: Candidate,
    available: Mapping[str, Iterable[str]],
    runtime: SiteRuntime | None,
    workdir: Path,
) -> dict[str, Any]:
    """One version's checks and figures::

        {"outcome": "passed", "runtime": {…} (absent when nothing is signed),
         "load": {onnxruntime, graphs: [the ONNX files loaded, primary first]},
         "compatibility": "not signed" | {onnxruntime, min_onnxruntime, providers,
             architectures, min_memory_mb, opset: {signed, model, supported},
             depends: [{model, min_version, found}]},
         "validation": "not signed" | {file, task, samples, accuracy | max_abs_error,
             p95_latency_ms, latency_runs, min_accuracy | max_error, max_p95_latency_ms}}

    Measured figures and thresholds are decimal strings (see :func:`figure`).

    Raises:
        GateError: a check failed (``figures`` adds ``"outcome": "refused"``, ``"failed"``).
    """
    release = candidate.release
    figures: dict[str, Any] = {
        "outcome": PASSED,
        "compatibility": NOT_SIGNED,
        "validation": NOT_SIGNED,
    }
    if release.validation is not None or release.compatibility is not None:
        assert runtime is not None, "run_gate gives a runtime whenever something is signed"
        figures["runtime"] = runtime.to_dict()
    version = runtime.onnxruntime if runtime is not None else runtime_version()
    try:
        primary = _primary(candidate)
        if release.compatibility is not None:
            assert runtime is not None
            figures["compatibility"] = check_compatibility(
                candidate.ref, release.compatibility, runtime, available, primary.path
            )
        with _model_dir(candidate, workdir) as model_dir:
            session = _load_graphs(candidate, primary, model_dir, version, figures)
            if release.validation is not None:
                figures["validation"] = _check_validation(
                    candidate, release.validation, session, model_dir
                )
    except GateError as exc:
        exc.figures = {**figures, **exc.figures, "outcome": REFUSED, "model": candidate.ref}
        raise
    return figures


def _load_graphs(
    candidate: Candidate,
    primary: CandidateFile,
    model_dir: Path,
    version: str,
    figures: dict[str, Any],
) -> Any:
    """Loads every ONNX file of ``candidate`` in onnxruntime; returns the primary's session.

    Session creation only (no inference): onnxruntime checks the IR version,
    opsets and operators. The primary graph is optimised when its validation
    set will run on it.

    Raises:
        GateError: onnxruntime cannot load one of them (``figures["load"]`` says which).
    """
    others = sorted(
        f.filename
        for f in candidate.files
        if f.kind == "model" and not f.primary and f.filename.lower().endswith(ONNX_SUFFIX)
    )
    graphs = [primary.filename, *others]
    figures["load"] = {"onnxruntime": version, "graphs": graphs}
    session = None
    for graph in graphs:
        optimize = graph == primary.filename and candidate.release.validation is not None
        opened = open_session(model_dir, graph, candidate.ref, version, optimize=optimize)
        if graph == primary.filename:
            session = opened
        del opened
    return session


def _primary(candidate: Candidate) -> CandidateFile:
    primaries = [f for f in candidate.files if f.primary and f.kind == "model"]
    if len(primaries) != 1:
        refuse("load", f"{candidate.ref} has no primary ONNX file", REPORT_HINT)
    return primaries[0]


@contextlib.contextmanager
def _model_dir(candidate: Candidate, workdir: Path) -> Iterator[Path]:
    """A private directory with every model file under its target name (hard links)."""
    workdir.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="gate-", dir=workdir))
    try:
        for file in candidate.files:
            if file.kind != "model":
                continue
            try:
                check_name("file name", file.filename)
            except AirlockError:
                refuse("load", f"{candidate.ref} has an unusable file name", REPORT_HINT)
            try:
                os.link(file.path, directory / file.filename)
            except OSError:
                shutil.copyfile(file.path, directory / file.filename)
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _check_validation(
    candidate: Candidate, spec: ValidationSpec, session: Any, model_dir: Path
) -> dict[str, Any]:
    ref = candidate.ref
    sets = [f for f in candidate.files if f.kind == "validation" and f.filename == spec.file]
    if not sets:
        refuse(
            "validation set",
            f"{ref} names the validation set {spec.file}, which is not among its signed files",
            REPORT_HINT,
        )
    measured = measure(session, spec, sets[0].path, ref)
    figures = _validation_figures(spec, measured)
    partial = {"validation": figures}
    if spec.task == "classification" and spec.min_accuracy is not None:
        accuracy = measured.accuracy
        assert accuracy is not None
        if accuracy < _threshold(spec.min_accuracy):
            refuse(
                "accuracy",
                f"{ref} accuracy {accuracy:.4f} ({measured.correct}/"
                f"{measured.samples}) is below the signed minimum {spec.min_accuracy} on "
                f"{measured.samples} samples",
                REPORT_HINT,
                partial,
            )
    if spec.task == "regression" and spec.max_error is not None:
        error = measured.max_abs_error
        assert error is not None
        if not math.isfinite(error) or error > float(_threshold(spec.max_error)):
            refuse(
                "error",
                f"{ref} maximum absolute error {error:.6g} is above the signed maximum "
                f"{spec.max_error} on {measured.samples} samples",
                REPORT_HINT,
                partial,
            )
    if spec.max_p95_latency_ms is not None and measured.p95_latency_ms > _threshold(
        spec.max_p95_latency_ms
    ):
        refuse(
            "latency",
            f"{ref} p95 latency {figures['p95_latency_ms']} ms over {spec.latency_runs} "
            f"single-row runs is above the signed maximum {spec.max_p95_latency_ms} ms",
            "the site's CPU is slower or busier than the hub planned for: retry when the "
            "spoke is idle; if it persists, ask the hub for a threshold measured on this "
            "site's hardware",
            partial,
        )
    return figures


def _threshold(text: str) -> Any:
    from airlock.bundles.release import decimal

    return decimal(text, "threshold")


def figure(value: Decimal | float | None, places: int) -> str:
    """A measured figure as decimal text (``"0.333333"``, ``"1"``, ``"0.0213"``).

    Audit details are canonical JSON, which has no floating-point numbers, so
    figures are strings like the signed thresholds they are compared with.
    """
    number = Decimal(str(value))
    if number.is_finite():
        number = number.quantize(Decimal(1).scaleb(-places)).normalize()
    return format(number, "f")


def _validation_figures(spec: ValidationSpec, measured: Measurement) -> dict[str, Any]:
    figures: dict[str, Any] = {"file": spec.file, "task": spec.task, "samples": measured.samples}
    if spec.task == "classification":
        assert measured.accuracy is not None
        figures["accuracy"] = figure(measured.accuracy, 6)
        figures["min_accuracy"] = spec.min_accuracy or NOT_SIGNED
    else:
        figures["max_abs_error"] = format(Decimal(f"{measured.max_abs_error:.6g}"), "f")
        figures["max_error"] = spec.max_error or NOT_SIGNED
    figures["p95_latency_ms"] = figure(measured.p95_latency_ms, 4)
    figures["max_p95_latency_ms"] = spec.max_p95_latency_ms or NOT_SIGNED
    figures["latency_runs"] = spec.latency_runs
    return figures


def gate_bundle(
    home: SpokeHome, verified: VerifiedMetadata, blobs: Mapping[str, Path], scratch: Path
) -> GateReport:
    """Runs the gate on every version a verified bundle newly stages (the importer's step).

    Args:
        home: The spoke home (its database says what is staged, its config the runtime).
        verified: The bundle's verified TUF metadata.
        blobs: SHA-256 → the verified blob in the scratch directory.
        scratch: The import's scratch directory (the gate works in ``scratch/gate``).

    Raises:
        GateError: a version failed; nothing may be staged.
    """
    from airlock.node.runtime import site_runtime

    grouped: dict[tuple[str, str], list[VerifiedTarget]] = {}
    for target in verified.targets:
        grouped.setdefault((target.model, target.version), []).append(target)
    staged: dict[str, list[str]] = {}
    with Session(home.engine) as session:
        for row in session.exec(select(StagedModel)):
            staged.setdefault(row.name, []).append(row.version)
    candidates = [
        _candidate(name, version, targets, blobs, home.blob_dir)
        for (name, version), targets in grouped.items()
        if version not in staged.get(name, [])
    ]
    return run_gate(candidates, staged, lambda: site_runtime(home.config), scratch / "gate")


def _candidate(
    name: str,
    version: str,
    targets: list[VerifiedTarget],
    blobs: Mapping[str, Path],
    store: Path,
) -> Candidate:
    ref = f"{name}@{version}"
    primary = [t for t in targets if t.primary]
    try:
        release = ReleaseInfo.from_dict(primary[0].image_custom.get("release") if primary else None)
    except AirlockError as exc:
        raise GateError(
            f"validation gate: the signed release record of {ref} is malformed: {exc.message}",
            hint="the hub signed a record this spoke cannot read; report it to the hub",
            figures={"model": ref, "outcome": REFUSED, "failed": "release record"},
        ) from None
    files = tuple(
        CandidateFile(
            filename=t.filename,
            kind=t.kind,
            primary=t.primary,
            path=Path(blobs[t.sha256]) if t.sha256 in blobs else store / t.sha256,
        )
        for t in targets
    )
    return Candidate(name=name, version=version, release=release, files=files)
