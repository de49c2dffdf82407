"""Tenants end to end: one tenant's key cannot sign another tenant's models at the site.

The hub delegates ``tenant-acme`` (``segmenter/*/*``) and ``tenant-globex``
(``counter/*/*``) from ``models``. The attacks are made with real keys:
globex's tenant key (which a dishonest tenant holds) signs what it must not,
and the hub's own online keys re-sign snapshot, timestamp and Director targets
around it, so only the TUF delegation stands in the way at the spoke.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers.bundlecraft import forge_bundle, resign_director, resign_image_role, sha256_hex
from helpers.onnx_models import make_onnx_model
from helpers.spokeenv import SITE_ID, accept_import, refuse_import
from helpers.tenantkeys import TENANT_PASSPHRASE, TenantSecrets, make_tenant_key
from securesystemslib.signer import Signer
from sqlmodel import Session
from tuf.api.metadata import Metadata, Targets

from airlock.bundles import tuf as tufrepo
from airlock.bundles.bundle import BlobSource
from airlock.bundles.clock import FixedClock
from airlock.bundles.errors import AirlockError, IntegrityError, SignatureError, TrustError
from airlock.bundles.models import ModelFile, ModelVersion
from airlock.hub import repos as image_repo
from airlock.hub.context import HubContext, load_image_repo, open_hub
from airlock.hub.export import assign, export, plan_export
from airlock.hub.intake import add_model
from airlock.hub.repos import verify_delegations
from airlock.hub.sites import add_tenant, tenant_signer
from airlock.spoke.site import SpokeHome

SEGMENTER = "segmenter/1/segmenter.onnx"


@dataclass(frozen=True)
class Tenanted:
    """The copied hub with two tenants, one family each, both assigned to the site."""

    hub: HubContext
    evil_model: Path

    def signer(self, tenant: str) -> Signer:
        with Session(self.hub.engine) as session:
            return tenant_signer(self.hub, session, tenant)


@pytest.fixture
def tenanted(hub: HubContext, tmp_path: Path) -> Tenanted:
    add_tenant(hub, "acme")
    add_tenant(hub, "globex")
    src = tmp_path / "src"
    add_model(
        hub,
        "segmenter",
        "1",
        make_onnx_model(src / "s1" / "segmenter.onnx", seed=11),
        tenant="acme",
    )
    add_model(
        hub, "counter", "1", make_onnx_model(src / "c1" / "counter.onnx", seed=12), tenant="globex"
    )
    assign(hub, SITE_ID, "segmenter", "1")
    assign(hub, SITE_ID, "counter", "1")
    verify_delegations(load_image_repo(hub))
    evil = make_onnx_model(src / "evil" / "segmenter.onnx", seed=13)
    return Tenanted(hub, evil)


def test_models_of_two_tenants_are_accepted(
    tenanted: Tenanted, spoke: SpokeHome, media: Path
) -> None:
    export(tenanted.hub, SITE_ID, media / "bundle")
    result = accept_import(spoke, media / "bundle")
    assert sorted(result.staged) == ["classifier@1", "counter@1", "detector@1", "segmenter@1"]


def test_a_tenant_role_signed_by_another_tenants_key_is_refused(
    tenanted: Tenanted, spoke: SpokeHome, media: Path
) -> None:
    """globex's key signs acme's role (same content): the delegation names acme's key only."""
    plan = plan_export(tenanted.hub, SITE_ID)
    forged = resign_image_role(
        tenanted.hub, plan.metadata, tufrepo.tenant_role("acme"), [tenanted.signer("globex")]
    )
    forge_bundle(tenanted.hub, plan, media / "bundle", metadata=forged)
    error = refuse_import(spoke, media / "bundle", SignatureError, "not signed by a threshold")
    assert "tenant-acme" in error.message


def _evil_version(path: Path, version: str) -> ModelVersion:
    data = path.read_bytes()
    file = ModelFile(path.name, sha256_hex(data), len(data), primary=True)
    return ModelVersion("segmenter", version, (file,))


@pytest.mark.parametrize(
    ("version", "expected", "match"),
    [
        pytest.param("2", TrustError, "which the Image repository does not sign", id="new-version"),
        pytest.param("1", IntegrityError, "length or hashes differ", id="replaced-bytes"),
    ],
)
def test_another_tenants_role_cannot_sign_a_model_of_this_tenants_family(
    tenanted: Tenanted,
    spoke: SpokeHome,
    media: Path,
    version: str,
    expected: type[AirlockError],
    match: str,
) -> None:
    """globex's role, signed with globex's real key, lists a segmenter version (acme's family).

    The Director (re-signed with the hub's real key) assigns exactly those
    bytes. The spoke looks for ``segmenter/…`` only in ``tenant-acme``, the
    role delegated ``segmenter/*/*`` (terminating): a new version is not
    signed there at all, and for version 1 acme's signed hash is not the
    attacker's.
    """
    hub = tenanted.hub
    evil = _evil_version(tenanted.evil_model, version)
    [evil_target] = image_repo.image_targets(evil)

    def smuggle(targets: Targets) -> None:
        targets.targets[evil_target.path] = evil_target

    def assign_evil(targets: Targets) -> None:
        for path in [p for p in targets.targets if p.startswith("segmenter/")]:
            del targets.targets[path]
        director = image_repo.image_targets(evil)[0]
        director.unrecognized_fields["custom"] = tufrepo.director_custom(
            SITE_ID, evil, tenanted.evil_model.name
        )
        targets.targets[director.path] = director

    plan = plan_export(hub, SITE_ID)
    forged = resign_image_role(
        hub, plan.metadata, tufrepo.tenant_role("globex"), [tenanted.signer("globex")], smuggle
    )
    forged = resign_director(hub, forged, assign_evil)
    [evil_file] = evil.files
    blobs = [
        *plan.blobs,
        BlobSource(sha256=evil_file.sha256, path=tenanted.evil_model, length=evil_file.length),
    ]
    forge_bundle(hub, plan, media / "bundle", metadata=forged, blobs=blobs)
    globex_role = next(d for n, d in forged if n.endswith(".tenant-globex.json"))
    assert evil_target.path in Metadata[Targets].from_bytes(globex_role).signed.targets
    error = refuse_import(spoke, media / "bundle", expected, match)
    assert f"segmenter/{version}/segmenter.onnx" in error.message


def test_a_tenant_held_key_signs_its_role_and_the_site_accepts_it(
    hub: HubContext, hub_clock: FixedClock, spoke: SpokeHome, media: Path, tmp_path: Path
) -> None:
    """initech keeps its key outside the hub home, under its own passphrase."""
    held = make_tenant_key(tmp_path / "initech-operator")
    add_tenant(hub, "initech", held.uri, held.public_key)
    secrets = TenantSecrets(initech=TENANT_PASSPHRASE)
    operated = open_hub(hub.home.root, secrets, clock=hub_clock)
    try:
        model = make_onnx_model(tmp_path / "src" / "forecaster.onnx", seed=21)
        add_model(operated, "forecaster", "1", model, tenant="initech")
        assign(operated, SITE_ID, "forecaster", "1")
        export(operated, SITE_ID, media / "bundle")
        role = load_image_repo(operated).tenants["initech"]
    finally:
        operated.close()
    assert "tenant:initech:passphrase" in secrets.asked
    assert [s.keyid for s in role.signatures.values()] == [held.public_key.keyid]
    assert sorted(p.name for p in (hub.home.root / "tenant-keys").iterdir()) == ["default.pem"]

    result = accept_import(spoke, media / "bundle")
    assert "forecaster@1" in result.staged


def test_a_tenant_held_role_forged_with_the_hubs_key_is_refused(
    hub: HubContext, spoke: SpokeHome, media: Path, tmp_path: Path
) -> None:
    """Even the hub's own tenant key (default's) cannot stand in for a tenant-held key."""
    held = make_tenant_key(tmp_path / "initech-operator")
    add_tenant(hub, "initech", held.uri, held.public_key)
    secrets = TenantSecrets(initech=TENANT_PASSPHRASE)
    operated = open_hub(hub.home.root, secrets, clock=hub.clock)
    try:
        model = make_onnx_model(tmp_path / "src" / "forecaster.onnx", seed=21)
        add_model(operated, "forecaster", "1", model, tenant="initech")
        assign(operated, SITE_ID, "forecaster", "1")
    finally:
        operated.close()
    plan = plan_export(hub, SITE_ID)
    with Session(hub.engine) as session:
        default_signer = tenant_signer(hub, session, "default")
    forged = resign_image_role(hub, plan.metadata, tufrepo.tenant_role("initech"), [default_signer])
    forge_bundle(hub, plan, media / "bundle", metadata=forged)
    refuse_import(spoke, media / "bundle", SignatureError, "tenant-initech")
