"""The gate always loads every ONNX file of a version in the site's onnxruntime.

A version the hub signs without a validation set or compatibility record is
still loaded (session creation only) before it is staged: a model this site's
onnxruntime refuses (here an IR version newer than it supports) is refused at
import with exit 18, its file and onnxruntime's reason named, instead of
failing later on the canary node.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import onnx
import onnxruntime
import pytest
from helpers.gatemodels import make_opset_model, release, ship
from helpers.onnx_models import make_onnx_model
from helpers.spokeenv import accept_import, refuse_import, run_airlock
from sqlmodel import Session

from airlock.bundles.audit import AuditLog
from airlock.bundles.clock import FixedClock
from airlock.bundles.errors import GateError
from airlock.hub.context import HubContext
from airlock.spoke.site import SpokeHome, StagedModel

UNSUPPORTED_IR = 14
"""An IR version the ONNX library writes and checks, but onnxruntime 1.31 refuses."""


def with_ir_version(path: Path, ir_version: int) -> Path:
    """Rewrites the ONNX file at ``path`` with another IR version (``onnx`` still accepts it)."""
    proto = onnx.load(str(path))
    proto.ir_version = ir_version
    onnx.save(proto, str(path))
    onnx.checker.check_model(str(path))
    return path


def last_details(home: SpokeHome) -> dict[str, object]:
    details: dict[str, object] = json.loads(AuditLog(home.engine, "spoke").entries()[-1].details)
    return details


def test_an_unloadable_model_without_a_validation_set_is_refused(
    hub: HubContext, hub_clock: FixedClock, spoke: SpokeHome, media: Path, tmp_path: Path
) -> None:
    model = with_ir_version(make_opset_model(tmp_path / "m" / "ir14.onnx", 17), UNSUPPORTED_IR)
    release(hub, "future", "1", model)  # nothing signed: no validation set, no compatibility
    bundle = ship(hub, hub_clock, media / "bundle-1", assign=("future@1",))
    error = refuse_import(
        spoke,
        bundle,
        GateError,
        match=re.escape(
            f"validation gate: onnxruntime {onnxruntime.__version__} cannot load future@1 "
            "(ir14.onnx): "
        )
        + rf".*IR version: {UNSUPPORTED_IR}",
    )
    assert "onnxruntime_src" not in error.message and str(tmp_path) not in error.message
    assert "onnxruntime" in error.hint
    gate = last_details(spoke)["gate"]
    assert isinstance(gate, dict)
    assert (gate["model"], gate["outcome"], gate["failed"]) == ("future@1", "refused", "load")
    assert gate["load"]["file"] == "ir14.onnx"  # type: ignore[index]
    assert f"IR version: {UNSUPPORTED_IR}" in gate["load"]["reason"]  # type: ignore[index]


def test_the_command_refuses_it_with_exit_18(
    hub: HubContext, hub_clock: FixedClock, spoke: SpokeHome, media: Path, tmp_path: Path
) -> None:
    model = with_ir_version(make_opset_model(tmp_path / "m" / "ir14.onnx", 17), UNSUPPORTED_IR)
    release(hub, "future", "1", model)
    bundle = ship(hub, hub_clock, media / "bundle-1", assign=("future@1",))
    proc = run_airlock("spoke", "import", "--home", str(spoke.path), str(bundle))
    assert proc.returncode == 18, proc.stderr
    assert "cannot load future@1 (ir14.onnx)" in proc.stderr
    assert "  what to do: " in proc.stderr and "Traceback" not in proc.stderr
    with Session(spoke.engine) as session:
        assert session.get(StagedModel, ("future", "1")) is None


@pytest.mark.parametrize("external_data", [False, True], ids=["one-file", "external-data"])
def test_a_loadable_model_without_a_validation_set_passes_with_its_load_figures(
    hub: HubContext,
    hub_clock: FixedClock,
    spoke: SpokeHome,
    media: Path,
    tmp_path: Path,
    external_data: bool,
) -> None:
    model = make_onnx_model(tmp_path / "m" / "adder.onnx", external_data=external_data)
    release(hub, "adder", "1", model.parent if external_data else model)
    result = accept_import(spoke, ship(hub, hub_clock, media / "bundle-1", assign=("adder@1",)))
    assert result.gate["adder@1"] == {
        "outcome": "passed",
        "compatibility": "not signed",
        "validation": "not signed",
        "load": {"onnxruntime": onnxruntime.__version__, "graphs": ["adder.onnx"]},
    }
