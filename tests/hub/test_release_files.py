"""`--validation-set`, `--thresholds` and `--compat` on `airlock hub model add` (no MLflow here)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from helpers.hubenv import HUB_PASSPHRASE, tree_digest

from airlock.bundles.cli import main
from airlock.bundles.errors import MissingFileError, UsageError
from airlock.bundles.release import Compatibility, Dependency, ValidationSpec
from airlock.ceremony.minimal import CeremonyResult
from airlock.hub.catalog import read_compat, read_thresholds, release_parts
from airlock.hub.context import HubContext
from airlock.hub.intake import add_model


@pytest.fixture
def validation_set(tmp_path: Path) -> Path:
    """Ten rows of four float32 features and int64 labels."""
    path = tmp_path / "val.npz"
    np.savez(path, inputs=np.ones((10, 4), np.float32), expected=np.zeros(10, np.int64))
    return path


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_thresholds_toml_and_json(tmp_path: Path) -> None:
    toml = write(tmp_path / "t.toml", 'min_accuracy = 0.95\nmax_p95_latency_ms = "12.5"\n')
    assert read_thresholds(toml) == ValidationSpec(
        file="validation.npz", min_accuracy="0.95", max_p95_latency_ms="12.5"
    )
    spec = {"file": "iris-check.npz", "task": "regression", "max_error": "0.01"}
    assert read_thresholds(write(tmp_path / "t.json", json.dumps(spec))) == ValidationSpec(
        file="iris-check.npz", task="regression", max_error="0.01"
    )


def test_compat_toml_and_json(tmp_path: Path) -> None:
    toml = write(
        tmp_path / "c.toml",
        'opset = 17\nmin_onnxruntime = "1.17"\nproviders = ["CPUExecutionProvider"]\n'
        'architectures = ["x86_64", "aarch64"]\nmin_memory_mb = 512\n'
        'depends = ["perception>=1.5", {model = "tracker", min_version = "2"}]\n',
    )
    assert read_compat(toml) == Compatibility(
        opset=17,
        min_onnxruntime="1.17",
        architectures=("x86_64", "aarch64"),
        min_memory_mb=512,
        depends=(Dependency("perception", "1.5"), Dependency("tracker", "2")),
    )
    assert read_compat(write(tmp_path / "c.json", "{}")) == Compatibility()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("min_acuracy = 0.9\n", "unknown keys: min_acuracy"),
        ("min_accuracy = \n", "is not valid TOML"),
        ('task = "classification"\n', "needs a threshold"),
        ('min_accuracy = "most"\n', "not a decimal number"),
        ("min_accuracy = 1.5\n", "between 0 and 1"),
        ("max_error = -1\n", "must not be negative"),
        ('min_accuracy = 0.9\nlatency_runs = "many"\n', "latency_runs must be a int"),
        ('min_accuracy = 0.9\ntask = "ranking"\n', "not one of classification"),
        ('min_accuracy = 0.9\nfile = "../x.npz"\n', "invalid validation set file name"),
        ("min_accuracy = true\n", "min_accuracy must be"),
    ],
)
def test_bad_thresholds_files(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "thresholds.toml", text)
    with pytest.raises(UsageError, match=message) as raised:
        read_thresholds(path)
    assert str(path) in raised.value.message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"opset": "17"}', "opset must be a int"),
        ('{"opset": 0}', "must be a positive number"),
        ('{"min_onnxruntime": "1.x"}', "not dot-separated numbers"),
        ('{"providers": "CPUExecutionProvider"}', "providers must be a list of strings"),
        ('{"depends": ["perception"]}', "not NAME>=VERSION"),
        ('{"depends": [{"model": "perception"}]}', "malformed"),
        ('{"gpu": true}', "unknown keys: gpu"),
        ("[1, 2]", "does not hold a table"),
        ("{", "is not valid JSON"),
    ],
)
def test_bad_compat_files(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "compat.json", text)
    with pytest.raises(UsageError, match=message) as raised:
        read_compat(path)
    assert str(path) in raised.value.message


def test_bad_validation_sets(tmp_path: Path, validation_set: Path) -> None:
    thresholds = write(tmp_path / "t.toml", "min_accuracy = 0.9\n")

    def refused(path: Path, message: str) -> None:
        with pytest.raises(UsageError, match=message) as raised:
            release_parts(path, thresholds, None)
        assert str(path) in raised.value.message

    np.savez(tmp_path / "keys.npz", x=np.ones((2, 4)), y=np.ones(2))
    refused(tmp_path / "keys.npz", "has no array 'inputs' \\(it has: x, y\\)")
    np.savez(tmp_path / "rows.npz", inputs=np.ones((3, 4)), expected=np.ones(2))
    refused(tmp_path / "rows.npz", "3 inputs but 2 expected")
    np.savez(tmp_path / "objects.npz", inputs=np.array([{}, {}]), expected=np.ones(2))
    refused(tmp_path / "objects.npz", "without pickled objects")
    np.save(tmp_path / "single.npy", np.ones(3))
    refused(tmp_path / "single.npy", "single array")
    refused(write(tmp_path / "text.npz", "inputs,expected\n"), "not a readable .npz")
    with pytest.raises(MissingFileError, match="does not exist") as missing:
        release_parts(tmp_path / "absent.npz", thresholds, None)
    assert missing.value.exit_code == 5 and missing.value.hint
    with pytest.raises(UsageError, match="--validation-set needs --thresholds"):
        release_parts(validation_set, None, None)
    with pytest.raises(UsageError, match="--thresholds needs --validation-set"):
        release_parts(None, thresholds, None)


def test_thresholds_name_the_shipped_file(
    hub: HubContext, onnx_file: Path, validation_set: Path, tmp_path: Path
) -> None:
    thresholds = write(tmp_path / "t.toml", 'file = "iris-check.npz"\nmin_accuracy = 0.9\n')
    parts = release_parts(validation_set, thresholds, None)
    assert parts.extras == {"iris-check.npz": (validation_set, "validation")}
    model = add_model(hub, "classifier", "1", onnx_file, None, parts.extras)
    assert [f.filename for f in model.files_of_kind("validation")] == ["iris-check.npz"]


# -- through `airlock hub model add` ------------------------------------------------------


@pytest.fixture
def cli(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ceremony: CeremonyResult
) -> Callable[..., Result]:
    """Runs `airlock hub ARGS…` against an initialised hub home."""
    monkeypatch.setenv("AIRLOCK_HUB_PASSPHRASE", HUB_PASSPHRASE)
    monkeypatch.setenv("COLUMNS", "250")  # rich tables: one line per row
    monkeypatch.setenv("AIRLOCK_HUB_HOME", str(tmp_path / "cli-home"))
    runner = CliRunner()

    def run(*args: str, expect: int = 0) -> Result:
        result = runner.invoke(main, ["hub", *args], catch_exceptions=False)
        assert result.exit_code == expect, result.output + result.stderr
        return result

    run("init", "--from", str(ceremony.out_dir))
    return run


def test_model_add_signs_validation_and_compat(
    cli: Callable[..., Result], onnx_file: Path, validation_set: Path, tmp_path: Path
) -> None:
    thresholds = write(tmp_path / "t.toml", 'min_accuracy = "0.9"\n')
    compat = write(tmp_path / "c.json", json.dumps({"depends": ["perception>=1.5"]}))
    out = json.loads(
        cli(
            "model", "add", "classifier", "1", str(onnx_file),
            "--validation-set", str(validation_set),
            "--thresholds", str(thresholds),
            "--compat", str(compat),
            "--json",
        ).stdout
    )  # fmt: skip
    assert out["release"]["validation"]["min_accuracy"] == "0.9"
    assert out["release"]["compatibility"]["depends"] == [
        {"model": "perception", "min_version": "1.5"}
    ]
    assert out["release"]["compatibility"]["opset"] is None  # model add derives nothing
    assert out["release"]["lineage"] is None
    kinds = {f["filename"]: f["kind"] for f in out["files"]}
    assert kinds == {"classifier.onnx": "model", "validation.npz": "validation"}
    human = cli("model", "list").stdout
    assert "validated (min_accuracy 0.9)" in human and "perception >= 1.5" in human


def test_model_add_refuses_bad_files_and_changes_nothing(
    cli: Callable[..., Result],
    onnx_file: Path,
    validation_set: Path,
    tmp_path: Path,
) -> None:
    before = tree_digest(tmp_path / "cli-home")
    good = write(tmp_path / "good.toml", "min_accuracy = 0.9\n")
    bad_thresholds = write(tmp_path / "bad.toml", "min_accuracy = 0.9\nmin_acuracy = 1\n")
    bad_compat = write(tmp_path / "bad.json", '{"min_onnxruntime": "latest"}')
    add = ("model", "add", "classifier", "1", str(onnx_file))
    with_set = ("--validation-set", str(validation_set))
    missing = ("--validation-set", str(tmp_path / "nope.npz"), "--thresholds", str(good))
    cases = [
        ((*with_set, "--thresholds", str(bad_thresholds)), "bad.toml", 3),
        (("--compat", str(bad_compat)), "bad.json", 3),
        (("--thresholds", str(good)), "--thresholds needs --validation-set", 3),
        (missing, "nope.npz", 5),  # a missing input file is a media error
    ]
    for options, message, code in cases:
        refused = cli(*add, *options, expect=code)
        assert message in refused.stderr
    assert tree_digest(tmp_path / "cli-home") == before
    assert json.loads(cli("model", "list", "--json").stdout) == []
