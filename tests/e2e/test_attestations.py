"""In-toto supply-chain attestations end to end: officers → pipeline → hub → site → stock tool.

The happy path: three officers run a ceremony whose Image root anchors alice's
and bob's layout keys; the hub drafts a layout, alice signs it with her layout
key, the hub sets it; the training pipeline records train → evaluate → convert
with ``in_toto_run`` and its own key; the hub releases the version with
``--links`` (adding the layout and its own ``package`` link), exports; the site
verifies and stages it; ``airlock spoke attestations export`` hands the
evidence to the stock ``in-toto-verify``, which accepts it.

The refusals need bundles only a compromised or buggy hub could make (the hub
checks the same chain before it signs): the attestation files are attached as
plain extras, with a real ``package`` link from the hub's real key, and each
bundle has exactly one defect. Every refusal leaves the site unchanged, with
one audit entry (``assert_refused_unchanged``).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.attestenv import (
    MODEL,
    ONNX_NAME,
    STEPS,
    Attested,
    attested,  # noqa: F401 - a fixture
    attested_clock,  # noqa: F401 - a fixture
    attested_hub,  # noqa: F401 - a fixture
    attested_spoke,  # noqa: F401 - a fixture
    record_pipeline,
    ship,
    step_signers,
    with_policy,
)
from helpers.onnx_models import make_onnx_model
from helpers.spokeenv import (
    accept_import,
    cli_refuse_import,
    refuse_import,
    run_airlock,
)
from in_toto.runlib import in_toto_run
from securesystemslib.signer import CryptoSigner

from airlock.bundles import intoto as layouts
from airlock.bundles.audit import AuditLog
from airlock.bundles.clock import FixedClock
from airlock.bundles.errors import AttestationError, UsageError
from airlock.hub import intake as attestations
from airlock.hub.context import HubContext
from airlock.hub.intake import add_model, set_layout
from airlock.spoke.site import SpokeHome

IN_TOTO_VERIFY = Path(sys.executable).parent / "in-toto-verify"


def release_unchecked(
    hub: HubContext, version: str, onnx: Path, layout: Path, links_dir: Path, tmp_path: Path
) -> None:
    """What only a compromised or buggy hub releases: attestations attached unchecked.

    The ``package`` link is real (the hub's own key over the shipped bytes).
    """
    ref = attestations.package_key_ref(hub)
    assert ref is not None
    staging = tmp_path / f"package-{version}"
    staging.mkdir()
    shutil.copyfile(onnx, staging / ONNX_NAME)
    in_toto_run(
        layouts.PACKAGE_STEP,
        [ONNX_NAME],
        [ONNX_NAME],
        [],
        base_path=str(staging),
        metadata_directory=str(links_dir),
        signer=attestations.package_signer(hub, ref),
    )
    extras = {layouts.LAYOUT_TARGET: (layout, "layout")}
    extras |= {p.name: (p, "link") for p in sorted(links_dir.glob("*.link"))}
    add_model(hub, MODEL, version, onnx, extras=extras)


# --- the happy path ------------------------------------------------------------------------


def test_attested_version_is_staged_and_the_stock_tool_accepts_the_export(
    attested: Attested,  # noqa: F811
    hub: HubContext,
    spoke: SpokeHome,
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    onnx = make_onnx_model(tmp_path / "pipeline-out" / ONNX_NAME)
    links = record_pipeline(
        tmp_path / "pipe", onnx, step_signers(attested.pipeline), tmp_path / "links"
    )
    model = add_model(hub, MODEL, "1", onnx, links=links)
    kinds = {f.filename: f.kind for f in model.files}
    package_ref = attestations.package_key_ref(hub)
    assert package_ref is not None
    pipeline_id = attested.pipeline.public_key.keyid
    assert kinds == {
        ONNX_NAME: "model",
        "root.layout": "layout",
        **{layouts.link_filename(step, pipeline_id): "link" for step in STEPS},
        layouts.link_filename("package", package_ref.keyid): "link",
    }
    release_entry = AuditLog(hub.engine, "hub").entries()[-1]
    assert json.loads(release_entry.details)["attestations"]["ref"] == "classifier@1"

    result = accept_import(spoke, ship(hub, tmp_path, {MODEL: "1"}), clock)
    assert result.staged == ["classifier@1"] and result.attested == ["classifier@1"]
    entry = AuditLog(spoke.engine, "spoke").entries()[-1]
    assert json.loads(entry.details)["attested"] == ["classifier@1"]

    out = tmp_path / "evidence"
    proc = run_airlock(
        "spoke", "attestations", "export", "classifier@1",
        "--home", str(spoke.path), "--out", str(out), "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    exported = json.loads(proc.stdout)
    assert set(exported["files"]) == set(kinds) - {ONNX_NAME}
    assert exported["keys"] == [f"layout-key.{k[:8]}.pem" for k in _alice_layout_keyid(attested)]

    shutil.copyfile(onnx, out / ONNX_NAME)  # the site admin puts the shipped model beside it
    verify = [str(IN_TOTO_VERIFY), "--layout", "root.layout", "--verification-keys"]
    stock = subprocess.run(
        [*verify, *exported["keys"]], cwd=out, capture_output=True, text=True, check=False
    )
    assert stock.returncode == 0, stock.stderr

    (out / ONNX_NAME).write_bytes(b"not the packaged model")
    tampered = subprocess.run(
        [*verify, *exported["keys"]], cwd=out, capture_output=True, text=True, check=False
    )
    assert tampered.returncode == 1 and "DISALLOW *" in tampered.stderr


def _alice_layout_keyid(attested: Attested) -> list[str]:  # noqa: F811
    md = layouts.parse_layout(attested.layout_signed.read_bytes())
    return [str(s["keyid"]) for s in md.signatures]


def test_export_with_model_files_verifies_as_is(
    attested: Attested,  # noqa: F811
    hub: HubContext,
    spoke: SpokeHome,
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    source = make_onnx_model(tmp_path / "src" / "model.onnx", external_data=True, seed=3)
    links = record_pipeline(
        tmp_path / "pipe", source.parent, step_signers(attested.pipeline), tmp_path / "links"
    )
    add_model(hub, MODEL, "2", source.parent, links=links)
    accept_import(spoke, ship(hub, tmp_path, {MODEL: "2"}), clock)

    out = tmp_path / "evidence"
    proc = run_airlock(
        "spoke", "attestations", "export", "classifier@2", "--with-model",
        "--home", str(spoke.path), "--out", str(out), "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    keys = json.loads(proc.stdout)["keys"]
    assert {"model.onnx", "weights.bin"} <= {p.name for p in out.iterdir()}
    stock = subprocess.run(
        [str(IN_TOTO_VERIFY), "--layout", "root.layout", "--verification-keys", *keys],
        cwd=out, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert stock.returncode == 0, stock.stderr


# --- refusals at the site ------------------------------------------------------------------


def test_missing_link_is_refused(
    attested: Attested,  # noqa: F811
    hub: HubContext,
    spoke: SpokeHome,
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    onnx = make_onnx_model(tmp_path / "out" / ONNX_NAME)
    links = record_pipeline(
        tmp_path / "pipe", onnx, step_signers(attested.pipeline), tmp_path / "links"
    )
    next(links.glob("evaluate.*.link")).unlink()
    release_unchecked(hub, "1", onnx, attested.layout_signed, links, tmp_path)
    refuse_import(
        spoke,
        ship(hub, tmp_path, {MODEL: "1"}),
        AttestationError,
        "step 'evaluate' needs 1 link",
        clock,
    )


def test_missing_link_is_refused_by_the_command_with_exit_19(
    attested: Attested,  # noqa: F811
    hub: HubContext,
    spoke: SpokeHome,
    tmp_path: Path,
) -> None:
    onnx = make_onnx_model(tmp_path / "out" / ONNX_NAME)
    links = record_pipeline(
        tmp_path / "pipe", onnx, step_signers(attested.pipeline), tmp_path / "links"
    )
    next(links.glob("convert.*.link")).unlink()
    release_unchecked(hub, "1", onnx, attested.layout_signed, links, tmp_path)
    proc = cli_refuse_import(
        spoke, ship(hub, tmp_path, {MODEL: "1"}), AttestationError, "step 'convert' needs 1 link"
    )
    assert proc.returncode == 19


@pytest.mark.parametrize("renamed", [False, True], ids=["own-name", "renamed-to-functionary"])
def test_link_signed_by_another_key_is_refused(
    attested: Attested,  # noqa: F811
    hub: HubContext,
    spoke: SpokeHome,
    clock: FixedClock,
    tmp_path: Path,
    renamed: bool,
) -> None:
    intruder = CryptoSigner.generate_ed25519()
    onnx = make_onnx_model(tmp_path / "out" / ONNX_NAME)
    links = record_pipeline(
        tmp_path / "pipe", onnx, step_signers(attested.pipeline, train=intruder), tmp_path / "links"
    )
    match = "not a functionary of step 'train'"
    if renamed:
        forged = next(links.glob("train.*.link"))
        forged.rename(links / layouts.link_filename("train", attested.pipeline.public_key.keyid))
        match = "is not validly signed by the functionary key"
    release_unchecked(hub, "1", onnx, attested.layout_signed, links, tmp_path)
    refuse_import(spoke, ship(hub, tmp_path, {MODEL: "1"}), AttestationError, match, clock)


def test_shipped_bytes_other_than_the_converted_ones_are_refused(
    attested: Attested,  # noqa: F811
    hub: HubContext,
    spoke: SpokeHome,
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    converted = make_onnx_model(tmp_path / "converted" / ONNX_NAME, seed=1)
    shipped = make_onnx_model(tmp_path / "shipped" / ONNX_NAME, seed=2)
    links = record_pipeline(
        tmp_path / "pipe", converted, step_signers(attested.pipeline), tmp_path / "links"
    )
    release_unchecked(hub, "1", shipped, attested.layout_signed, links, tmp_path)
    error = refuse_import(
        spoke, ship(hub, tmp_path, {MODEL: "1"}), AttestationError, "does not verify", clock
    )
    assert "'package'" in error.message and "RuleVerificationError" in error.message


def test_expired_layout_is_refused(
    attested: Attested,  # noqa: F811
    hub: HubContext,
    spoke: SpokeHome,
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    # a layout valid when the hub released the version, expired when the site imports it
    ref = attestations.package_key_ref(hub)
    assert ref is not None
    short = layouts.draft_layout(
        {step: [attested.pipeline.public_key] for step in STEPS},
        ref.public_key,
        attested.hub_time + dt.timedelta(minutes=2),
    )
    draft = tmp_path / "short.layout.json"
    draft.write_bytes(layouts.layout_bytes(short))
    signed = attested.officer_sign("alice", draft, tmp_path / "short.alice.json")
    set_layout(hub, signed)
    onnx = make_onnx_model(tmp_path / "out" / ONNX_NAME)
    links = record_pipeline(
        tmp_path / "pipe", onnx, step_signers(attested.pipeline), tmp_path / "links"
    )
    release_unchecked(hub, "1", onnx, signed, links, tmp_path)
    refuse_import(spoke, ship(hub, tmp_path, {MODEL: "1"}), AttestationError, "expired at", clock)


@pytest.mark.parametrize("signature", ["none", "pipeline-key"])
def test_layout_without_a_threshold_of_anchored_signatures_is_refused(
    attested: Attested,  # noqa: F811
    hub: HubContext,
    spoke: SpokeHome,
    clock: FixedClock,
    tmp_path: Path,
    signature: str,
) -> None:
    layout = attested.layout_unsigned
    if signature == "pipeline-key":
        md = layouts.sign(layouts.parse_layout(layout.read_bytes()), attested.pipeline)
        layout = tmp_path / "forged.layout.json"
        layout.write_bytes(layouts.layout_bytes(md))
    onnx = make_onnx_model(tmp_path / "out" / ONNX_NAME)
    links = record_pipeline(
        tmp_path / "pipe", onnx, step_signers(attested.pipeline), tmp_path / "links"
    )
    release_unchecked(hub, "1", onnx, layout, links, tmp_path)
    refuse_import(
        spoke,
        ship(hub, tmp_path, {MODEL: "1"}),
        AttestationError,
        "signed by 0 of the officers' anchored layout keys; 1 are needed",
        clock,
    )


# --- the site's policy ---------------------------------------------------------------------


def test_a_site_requiring_attestations_refuses_a_version_without_them(
    attested: Attested,  # noqa: F811
    hub: HubContext,
    spoke: SpokeHome,
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    strict = with_policy(spoke, "\n[policy]\nrequire_attestations = true\n")
    onnx = make_onnx_model(tmp_path / "out" / ONNX_NAME)
    add_model(hub, MODEL, "1", onnx)
    refuse_import(
        strict, ship(hub, tmp_path, {MODEL: "1"}), AttestationError, "requires them", clock
    )

    links = record_pipeline(
        tmp_path / "pipe", onnx, step_signers(attested.pipeline), tmp_path / "links"
    )
    add_model(hub, MODEL, "2", onnx, links=links)
    clock.advance(dt.timedelta(minutes=1))
    result = accept_import(strict, ship(hub, tmp_path, {MODEL: "2"}, "bundle-2"), clock)
    assert result.attested == ["classifier@2"]
    strict.engine.dispose()


def test_by_default_a_site_accepts_versions_without_attestations(
    hub: HubContext, spoke: SpokeHome, clock: FixedClock, tmp_path: Path
) -> None:
    add_model(hub, MODEL, "1", make_onnx_model(tmp_path / "out" / ONNX_NAME))
    result = accept_import(spoke, ship(hub, tmp_path, {MODEL: "1"}), clock)
    assert result.staged == ["classifier@1"] and result.attested == []


def test_a_misspelt_attestation_policy_fails_closed(
    hub: HubContext, spoke: SpokeHome, clock: FixedClock, tmp_path: Path
) -> None:
    strict = with_policy(spoke, '\n[policy]\nrequire_attestations = "ture"\n')
    add_model(hub, MODEL, "1", make_onnx_model(tmp_path / "out" / ONNX_NAME))
    refuse_import(
        strict, ship(hub, tmp_path, {MODEL: "1"}), UsageError, "must be true or false", clock
    )
    strict.engine.dispose()
