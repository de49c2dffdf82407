"""The hub's in-toto layout: draft, set (threshold and expiry), and `model add --links`.

Real ceremony (alice and bob hold the anchored 1-of-2 layout keys), real
in-toto, real hub. Every refusal is audited and changes no file of the hub.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers.attestenv import (
    MODEL,
    ONNX_NAME,
    Attested,
    attested,  # noqa: F401 - the session fixture
    record_pipeline,
)
from helpers.ceremonyflow import passphrase_of, secrets_for
from helpers.hubenv import HUB_PASSPHRASE, tree_digest
from helpers.onnx_models import make_onnx_model
from securesystemslib.signer import CryptoSigner, Signer

from airlock.bundles import intoto as layouts
from airlock.bundles import tuf as tufrepo
from airlock.bundles.audit import AuditLog
from airlock.bundles.cli import main
from airlock.bundles.errors import AttestationError, ConflictError, UsageError
from airlock.ceremony.officer import OfficerKeys
from airlock.hub import intake as attestations
from airlock.hub.catalog import list_models
from airlock.hub.context import HubContext, load_image_repo, open_hub
from airlock.hub.intake import add_model, draft_layout, layout_info, release_model, set_layout

STEPS = ("train", "evaluate", "convert")


@pytest.fixture
def layout_hub(attested: Attested, tmp_path: Path) -> Iterator[HubContext]:  # noqa: F811
    """A copy of the hub with the officers' layout set."""
    opened = attested.new_hub(tmp_path / "hub")
    yield opened
    opened.close()


def last_audit(hub: HubContext) -> tuple[str, str, dict[str, object]]:
    entry = AuditLog(hub.engine, "hub").entries()[-1]
    return entry.action, entry.outcome, json.loads(entry.details)


def pipeline(attested: Attested, **others: CryptoSigner) -> dict[str, CryptoSigner]:  # noqa: F811
    return {step: others.get(step, attested.pipeline) for step in STEPS}


# --- layout set -----------------------------------------------------------------------------


def test_the_template_layout_is_current_and_signed_by_alice(
    attested: Attested,  # noqa: F811
    layout_hub: HubContext,
) -> None:
    info = layout_info(layout_hub)
    assert info is not None
    keys, threshold, _expires = tufrepo.layout_keys(load_image_repo(layout_hub).root.signed)
    assert threshold == 1 and len(keys) == 2
    assert len(info.signed_by) == 1 and info.signed_by[0] in keys
    steps = [s["name"] for s in info.summary["steps"]]
    assert steps == ["train", "evaluate", "convert", "package"]
    assert info.summary["inspections"][0]["materials"][-1] == "DISALLOW *"
    again = set_layout(layout_hub, attested.layout_signed)
    assert again.changed is False
    assert last_audit(layout_hub)[:2] == ("hub.layout.set", "unchanged")


@pytest.mark.parametrize("signature", ["none", "pipeline-key"])
def test_set_refuses_a_layout_without_a_threshold_of_anchored_signatures(
    attested: Attested,  # noqa: F811
    layout_hub: HubContext,
    tmp_path: Path,
    signature: str,
) -> None:
    layout = attested.layout_unsigned
    if signature == "pipeline-key":
        md = layouts.sign(layouts.parse_layout(layout.read_bytes()), attested.pipeline)
        layout = tmp_path / "forged.json"
        layout.write_bytes(layouts.layout_bytes(md))
    before = tree_digest(layout_hub.home.root)
    with pytest.raises(AttestationError, match="signed by 0 of the officers' anchored layout"):
        set_layout(layout_hub, layout)
    assert tree_digest(layout_hub.home.root) == before
    action, outcome, details = last_audit(layout_hub)
    assert (action, outcome, details["error"]) == ("hub.layout.set", "refused", "AttestationError")


def test_set_refuses_a_layout_outliving_the_layout_role_or_expired(
    attested: Attested,  # noqa: F811
    layout_hub: HubContext,
    tmp_path: Path,
) -> None:
    ref = attestations.package_key_ref(layout_hub)
    assert ref is not None
    role_expires = attestations.anchor(layout_hub).expires
    for name, expires, match in [
        ("long", role_expires + dt.timedelta(days=1), "after the officers' layout role"),
        ("past", attested.hub_time - dt.timedelta(minutes=1), "expired at"),
    ]:
        md = layouts.draft_layout(
            {s: [attested.pipeline.public_key] for s in STEPS}, ref.public_key, expires
        )
        md = layouts.sign(md, _alice_layout_signer(attested))
        path = tmp_path / f"{name}.json"
        path.write_bytes(layouts.layout_bytes(md))
        with pytest.raises(AttestationError, match=match):
            set_layout(layout_hub, path)
    with pytest.raises(UsageError, match="would outlive the officers' layout role"):
        draft_layout(layout_hub, {s: [attested.pipeline_pem] for s in STEPS}, 400, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def _alice_layout_signer(attested: Attested) -> Signer:  # noqa: F811
    keys = OfficerKeys.open(attested.flow.keys("alice"), "alice")
    key = keys.latest("layout")
    assert key is not None
    return keys.store(secrets_for("alice")).signer(key.ref)


def test_draft_refuses_a_step_without_functionary_and_an_existing_file(
    attested: Attested,  # noqa: F811
    layout_hub: HubContext,
    tmp_path: Path,
) -> None:
    with pytest.raises(UsageError, match="step 'convert' has no functionary key"):
        draft_layout(
            layout_hub,
            {"train": [attested.pipeline_pem], "evaluate": [attested.pipeline_pem]},
            30,
            tmp_path / "draft.json",
        )
    with pytest.raises(ConflictError, match="already exists"):
        draft_layout(
            layout_hub, {s: [attested.pipeline_pem] for s in STEPS}, 30, attested.layout_unsigned
        )


# --- model add --links ----------------------------------------------------------------------


def test_links_without_a_layout_are_refused(
    hub: HubContext, onnx_file: Path, tmp_path: Path
) -> None:
    (tmp_path / "links").mkdir()
    with pytest.raises(UsageError, match="no in-toto layout is set at the hub"):
        add_model(hub, "classifier", "1", onnx_file, links=tmp_path / "links")
    assert list_models(hub) == []
    action, outcome, _details = last_audit(hub)
    assert (action, outcome) == ("hub.model.add", "refused")


@pytest.mark.parametrize("defect", ["missing-link", "wrong-functionary", "other-bytes"])
def test_links_that_would_not_verify_at_a_site_are_refused(
    attested: Attested,  # noqa: F811
    layout_hub: HubContext,
    tmp_path: Path,
    defect: str,
) -> None:
    shipped = make_onnx_model(tmp_path / "shipped" / ONNX_NAME)
    converted = make_onnx_model(tmp_path / "converted" / ONNX_NAME, seed=9)
    signers = pipeline(attested)
    if defect == "wrong-functionary":
        signers = pipeline(attested, convert=CryptoSigner.generate_ed25519())
    source = converted if defect == "other-bytes" else shipped
    links = record_pipeline(tmp_path / "pipe", source, signers, tmp_path / "links")
    if defect == "missing-link":
        next(links.glob("train.*.link")).unlink()
    match = {
        "missing-link": "step 'train' needs 1 link",
        "wrong-functionary": "not a functionary of step 'convert'",
        "other-bytes": "does not verify",
    }[defect]
    before = tree_digest(layout_hub.home.root)
    with pytest.raises(AttestationError, match=match):
        add_model(layout_hub, MODEL, "1", shipped, links=links)
    assert list_models(layout_hub) == []
    assert tree_digest(layout_hub.home.root) == before
    assert sorted(p.name for p in layout_hub.home.tmp_dir.iterdir()) == []
    assert last_audit(layout_hub)[:2] == ("hub.model.add", "refused")


def test_re_releasing_with_the_same_links_changes_nothing(
    attested: Attested,  # noqa: F811
    layout_hub: HubContext,
    tmp_path: Path,
) -> None:
    onnx = make_onnx_model(tmp_path / "out" / ONNX_NAME)
    links = record_pipeline(tmp_path / "pipe", onnx, pipeline(attested), tmp_path / "links")
    first = release_model(layout_hub, MODEL, "1", onnx, links=links)
    again = release_model(layout_hub, MODEL, "1", onnx, links=links)
    assert first.created and not again.created
    assert set(first.model.files) == set(again.model.files)


# --- the commands ---------------------------------------------------------------------------


def run(*args: str, officer: str | None = None, stdin: str | None = None) -> Result:
    env = {"AIRLOCK_HUB_PASSPHRASE": HUB_PASSPHRASE, "COLUMNS": "200"}
    env["AIRLOCK_OFFICER_PASSPHRASE"] = passphrase_of(officer) if officer else None  # type: ignore[assignment]
    result = CliRunner(env=env).invoke(main, list(args), input=stdin, catch_exceptions=False)
    return result


def test_draft_sign_set_and_release_through_the_commands(
    attested: Attested,  # noqa: F811
    tmp_path: Path,
) -> None:
    hub = attested.new_hub(tmp_path / "hub")
    hub.close()
    home = ["--home", str(tmp_path / "hub")]
    functionaries = [a for s in STEPS for a in ("--functionary", f"{s}={attested.pipeline_pem}")]
    draft = run("hub", "layout", "draft", *home, *functionaries, "--expires-days", "20",
                "--out", str(tmp_path / "draft.json"), "--json")  # fmt: skip
    assert draft.exit_code == 0, draft.output
    content = json.loads(draft.stdout)["content_sha256"]

    declined = run("ceremony", "sign-layout", "--layout", str(tmp_path / "draft.json"),
                   "--officer", "bob", "--keys", str(attested.flow.keys("bob")),
                   "--out", str(tmp_path / "bob.json"), officer="bob", stdin="nope\n")  # fmt: skip
    assert declined.exit_code == 3 and not (tmp_path / "bob.json").exists()
    signed = run("ceremony", "sign-layout", "--layout", str(tmp_path / "draft.json"),
                 "--plan", str(attested.flow.plan), "--officer", "bob",
                 "--keys", str(attested.flow.keys("bob")), "--out", str(tmp_path / "bob.json"),
                 officer="bob", stdin=f"{content[:8]}\n")  # fmt: skip
    assert signed.exit_code == 0, signed.output + signed.stderr
    assert content in signed.output and "you sign with your layout key" in signed.output

    unsigned = run("hub", "layout", "set", *home, str(tmp_path / "draft.json"))
    assert unsigned.exit_code == 19 and "anchored layout keys" in unsigned.stderr
    installed = run("hub", "layout", "set", *home, str(tmp_path / "bob.json"), "--json")
    assert installed.exit_code == 0, installed.output + installed.stderr
    report = json.loads(installed.stdout)
    assert report["changed"] and report["content_sha256"] == content
    shown = json.loads(run("hub", "layout", "show", *home, "--json").stdout)
    assert shown["sha256"] == report["sha256"]

    onnx = make_onnx_model(tmp_path / "out" / ONNX_NAME)
    links = record_pipeline(tmp_path / "pipe", onnx, pipeline(attested), tmp_path / "links")
    added = run("hub", "model", "add", *home, MODEL, "1", str(onnx), "--links", str(links),
                "--json")  # fmt: skip
    assert added.exit_code == 0, added.output + added.stderr
    kinds = sorted(f["kind"] for f in json.loads(added.stdout)["files"])
    assert kinds == ["layout", "link", "link", "link", "link", "model"]


def test_links_verify_from_a_relative_hub_home(
    attested: Attested,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """in-toto verifies after a chdir: a hub opened by a relative path must still find its files."""
    attested.new_hub(tmp_path / "hub").close()
    onnx = make_onnx_model(tmp_path / "out" / ONNX_NAME)
    record_pipeline(tmp_path / "pipe", onnx, pipeline(attested), tmp_path / "links")
    monkeypatch.chdir(tmp_path)
    result = run(
        "hub", "model", "add", "--home", "hub", "--links", "links", MODEL, "1", f"out/{ONNX_NAME}"
    )
    assert result.exit_code == 0, result.output
    hub = open_hub(tmp_path / "hub", lambda _name: HUB_PASSPHRASE)
    try:
        (released,) = list_models(hub)
    finally:
        hub.close()
    kinds = sorted(f.kind for f in released.files)
    assert kinds == ["layout", "link", "link", "link", "link", "model"]
