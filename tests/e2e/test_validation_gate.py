"""The validation gate, end to end: the real hub signs thresholds, the spoke runs onnxruntime.

Every refusal goes through :func:`helpers.spokeenv.refuse_import`: a
``GateError`` (exit 18) whose message names the check and the figures, one
audit entry, and nothing staged — not even the bundle's other versions.
"""

from __future__ import annotations

import json
import platform
import re
from collections.abc import Iterator
from pathlib import Path

import onnxruntime
import pytest
from helpers.gatemodels import (
    ADDER_SAMPLES,
    IRIS_SAMPLES,
    VALIDATION_FILE,
    GateModel,
    classification,
    make_adder,
    make_iris,
    make_opset_model,
    make_scores,
    regression,
    release,
    ship,
    site_compatibility,
)
from helpers.spokeenv import accept_import, refuse_import
from sqlmodel import Session

from airlock.bundles.audit import AuditLog
from airlock.bundles.clock import FixedClock
from airlock.bundles.errors import GateError
from airlock.bundles.release import Compatibility, Dependency
from airlock.hub.context import HubContext
from airlock.node.runtime import max_supported_opset
from airlock.spoke.site import SpokeHome, StagedModel

NOT_SIGNED = "not signed"
GRAPHS = {"classifier": "classifier.onnx", "detector": "model.onnx"}
"""The ONNX file of each template family (:mod:`helpers.spokeenv`)."""


def nothing_signed(ref: str) -> dict[str, object]:
    """The figures of a version released with nothing signed: passed, and loaded all the same."""
    load = {"onnxruntime": onnxruntime.__version__, "graphs": [GRAPHS[ref.split("@")[0]]]}
    return {
        "outcome": "passed",
        "compatibility": NOT_SIGNED,
        "validation": NOT_SIGNED,
        "load": load,
    }


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, GateModel]]:
    """The iris classifier, the arg-max scorer and the external-data adder, built once."""
    base = tmp_path_factory.mktemp("gate-models")
    yield {
        "iris": make_iris(base / "iris"),
        "scores": make_scores(base / "scores"),
        "adder": make_adder(base / "adder"),
    }


def staged_gate(home: SpokeHome, ref: str) -> dict[str, object]:
    name, version = ref.split("@")
    with Session(home.engine) as session:
        row = session.get(StagedModel, (name, version))
        assert row is not None, f"{ref} is not staged"
        return row.gate


def last_details(home: SpokeHome) -> dict[str, object]:
    details: dict[str, object] = json.loads(AuditLog(home.engine, "spoke").entries()[-1].details)
    return details


# --- versions that pass ------------------------------------------------------------------------


def test_a_passing_classifier_is_staged_with_its_figures(
    hub: HubContext,
    hub_clock: FixedClock,
    spoke: SpokeHome,
    media: Path,
    models: dict[str, GateModel],
) -> None:
    iris = models["iris"]
    release(hub, "iris", "1", iris.path, iris.sets["good"], classification(), site_compatibility())
    bundle = ship(hub, hub_clock, media / "bundle-1", assign=("iris@1",))
    result = accept_import(spoke, bundle)
    assert "iris@1" in result.staged

    figures = staged_gate(spoke, "iris@1")
    assert figures["outcome"] == "passed"
    validation = figures["validation"]
    assert isinstance(validation, dict)
    assert validation["file"] == VALIDATION_FILE and validation["task"] == "classification"
    assert (validation["samples"], validation["accuracy"]) == (IRIS_SAMPLES, "1")
    assert (validation["min_accuracy"], validation["max_p95_latency_ms"]) == ("0.9", "1000")
    assert validation["latency_runs"] == 20 and 0 < float(validation["p95_latency_ms"]) < 1000
    compatibility = figures["compatibility"]
    assert isinstance(compatibility, dict)
    assert compatibility["opset"] == {"signed": 17, "model": 17, "supported": max_supported_opset()}
    assert compatibility["onnxruntime"] == onnxruntime.__version__
    assert compatibility["min_onnxruntime"] == "1.17" and compatibility["depends"] == []
    runtime = figures["runtime"]
    assert isinstance(runtime, dict)
    assert runtime["architecture"] == platform.machine() and runtime["declared"] == []
    assert "CPUExecutionProvider" in runtime["providers"] and runtime["memory_mb"] > 64

    details = last_details(spoke)
    gate = details["gate"]
    assert isinstance(gate, dict)
    assert gate["versions"]["iris@1"] == figures
    assert gate["runtime"] == runtime
    # the template's versions carry no release record: they pass, recorded as not signed
    for ref in ("classifier@1", "detector@1"):
        assert gate["versions"][ref] == nothing_signed(ref) == staged_gate(spoke, ref)


def test_an_argmax_classifier_with_a_dynamic_batch_passes(
    hub: HubContext,
    hub_clock: FixedClock,
    spoke: SpokeHome,
    media: Path,
    models: dict[str, GateModel],
) -> None:
    scores = models["scores"]
    release(hub, "scores", "1", scores.path, scores.sets["good"], classification("1"))
    accept_import(spoke, ship(hub, hub_clock, media / "bundle-1", assign=("scores@1",)))
    validation = staged_gate(spoke, "scores@1")["validation"]
    assert isinstance(validation, dict)
    assert (validation["samples"], validation["accuracy"]) == (300, "1")
    assert staged_gate(spoke, "scores@1")["compatibility"] == NOT_SIGNED


def test_a_regression_model_with_external_data_passes(
    hub: HubContext,
    hub_clock: FixedClock,
    spoke: SpokeHome,
    media: Path,
    models: dict[str, GateModel],
) -> None:
    adder = models["adder"]
    release(hub, "adder", "1", adder.path, adder.sets["exact"], regression(), site_compatibility())
    accept_import(spoke, ship(hub, hub_clock, media / "bundle-1", assign=("adder@1",)))
    validation = staged_gate(spoke, "adder@1")["validation"]
    assert isinstance(validation, dict)
    assert validation["samples"] == ADDER_SAMPLES
    assert validation["max_abs_error"] == "0" and validation["max_error"] == "0.001"
    assert "accuracy" not in validation
    # versions gated after a signed one still record only what was (not) signed
    assert staged_gate(spoke, "detector@1") == nothing_signed("detector@1")


def test_versions_already_staged_are_not_gated_again(
    hub: HubContext,
    hub_clock: FixedClock,
    spoke: SpokeHome,
    media: Path,
    models: dict[str, GateModel],
) -> None:
    """A stricter site declaration later does not retract what passed (nor re-run it)."""
    iris = models["iris"]
    release(hub, "iris", "1", iris.path, iris.sets["good"], classification(), site_compatibility())
    accept_import(spoke, ship(hub, hub_clock, media / "bundle-1", assign=("iris@1",)))
    with open(spoke.path / "airlock.toml", "a") as config:
        config.write("\n[runtime]\nmemory_mb = 1\n")
    home = SpokeHome(spoke.path, spoke.secrets)
    result = accept_import(home, ship(hub, hub_clock, media / "bundle-2", assign=("classifier@2",)))
    assert "iris@1" in result.already_staged and result.staged == ["classifier@2"]
    assert last_details(home)["gate"] == {
        "runtime": None,
        "versions": {"classifier@2": nothing_signed("classifier@2")},
    }
    home.engine.dispose()


# --- validation-set refusals -------------------------------------------------------------------


def test_accuracy_below_the_signed_floor_is_refused(
    hub: HubContext,
    hub_clock: FixedClock,
    spoke: SpokeHome,
    media: Path,
    models: dict[str, GateModel],
) -> None:
    iris = models["iris"]
    release(hub, "iris", "2", iris.path, iris.sets["shuffled"], classification("0.90"))
    bundle = ship(hub, hub_clock, media / "bundle-1", assign=("iris@2",))
    accuracy = iris.accuracy["shuffled"]
    correct = round(accuracy * IRIS_SAMPLES)
    error = refuse_import(
        spoke,
        bundle,
        GateError,
        match=re.escape(
            f"validation gate: iris@2 accuracy {accuracy:.4f} ({correct}/{IRIS_SAMPLES}) is "
            f"below the signed minimum 0.90 on {IRIS_SAMPLES} samples"
        ),
    )
    assert error.exit_code == 18
    gate = last_details(spoke)["gate"]
    assert isinstance(gate, dict)
    assert (gate["model"], gate["outcome"], gate["failed"]) == ("iris@2", "refused", "accuracy")
    assert gate["validation"]["accuracy"] == f"{accuracy:.6f}".rstrip("0")
    assert gate["validation"]["min_accuracy"] == "0.90"
    assert gate["compatibility"] == NOT_SIGNED


def test_regression_error_above_the_signed_maximum_is_refused(
    hub: HubContext,
    hub_clock: FixedClock,
    spoke: SpokeHome,
    media: Path,
    models: dict[str, GateModel],
) -> None:
    adder = models["adder"]
    release(hub, "adder", "2", adder.path, adder.sets["off"], regression("0.1"))
    bundle = ship(hub, hub_clock, media / "bundle-1", assign=("adder@2",))
    refuse_import(
        spoke,
        bundle,
        GateError,
        match=re.escape(
            f"validation gate: adder@2 maximum absolute error 0.5 is above the signed maximum "
            f"0.1 on {ADDER_SAMPLES} samples"
        ),
    )
    gate = last_details(spoke)["gate"]
    assert isinstance(gate, dict)
    assert gate["failed"] == "error" and gate["validation"]["max_abs_error"] == "0.5"


def test_latency_above_the_signed_maximum_is_refused(
    hub: HubContext,
    hub_clock: FixedClock,
    spoke: SpokeHome,
    media: Path,
    models: dict[str, GateModel],
) -> None:
    iris = models["iris"]
    spec = classification(max_p95_latency_ms="0.000001", latency_runs=7)
    release(hub, "iris", "3", iris.path, iris.sets["good"], spec)
    bundle = ship(hub, hub_clock, media / "bundle-1", assign=("iris@3",))
    refuse_import(
        spoke,
        bundle,
        GateError,
        match=r"validation gate: iris@3 p95 latency [0-9.]+ ms over 7 single-row runs is above "
        r"the signed maximum 0\.000001 ms",
    )
    gate = last_details(spoke)["gate"]
    assert isinstance(gate, dict)
    assert gate["failed"] == "latency" and gate["validation"]["accuracy"] == "1"
    assert float(gate["validation"]["p95_latency_ms"]) > 0.000001


# --- compatibility refusals --------------------------------------------------------------------


COMPATIBILITY_CASES = {
    "onnxruntime": (
        {"min_onnxruntime": "99.0"},
        rf"needs onnxruntime >= 99\.0, this site runs {re.escape(onnxruntime.__version__)}",
    ),
    "providers": (
        {"providers": ("CPUExecutionProvider", "CUDAExecutionProvider")},
        r"needs execution provider\(s\) CUDAExecutionProvider, this site offers .*CPUExec",
    ),
    "architecture": (
        {"architectures": ("s390x",)},
        rf"is built for s390x, this site is {re.escape(platform.machine())}",
    ),
    "memory": (
        {"min_memory_mb": 10**9},
        r"needs 1000000000 MB of memory, this site has \d+ MB",
    ),
    "opset": (
        {"opset": 99},
        r"needs ONNX opset 99 \(the signed opset\), onnxruntime .* at this site supports "
        r"opsets up to \d+",
    ),
}


@pytest.mark.parametrize("check", sorted(COMPATIBILITY_CASES))
def test_an_incompatible_runtime_is_refused(
    hub: HubContext,
    hub_clock: FixedClock,
    spoke: SpokeHome,
    media: Path,
    models: dict[str, GateModel],
    check: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the site declares a CPU-only runtime, whatever this machine has (see spoke.runtime)
    monkeypatch.setenv("AIRLOCK_RUNTIME_PROVIDERS", "CPUExecutionProvider")
    changes, message = COMPATIBILITY_CASES[check]
    iris = models["iris"]
    release(
        hub,
        "iris",
        "4",
        iris.path,
        iris.sets["good"],
        classification(),
        site_compatibility(**changes),
    )
    bundle = ship(hub, hub_clock, media / "bundle-1", assign=("iris@4",))
    refuse_import(spoke, bundle, GateError, match=f"validation gate: iris@4 {message}")
    gate = last_details(spoke)["gate"]
    assert isinstance(gate, dict)
    assert (gate["failed"], gate["outcome"]) == (check, "refused")
    assert gate["validation"] == NOT_SIGNED, "compatibility is checked before the model runs"
    assert gate["runtime"]["onnxruntime"] == onnxruntime.__version__


def test_a_graph_newer_than_the_runtime_is_refused_by_its_own_opset(
    hub: HubContext, hub_clock: FixedClock, spoke: SpokeHome, media: Path, tmp_path: Path
) -> None:
    """The hub signed no opset: the gate reads the graph's opset_import itself."""
    newest = max_supported_opset()
    model = make_opset_model(tmp_path / "new" / "identity.onnx", newest + 1)
    release(hub, "future", "1", model, compatibility=Compatibility())
    bundle = ship(hub, hub_clock, media / "bundle-1", assign=("future@1",))
    refuse_import(
        spoke,
        bundle,
        GateError,
        match=re.escape(
            f"validation gate: future@1 needs ONNX opset {newest + 1} (its graph's opset), "
            f"onnxruntime {onnxruntime.__version__} at this site supports opsets up to {newest}"
        ),
    )
    gate = last_details(spoke)["gate"]
    assert isinstance(gate, dict)
    assert gate["compatibility"]["opset"] == {
        "signed": NOT_SIGNED,
        "model": newest + 1,
        "supported": newest,
    }


def test_a_model_onnxruntime_cannot_load_is_refused(
    hub: HubContext, hub_clock: FixedClock, spoke: SpokeHome, media: Path, tmp_path: Path
) -> None:
    """Validation signed, compatibility not: the session itself refuses the opset."""
    newest = max_supported_opset()
    model = make_opset_model(tmp_path / "new" / "identity.onnx", newest + 1)
    validation = tmp_path / "identity.npz"
    import numpy as np

    inputs = np.zeros((3, 4), dtype=np.float32)
    np.savez(validation, inputs=inputs, expected=inputs)
    release(hub, "future", "2", model, validation, regression())
    bundle = ship(hub, hub_clock, media / "bundle-1", assign=("future@2",))
    refuse_import(
        spoke,
        bundle,
        GateError,
        match=rf"validation gate: onnxruntime {re.escape(onnxruntime.__version__)} cannot load "
        rf"future@2 \(identity.onnx\): .*Opset {newest + 1}",
    )
    assert last_details(spoke)["gate"]["failed"] == "load"  # type: ignore[index]


def test_the_sites_declared_runtime_overrides_detection(
    hub: HubContext,
    hub_clock: FixedClock,
    spoke: SpokeHome,
    media: Path,
    models: dict[str, GateModel],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The nodes are s390x with a GPU: declared in airlock.toml; memory from the environment."""
    iris = models["iris"]
    compat = site_compatibility(
        architectures=("s390x",),
        providers=("CPUExecutionProvider", "CUDAExecutionProvider"),
        min_memory_mb=512,
    )
    release(hub, "iris", "5", iris.path, iris.sets["good"], classification(), compat)
    with open(spoke.path / "airlock.toml", "a") as config:
        config.write(
            '\n[runtime]\narchitecture = "s390x"\n'
            'providers = ["CPUExecutionProvider", "CUDAExecutionProvider"]\n'
        )
    home = SpokeHome(spoke.path, spoke.secrets)
    monkeypatch.setenv("AIRLOCK_RUNTIME_MEMORY_MB", "256")
    bundle = ship(hub, hub_clock, media / "bundle-1", assign=("iris@5",))
    refuse_import(
        home,
        bundle,
        GateError,
        match="validation gate: iris@5 needs 512 MB of memory, this site has 256 MB",
    )
    monkeypatch.setenv("AIRLOCK_RUNTIME_MEMORY_MB", "2048")
    accept_import(home, bundle)
    runtime = staged_gate(home, "iris@5")["runtime"]
    assert isinstance(runtime, dict)
    assert runtime["architecture"] == "s390x" and runtime["memory_mb"] == 2048
    assert runtime["providers"] == ["CPUExecutionProvider", "CUDAExecutionProvider"]
    assert runtime["declared"] == ["memory_mb", "architecture", "providers"]
    home.engine.dispose()


# --- dependencies ------------------------------------------------------------------------------


def _depends_on_perception(hub: HubContext, model: Path) -> None:
    compat = Compatibility(depends=(Dependency("perception", "1.5"),))
    release(hub, "planning", "2.1", model, compatibility=compat)


def test_a_missing_dependency_is_refused(
    hub: HubContext,
    hub_clock: FixedClock,
    spoke: SpokeHome,
    media: Path,
    models: dict[str, GateModel],
) -> None:
    _depends_on_perception(hub, models["iris"].path)
    bundle = ship(hub, hub_clock, media / "bundle-1", assign=("planning@2.1",))
    refuse_import(
        spoke,
        bundle,
        GateError,
        match=re.escape(
            "validation gate: planning@2.1 depends on perception >= 1.5, and this site has "
            "no version of it staged or in this bundle"
        ),
    )
    gate = last_details(spoke)["gate"]
    assert isinstance(gate, dict)
    assert gate["failed"] == "dependency"
    assert gate["compatibility"]["depends"] == [
        {"model": "perception", "min_version": "1.5", "found": None}
    ]


def test_a_dependency_staged_earlier_satisfies_it(
    hub: HubContext,
    hub_clock: FixedClock,
    spoke: SpokeHome,
    media: Path,
    models: dict[str, GateModel],
) -> None:
    release(hub, "perception", "1.5", models["scores"].path)
    _depends_on_perception(hub, models["iris"].path)
    accept_import(spoke, ship(hub, hub_clock, media / "bundle-1", assign=("perception@1.5",)))
    bundle = ship(
        hub, hub_clock, media / "bundle-2", assign=("planning@2.1",), unassign=("perception",)
    )
    result = accept_import(spoke, bundle)
    assert result.staged == ["planning@2.1"]
    compatibility = staged_gate(spoke, "planning@2.1")["compatibility"]
    assert isinstance(compatibility, dict)
    assert compatibility["depends"] == [
        {"model": "perception", "min_version": "1.5", "found": "1.5"}
    ]


def test_a_dependency_staged_earlier_but_too_old_is_refused(
    hub: HubContext,
    hub_clock: FixedClock,
    spoke: SpokeHome,
    media: Path,
    models: dict[str, GateModel],
) -> None:
    release(hub, "perception", "1.4", models["scores"].path)
    _depends_on_perception(hub, models["iris"].path)
    accept_import(spoke, ship(hub, hub_clock, media / "bundle-1", assign=("perception@1.4",)))
    bundle = ship(hub, hub_clock, media / "bundle-2", assign=("planning@2.1",))
    refuse_import(
        spoke,
        bundle,
        GateError,
        match=re.escape(
            "validation gate: planning@2.1 depends on perception >= 1.5, and this site has "
            "only version 1.4 staged or in this bundle"
        ),
    )


def test_a_dependency_in_the_same_bundle_satisfies_it_by_version_order(
    hub: HubContext,
    hub_clock: FixedClock,
    spoke: SpokeHome,
    media: Path,
    models: dict[str, GateModel],
) -> None:
    """1.10 is newer than 1.5: versions compare as numbers, not strings."""
    release(hub, "perception", "1.10", models["scores"].path)
    _depends_on_perception(hub, models["iris"].path)
    bundle = ship(hub, hub_clock, media / "bundle-1", assign=("perception@1.10", "planning@2.1"))
    result = accept_import(spoke, bundle)
    assert {"perception@1.10", "planning@2.1"} <= set(result.staged)
    compatibility = staged_gate(spoke, "planning@2.1")["compatibility"]
    assert isinstance(compatibility, dict)
    assert compatibility["depends"][0]["found"] == "1.10"
