"""A/B slots keep the active version intact; health and compatibility checks on real iris."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.agentenv import NODE_MEMORY_MB, LocalVerifier, assignment, node_runtime
from helpers.gatemodels import GateModel, classification, make_iris, site_compatibility

from airlock.bundles.errors import ConflictError, GateError, MediaError
from airlock.bundles.release import Compatibility, Dependency, ReleaseInfo
from airlock.node import (
    FAILED,
    INSTALLED,
    FamilySlots,
    SlotRecord,
    SlotStore,
    check_node_compatibility,
    health_check,
    unmet_dependency,
)

VALIDATION = "validation.npz"


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> GateModel:
    return make_iris(tmp_path_factory.mktemp("iris"))


def _files(iris: GateModel, model: Path | None = None) -> dict[str, tuple[Path, str]]:
    return {
        "iris.onnx": (model or iris.path, "model"),
        VALIDATION: (iris.sets["good"], "validation"),
    }


Files = dict[str, tuple[Path, str]]


def _install(store: SlotStore, family: FamilySlots, version: str, files: Files, slot: str) -> Path:
    verifier = LocalVerifier()
    item = assignment("iris", version, files)
    verifier.assign((item, files))
    return store.install(
        family, slot, version, item.primary_file.sha256, item.files, verifier.download
    )


def test_install_goes_to_the_inactive_slot_and_never_touches_the_active_one(
    tmp_path: Path, iris: GateModel
) -> None:
    store, family = SlotStore(tmp_path / "slots"), FamilySlots("iris")
    first = family.install_target()
    assert first == "A"  # an empty active slot takes the first version
    slot_a = _install(store, family, "1", _files(iris), first)
    family.commit("A")
    active_bytes = (slot_a / "iris.onnx").read_bytes()
    assert family.install_target() == "B"
    with pytest.raises(ConflictError):
        _install(store, family, "2", _files(iris), "A")
    assert (slot_a / "iris.onnx").read_bytes() == active_bytes

    slot_b = _install(store, family, "2", _files(iris), "B")
    assert family.slots["B"].state == INSTALLED
    assert sorted(p.name for p in slot_b.iterdir()) == ["iris.onnx", VALIDATION]
    family.fall_back("B", "health check: too slow")
    assert family.active == "A" and family.slots["B"].state == FAILED
    assert family.state == "fell-back"
    assert (slot_a / "iris.onnx").read_bytes() == active_bytes
    family.commit("B")
    assert family.active_record.version == "2"
    assert FamilySlots.from_dict(family.to_dict()) == family


def test_an_interrupted_download_leaves_the_slot_empty_and_no_partial_files(
    tmp_path: Path, iris: GateModel
) -> None:
    store, family = SlotStore(tmp_path / "slots"), FamilySlots("iris")
    _install(store, family, "1", _files(iris), "A")
    family.commit("A")
    item = assignment("iris", "2", _files(iris))

    def broken(file: object, dest: Path) -> Path:
        dest.write_bytes(b"half")
        raise MediaError("spoke unreachable")

    with pytest.raises(MediaError):
        store.install(family, "B", "2", item.primary_file.sha256, item.files, broken)
    assert family.slots["B"].version is None
    assert not (tmp_path / "slots" / "iris" / "B").exists()
    assert [p.name for p in (tmp_path / "slots" / "iris").iterdir()] == ["A"]
    assert family.slots["A"].version == "1"
    cut_short = {"version": "2", "sha256": "ab" * 32, "state": "installing"}
    assert SlotRecord.from_dict(cut_short) == SlotRecord()  # a restart mid-install: empty


def test_iris_passes_its_health_check(tmp_path: Path, iris: GateModel) -> None:
    store, family = SlotStore(tmp_path / "slots"), FamilySlots("iris")
    slot = _install(store, family, "1", _files(iris), "A")
    release = ReleaseInfo(validation=classification(), compatibility=site_compatibility())
    check_node_compatibility("iris@1", release, node_runtime(), slot / "iris.onnx")
    loaded, p95 = health_check("iris", "1", slot, "iris.onnx", release)
    assert loaded.task == "classification" and loaded.version == "1"
    assert p95 > 0
    assert loaded.run(loaded.prepare([[5.1, 3.5, 1.4, 0.2]]))[0].tolist() == [0]


def test_health_check_without_a_validation_set_warms_up_on_zeros(
    tmp_path: Path, iris: GateModel
) -> None:
    store, family = SlotStore(tmp_path / "slots"), FamilySlots("iris")
    slot = _install(store, family, "1", {"iris.onnx": (iris.path, "model")}, "A")
    loaded, _ = health_check("iris", "1", slot, "iris.onnx", ReleaseInfo())
    assert loaded.task == "classification"  # an integer label output


@pytest.mark.parametrize(
    ("limit", "added_ms", "runs"),
    [("0.000001", 0, 20), ("5", 20, 3)],
    ids=["signed-floor-below-any-latency", "injected-latency"],
)
def test_a_warm_up_slower_than_the_signed_p95_fails(
    tmp_path: Path, iris: GateModel, limit: str, added_ms: float, runs: int
) -> None:
    store, family = SlotStore(tmp_path / "slots"), FamilySlots("iris")
    slot = _install(store, family, "1", _files(iris), "A")
    release = ReleaseInfo(validation=classification(max_p95_latency_ms=limit, latency_runs=runs))
    with pytest.raises(GateError) as caught:
        health_check("iris", "1", slot, "iris.onnx", release, added_latency_ms=added_ms)
    assert caught.value.figures["failed"] == "latency"
    assert f"above the signed maximum {limit} ms" in caught.value.message


def test_a_model_that_does_not_load_fails_its_health_check(tmp_path: Path, iris: GateModel) -> None:
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(iris.path.read_bytes()[:200] + b"\x00garbage" * 10)
    store, family = SlotStore(tmp_path / "slots"), FamilySlots("iris")
    slot = _install(store, family, "1", _files(iris, corrupt), "A")
    with pytest.raises(GateError) as caught:
        health_check("iris", "1", slot, "iris.onnx", ReleaseInfo(validation=classification()))
    assert caught.value.figures["failed"] == "load"
    assert "onnxruntime cannot load iris@1" in caught.value.message


@pytest.mark.parametrize(
    ("compatibility", "words"),
    [
        (site_compatibility(architectures=("s390x",)), "is built for s390x, this node is"),
        (
            site_compatibility(min_memory_mb=NODE_MEMORY_MB + 1),
            f"needs {NODE_MEMORY_MB + 1} MB of memory, this node has {NODE_MEMORY_MB} MB",
        ),
        (site_compatibility(providers=("CUDAExecutionProvider",)), "CUDAExecutionProvider"),
        (site_compatibility(min_onnxruntime="99.0"), "needs onnxruntime >= 99.0"),
    ],
    ids=["architecture", "memory", "providers", "onnxruntime"],
)
def test_compatibility_refusal_names_the_requirement(
    tmp_path: Path, iris: GateModel, compatibility: Compatibility, words: str
) -> None:
    store, family = SlotStore(tmp_path / "slots"), FamilySlots("iris")
    slot = _install(store, family, "1", _files(iris), "A")
    with pytest.raises(GateError) as caught:
        check_node_compatibility(
            "iris@1", ReleaseInfo(compatibility=compatibility), node_runtime(), slot / "iris.onnx"
        )
    assert words in caught.value.message


def test_dependencies_are_met_only_by_committed_versions_high_enough() -> None:
    release = ReleaseInfo(compatibility=Compatibility(depends=(Dependency("perception", "1.5"),)))
    assert unmet_dependency(release, {}) == "perception>=1.5"
    assert unmet_dependency(release, {"perception": None}) == "perception>=1.5"
    assert unmet_dependency(release, {"perception": "1.4"}) == "perception>=1.5"
    assert unmet_dependency(release, {"perception": "1.10"}) is None
    assert unmet_dependency(release, {"perception": "1.5"}) is None
    assert unmet_dependency(ReleaseInfo(), {}) is None
