"""The validation gate at the command line: exit code 18, and the figures in ``spoke status``."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import onnxruntime
import pytest
from helpers.gatemodels import (
    IRIS_SAMPLES,
    GateModel,
    classification,
    make_iris,
    release,
    ship,
    site_compatibility,
)
from helpers.spokeenv import Invoke, cli_refuse_import, table_rows, take_snapshot

from airlock.bundles.clock import FixedClock
from airlock.bundles.errors import GateError
from airlock.hub.context import HubContext
from airlock.node.runtime import max_supported_opset
from airlock.spoke.site import SpokeHome
from airlock.spoke.status import read_status


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> GateModel:
    """The iris classifier and its validation sets."""
    return make_iris(tmp_path_factory.mktemp("iris"))


def test_a_gate_refusal_exits_18_naming_the_check_and_figures(
    hub: HubContext, hub_clock: FixedClock, spoke: SpokeHome, media: Path, iris: GateModel
) -> None:
    release(hub, "iris", "2", iris.path, iris.sets["shuffled"], classification("0.95"))
    bundle = ship(hub, hub_clock, media / "bundle-1", assign=("iris@2",))
    proc = cli_refuse_import(
        spoke, bundle, GateError, match="error: validation gate: iris@2 accuracy 0."
    )
    assert proc.returncode == 18
    assert f"is below the signed minimum 0.95 on {IRIS_SAMPLES} samples" in proc.stderr
    assert "release engineer" in proc.stderr
    assert read_status(spoke).staged == []


def test_status_shows_the_gate_figures_and_the_site_runtime(
    airlock: Invoke,
    hub: HubContext,
    hub_clock: FixedClock,
    spoke: SpokeHome,
    media: Path,
    iris: GateModel,
) -> None:
    release(hub, "iris", "1", iris.path, iris.sets["good"], classification(), site_compatibility())
    bundle = ship(hub, hub_clock, media / "bundle-1", assign=("iris@1",))
    home = str(spoke.path)
    with open(spoke.path / "airlock.toml", "a") as config:
        config.write("\n[runtime]\nmemory_mb = 4096\n")

    result = airlock("spoke", "import", "--home", home, str(bundle))
    assert result.exit_code == 0, result.stderr
    [line] = [x for x in result.stdout.splitlines() if "iris@1" in x]
    assert line.startswith(f"  staged   iris@1  (gate passed: accuracy 1.0000 on {IRIS_SAMPLES}")
    assert "  staged   classifier@1" in result.stdout.splitlines(), "nothing signed: no note"

    before = take_snapshot(spoke)
    status = airlock("spoke", "status", "--home", home, "--json", passphrase=None)
    assert status.exit_code == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["runtime"] == {
        "onnxruntime": onnxruntime.__version__,
        "max_opset": max_supported_opset(),
        "providers": onnxruntime.get_available_providers(),
        "architecture": platform.machine(),
        "memory_mb": 4096,
        "declared": ["memory_mb"],
    }
    models = {f"{m['model']}@{m['version']}": m["gate"] for m in report["staged_models"]}
    assert models["iris@1"]["outcome"] == "passed"
    assert models["iris@1"]["validation"]["accuracy"] == "1"
    assert models["iris@1"]["runtime"] == report["runtime"]
    assert models["classifier@1"]["validation"] == "not signed"

    table = airlock("spoke", "status", "--home", home, passphrase=None)
    rows = table_rows(table.stdout)
    assert ["memory", "4096 MB (declared in [runtime])"] in rows
    assert ["architecture", f"{platform.machine()} (detected)"] in rows
    p95 = models["iris@1"]["validation"]["p95_latency_ms"]
    assert [
        "iris",
        "1",
        "passed",
        f"accuracy 1.0000 on {IRIS_SAMPLES}",
        f"{p95} ms",
        "accuracy >= 0.9, p95 <= 1000 ms",
        f"ok: opset 17 <= {max_supported_opset()}",
    ] in rows, table.stdout
    assert [
        "classifier",
        "1",
        "passed (nothing signed)",
        "not signed",
        "-",
        "not signed",
        "not signed",
    ] in rows
    assert take_snapshot(spoke) == before, "status stays read-only"


def test_a_malformed_runtime_declaration_is_a_usage_error(
    airlock: Invoke, spoke: SpokeHome
) -> None:
    with open(spoke.path / "airlock.toml", "a") as config:
        config.write('\n[runtime]\nmemory_mb = "lots"\n')
    result = airlock("spoke", "status", "--home", str(spoke.path), passphrase=None)
    assert result.exit_code == 3
    assert "runtime.memory_mb must be a positive whole number of MiB, not 'lots'" in result.stderr
