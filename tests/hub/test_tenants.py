"""Tenants: each model family belongs to one tenant, whose own role and key sign it."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers.hubenv import HUB_PASSPHRASE, tree_digest
from helpers.identities import SiteKeys
from helpers.onnx_models import make_onnx_model
from helpers.tenantkeys import TENANT_PASSPHRASE, TenantSecrets, make_tenant_key
from securesystemslib.signer import Key, Signer
from sqlmodel import Session

from airlock.bundles import tuf as tufrepo
from airlock.bundles.audit import AuditLog, verify_engine
from airlock.bundles.cli import main
from airlock.bundles.clock import FixedClock
from airlock.bundles.db import make_engine
from airlock.bundles.errors import ConflictError, NotFoundError, SecretError, TrustError, UsageError
from airlock.bundles.models import ModelFile, ModelVersion
from airlock.ceremony.minimal import CeremonyResult
from airlock.hub import repos as image_repo
from airlock.hub import repos as signing
from airlock.hub.catalog import list_models
from airlock.hub.context import HubContext, load_image_repo, online_signer, open_hub
from airlock.hub.export import assign, commit_export, plan_export
from airlock.hub.intake import add_model
from airlock.hub.repos import verify_delegations
from airlock.hub.sites import (
    DEFAULT_TENANT,
    add_site,
    add_tenant,
    family_tenants,
    hub_status,
    list_tenants,
    tenant_signer,
)


def _signer(hub: HubContext, tenant: str) -> Signer:
    with Session(hub.engine) as session:
        return tenant_signer(hub, session, tenant)


def _audit(hub: HubContext) -> list[tuple[str, str, str | None]]:
    return [(e.action, e.outcome, e.object) for e in AuditLog(hub.engine, "hub").entries()[1:]]


def test_tenant_add_makes_a_hub_held_key_and_list_shows_the_families(
    hub: HubContext, onnx_file: Path, tmp_path: Path
) -> None:
    acme = add_tenant(hub, "acme")
    assert (acme.name, acme.held_by, acme.role) == ("acme", "hub", "tenant-acme")
    assert acme.key_uri == "airlock-file:tenant-keys/acme.pem"
    key_file = hub.home.root / "tenant-keys" / "acme.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in key_file.read_bytes()
    assert load_image_repo(hub).tenants == {}  # the role appears with the tenant's first family

    held = make_tenant_key(tmp_path / "globex-operator")
    globex = add_tenant(hub, "globex", held.uri, held.public_key)
    assert (globex.held_by, globex.keyid, globex.key_uri) == (
        "tenant",
        held.public_key.keyid,
        held.uri,
    )
    assert not (hub.home.root / "tenant-keys" / "globex.pem").exists()

    add_model(hub, "classifier", "1", onnx_file, tenant="acme")
    add_model(hub, "detector", "1", onnx_file)  # no tenant: `default`, created on first use
    listed = {t.name: t for t in list_tenants(hub)}
    assert list(listed) == ["acme", "default", "globex"]
    assert listed["acme"].families == ("classifier",)
    assert listed["default"].families == ("detector",)
    assert listed["default"].held_by == "hub" and listed["globex"].families == ()
    assert listed["acme"].to_dict()["families"] == ["classifier"]

    entries = AuditLog(hub.engine, "hub").entries()
    added = [json.loads(e.details) for e in entries if e.action == "hub.tenant.add"]
    assert [(d["tenant"], d["held_by"]) for d in added] == [("acme", "hub"), ("globex", "tenant")]
    release = json.loads(entries[-1].details)
    assert release["tenant"] == DEFAULT_TENANT and release["new_family"] is True
    assert "new_tenant_keyid" in release
    assert verify_engine(hub.engine).ok


def test_two_tenants_sign_their_families_in_their_own_roles(
    hub: HubContext, onnx_file: Path, onnx_dir: Path, tmp_path: Path
) -> None:
    add_tenant(hub, "acme")
    add_tenant(hub, "globex")
    add_model(hub, "classifier", "1", onnx_file, tenant="acme")
    add_model(hub, "segmenter", "1", onnx_file, tenant="acme")
    add_model(hub, "detector", "1", onnx_dir, tenant="globex")
    c2 = make_onnx_model(tmp_path / "c2" / "classifier.onnx", seed=2)
    add_model(hub, "classifier", "2", c2)  # no tenant: the family's own

    repo = load_image_repo(hub)
    verify_delegations(repo)  # root → targets → models → tenant-acme, tenant-globex
    delegations = repo.models.signed.delegations
    assert delegations is not None and delegations.roles is not None
    acme, globex = delegations.roles["tenant-acme"], delegations.roles["tenant-globex"]
    assert acme.paths == ["classifier/*/*", "segmenter/*/*"] and acme.terminating
    assert globex.paths == ["detector/*/*"] and globex.terminating
    assert acme.keyids == [_signer(hub, "acme").public_key.keyid]
    assert globex.keyids == [_signer(hub, "globex").public_key.keyid]
    assert acme.keyids != globex.keyids
    assert sorted(repo.tenants["acme"].signed.targets) == [
        "classifier/1/classifier.onnx",
        "classifier/2/classifier.onnx",
        "segmenter/1/classifier.onnx",
    ]
    assert {p.split("/")[0] for p in repo.tenants["globex"].signed.targets} == {"detector"}
    assert repo.snapshot is not None
    assert {"tenant-acme.json", "tenant-globex.json"} <= set(repo.snapshot.signed.meta)
    assert family_tenants(hub) == {
        "classifier": "acme",
        "segmenter": "acme",
        "detector": "globex",
    }
    status = hub_status(hub)
    assert {"image tenant-acme", "image tenant-globex"} <= set(status["roles"])
    assert {(m["name"], m["tenant"]) for m in status["models"]} == {
        ("classifier", "acme"),
        ("segmenter", "acme"),
        ("detector", "globex"),
    }
    assert [t["name"] for t in status["tenants"]] == ["acme", "globex"]


def test_releasing_into_a_family_of_another_tenant_is_refused(
    hub: HubContext, onnx_file: Path, tmp_path: Path
) -> None:
    add_tenant(hub, "acme")
    add_tenant(hub, "globex")
    add_model(hub, "classifier", "1", onnx_file, tenant="acme")
    before = tree_digest(hub.home.root)
    c2 = make_onnx_model(tmp_path / "c2" / "classifier.onnx", seed=2)
    with pytest.raises(ConflictError, match="belongs to tenant 'acme', not 'globex'") as caught:
        add_model(hub, "classifier", "2", c2, tenant="globex")
    assert "--tenant acme" in caught.value.hint
    with pytest.raises(ConflictError, match="belongs to tenant 'acme'"):
        add_model(hub, "classifier", "1", onnx_file, tenant="globex")  # even a re-release
    with pytest.raises(ConflictError, match="belongs to tenant 'acme'"):
        add_model(hub, "classifier", "2", c2, tenant=DEFAULT_TENANT)
    assert tree_digest(hub.home.root) == before
    assert [m.ref for m in list_models(hub)] == ["classifier@1"]
    assert family_tenants(hub) == {"classifier": "acme"}
    assert [o for _, o, _ in _audit(hub)][-3:] == ["refused"] * 3
    assert list(hub.home.tmp_dir.iterdir()) == []


def test_a_new_family_of_an_unknown_tenant_or_a_bad_name_is_refused(
    hub: HubContext, onnx_file: Path
) -> None:
    before = tree_digest(hub.home.root)
    with pytest.raises(NotFoundError, match="tenant 'acme' does not exist") as caught:
        add_model(hub, "classifier", "1", onnx_file, tenant="acme")
    assert "airlock hub tenant add acme" in caught.value.hint
    with pytest.raises(UsageError, match="invalid tenant name"):
        add_model(hub, "classifier", "1", onnx_file, tenant="../acme")
    with pytest.raises(UsageError, match="invalid tenant name"):
        add_tenant(hub, "a/b")
    assert tree_digest(hub.home.root) == before
    assert list_models(hub) == [] and list_tenants(hub) == []


def test_tenant_add_refusals(hub: HubContext, tmp_path: Path) -> None:
    add_tenant(hub, "acme")
    held = make_tenant_key(tmp_path / "operator")
    add_tenant(hub, "globex", held.uri, held.public_key)
    before = tree_digest(hub.home.root)
    with pytest.raises(ConflictError, match="tenant 'acme' already exists"):
        add_tenant(hub, "acme")
    with pytest.raises(ConflictError, match="already the key of tenant 'globex'"):
        add_tenant(hub, "initech", held.uri, held.public_key)
    relabelled = Key.from_dict("a-new-label", held.public_key.to_dict())
    with pytest.raises(ConflictError, match="already the key of tenant 'globex'"):
        add_tenant(hub, "initech", held.uri, relabelled)  # same key material, other key id
    acme_key = _signer(hub, "acme").public_key
    with pytest.raises(ConflictError, match="already the key of tenant 'acme'"):
        add_tenant(hub, "initech", held.uri, acme_key)
    models_key = online_signer(hub, signing.IMAGE_MODELS).public_key
    with pytest.raises(ConflictError, match="the hub's or the ceremony's keys"):
        add_tenant(hub, "initech", held.uri, models_key)
    with pytest.raises(UsageError, match="needs its public key"):
        add_tenant(hub, "initech", held.uri)
    with pytest.raises(UsageError, match="without a key URI"):
        add_tenant(hub, "initech", None, held.public_key)
    with pytest.raises(UsageError, match="no signer handles"):
        add_tenant(hub, "initech", "nope:key", make_tenant_key(tmp_path / "o2").public_key)
    assert tree_digest(hub.home.root) == before
    assert [t.name for t in list_tenants(hub)] == ["acme", "globex"]
    assert [o for a, o, _ in _audit(hub) if a == "hub.tenant.add"] == [
        "success",
        "success",
        *["refused"] * 8,
    ]


def test_a_tenant_held_key_is_opened_with_the_tenants_own_secret(
    hub: HubContext, onnx_file: Path, tmp_path: Path
) -> None:
    held = make_tenant_key(tmp_path / "initech-operator")
    add_tenant(hub, "initech", held.uri, held.public_key)
    before = tree_digest(hub.home.root)

    # The test hub answers every question with the hub passphrase: it cannot sign for initech.
    with pytest.raises(SecretError, match="cannot open the key of tenant 'initech'"):
        add_model(hub, "forecaster", "1", onnx_file, tenant="initech")
    assert tree_digest(hub.home.root) == before and list_models(hub) == []

    secrets = TenantSecrets(initech=TENANT_PASSPHRASE)
    operated = open_hub(hub.home.root, secrets, clock=hub.clock)
    try:
        add_model(operated, "forecaster", "1", onnx_file, tenant="initech")
        repo = load_image_repo(operated)
    finally:
        operated.close()
    assert "tenant:initech:passphrase" in secrets.asked
    verify_delegations(repo)
    role = repo.tenants["initech"]
    assert [s.keyid for s in role.signatures.values()] == [held.public_key.keyid]
    assert list(role.signed.targets) == ["forecaster/1/classifier.onnx"]
    assert not list((hub.home.root / "tenant-keys").iterdir())  # the hub holds no copy


def test_an_export_re_signs_an_expiring_tenant_held_role_with_the_tenants_secret(
    hub: HubContext, clock: FixedClock, site: SiteKeys, onnx_file: Path, tmp_path: Path
) -> None:
    held = make_tenant_key(tmp_path / "initech-operator")
    add_tenant(hub, "initech", held.uri, held.public_key)
    add_site(hub, site.identity)
    secrets = TenantSecrets(initech=TENANT_PASSPHRASE)
    operated = open_hub(hub.home.root, secrets, clock=clock)
    try:
        add_model(operated, "forecaster", "1", onnx_file, tenant="initech")
        assign(operated, "plant-7", "forecaster", "1")
        clock.advance(dt.timedelta(days=80))  # tenant roles are 90-day online roles
        with pytest.raises(SecretError, match="tenant 'initech'"):
            plan_export(hub, "plant-7")  # knows only the hub passphrase
        secrets.asked.clear()
        plan = plan_export(operated, "plant-7")
        assert "tenant-initech" in plan.resigned
        assert secrets.asked == []  # the key was opened once, for the release
        envelope = commit_export(operated, plan, tmp_path / "bundle")
        repo = load_image_repo(operated)
    finally:
        operated.close()
    verify_delegations(repo)
    assert tufrepo.signed_expires(repo.tenants["initech"].signed) > envelope.expires


def test_verify_delegations_catches_a_role_signed_by_the_wrong_tenant(
    hub: HubContext, onnx_file: Path
) -> None:
    add_tenant(hub, "acme")
    add_tenant(hub, "globex")
    add_model(hub, "classifier", "1", onnx_file, tenant="acme")
    add_model(hub, "detector", "1", onnx_file, tenant="globex")

    resigned = load_image_repo(hub)
    tufrepo.sign_with(resigned.tenants["acme"], [_signer(hub, "globex")])
    with pytest.raises(TrustError, match="tenant-acme does not verify"):
        verify_delegations(resigned)

    smuggled = load_image_repo(hub)
    globex = smuggled.tenants["globex"]
    stolen = ModelVersion(
        "classifier", "9", (ModelFile("classifier.onnx", "0" * 64, 10, primary=True),)
    )
    for target in image_repo.image_targets(stolen):
        globex.signed.targets[target.path] = target
    tufrepo.sign_with(globex, [_signer(hub, "globex")])
    with pytest.raises(TrustError, match="tenant-globex signs targets outside its paths"):
        verify_delegations(smuggled)


# --- the command line ---------------------------------------------------------------------------


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Result]:
    """Runs `airlock hub ARGS…` in ``tmp_path`` with the hub passphrase and home set."""
    monkeypatch.setenv("AIRLOCK_HUB_PASSPHRASE", HUB_PASSPHRASE)
    monkeypatch.setenv("AIRLOCK_HUB_HOME", str(tmp_path / "hub-home"))
    monkeypatch.delenv("AIRLOCK_TENANT_SECRET_INITECH", raising=False)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args: str, expect: int = 0, stdin: str | None = None) -> Result:
        result = runner.invoke(main, ["hub", *args], input=stdin, catch_exceptions=False)
        assert result.exit_code == expect, result.output + result.stderr
        return result

    return run


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def test_tenant_commands_and_model_add_with_tenant(
    cli: Callable[..., Result],
    ceremony: CeremonyResult,
    onnx_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cli("init", "--from", str(ceremony.out_dir))
    acme = json.loads(cli("tenant", "add", "acme", "--json").stdout)
    assert (acme["name"], acme["held_by"], acme["role"]) == ("acme", "hub", "tenant-acme")

    # The tenant's operator makes their key with stock OpenSSL and hands over the public half.
    operator = tmp_path / "initech-operator"
    operator.mkdir()
    _openssl(
        "genpkey", "-algorithm", "ed25519", "-aes-256-cbc",
        "-pass", f"pass:{TENANT_PASSPHRASE}", "-out", str(operator / "key.pem"),
    )  # fmt: skip
    _openssl(
        "pkey", "-in", str(operator / "key.pem"), "-passin", f"pass:{TENANT_PASSPHRASE}",
        "-pubout", "-out", str(operator / "key.pub.pem"),
    )  # fmt: skip
    added = cli(
        "tenant", "add", "initech",
        "--key-uri", "airlock-file:initech-operator/key.pem",
        "--public-key", "initech-operator/key.pub.pem",
    )  # fmt: skip
    assert "tenant initech added" in added.stdout and "held by tenant" in added.stdout
    listed = {t["name"]: t for t in json.loads(cli("tenant", "list", "--json").stdout)}
    assert listed["initech"]["key_uri"] == f"airlock-file:{operator / 'key.pem'}"
    assert listed["initech"]["held_by"] == "tenant"

    model = json.loads(
        cli("model", "add", "classifier", "1", str(onnx_file), "--tenant", "acme", "--json").stdout
    )
    assert model["tenant"] == "acme" and model["created"] is True
    prompted = cli(
        "model", "add", "forecaster", "1", str(onnx_file), "--tenant", "initech",
        stdin=f"{TENANT_PASSPHRASE}\n",
    )  # fmt: skip
    assert "Tenant initech's key passphrase" in prompted.stderr
    assert "released forecaster@1 (tenant initech)" in prompted.stdout
    monkeypatch.setenv("AIRLOCK_TENANT_SECRET_INITECH", TENANT_PASSPHRASE)
    cli("model", "add", "forecaster", "2", str(make_onnx_model(tmp_path / "f2" / "f.onnx", seed=4)))
    monkeypatch.setenv("AIRLOCK_TENANT_SECRET_INITECH", "not the tenant's passphrase")
    wrong = cli("model", "add", "forecaster", "3", str(onnx_file), expect=4)
    assert "cannot open the key of tenant 'initech'" in wrong.stderr

    refused = cli(
        "model", "add", "classifier", "2", str(onnx_file), "--tenant", "initech", expect=3
    )
    assert "belongs to tenant 'acme', not 'initech'" in refused.stderr
    unknown = cli("model", "add", "other", "1", str(onnx_file), "--tenant", "nobody", expect=3)
    assert "tenant 'nobody' does not exist" in unknown.stderr
    cli("tenant", "add", "initech", expect=3)
    cli("tenant", "add", "x", "--public-key", str(operator / "key.pub.pem"), expect=3)

    models = json.loads(cli("model", "list", "--json").stdout)
    assert [(m["name"], m["version"], m["tenant"]) for m in models] == [
        ("classifier", "1", "acme"),
        ("forecaster", "1", "initech"),
        ("forecaster", "2", "initech"),
    ]
    listing = cli("tenant", "list").stdout
    assert "classifier" in listing and "forecaster" in listing
    assert "acme" in cli("model", "list").stdout
    status = cli("status").stdout
    assert "image tenant-acme" in status and "image tenant-initech" in status

    engine = make_engine(f"sqlite:///{tmp_path / 'hub-home' / 'hub.db'}")
    actions = [(e.action, e.outcome) for e in AuditLog(engine, "hub").entries()]
    assert verify_engine(engine).ok
    engine.dispose()
    assert actions[1:3] == [("hub.tenant.add", "success"), ("hub.tenant.add", "success")]
    assert ("hub.tenant.add", "refused") in actions


def test_a_missing_tenant_secret_without_a_terminal_names_the_variable(
    hub: HubContext, onnx_file: Path, tmp_path: Path
) -> None:
    held = make_tenant_key(tmp_path / "initech-operator")
    add_tenant(hub, "initech", held.uri, held.public_key)
    hub.close()
    env = {k: None for k in os.environ if k.startswith("AIRLOCK_")}
    env.update({"AIRLOCK_HUB_PASSPHRASE": HUB_PASSPHRASE, "AIRLOCK_PRINCIPAL": "release"})
    args = ["hub", "model", "add", "forecaster", "1", str(onnx_file), "--tenant", "initech"]
    result = CliRunner().invoke(main, [*args, "--home", str(hub.home.root)], env=env, input="")
    assert result.exit_code == SecretError.exit_code, result.output
    assert "Abort" not in result.output
    error = next(line for line in result.stderr.splitlines() if line.startswith("error: "))
    assert "cannot open the key of tenant 'initech'" in error
    assert "  what to do: " in result.stderr
    assert "set AIRLOCK_TENANT_SECRET_INITECH" in result.stderr
