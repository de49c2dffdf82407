"""The hub's return-path keys and the ``x-airlock-return`` field every export carries."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pyrage
import pytest
from helpers.hubenv import HUB_PASSPHRASE, tree_digest
from helpers.identities import SiteKeys
from helpers.metricsenv import return_path_of
from securesystemslib.signer import Key
from sqlmodel import Session
from tuf.api.metadata import Metadata, Targets

from airlock.bundles.audit import KEY_FILE, home_checkpoint_key, read_checkpoint_key
from airlock.bundles.errors import ConflictError, NotFoundError, SecretError
from airlock.bundles.keys import unseal
from airlock.bundles.metrics import RETURN_FIELD, ReturnPath
from airlock.hub import trust as return_keys
from airlock.hub.context import HubContext, load_director_roots, load_site_metadata, open_hub
from airlock.hub.export import commit_export, export, plan_export
from airlock.hub.sites import add_site
from airlock.hub.trust import AGE_IDENTITY_FILE, RECIPIENT_FILE

SITE = "plant-7"


@pytest.fixture
def with_site(hub: HubContext, site: SiteKeys) -> HubContext:
    """The fresh hub with plant-7 registered (no export yet: no return-path keys)."""
    add_site(hub, site.identity)
    return hub


def shipped_return_path(bundle: Path, site: SiteKeys) -> ReturnPath:
    """The field as the site receives it: from the Director targets inside the bundle
    (in its per-site part, or its payload in format 1)."""
    [carrier] = [bundle / n for n in ("site.age", "payload.age") if (bundle / n).exists()]
    plain = pyrage.decrypt(carrier.read_bytes(), [site.age_identity])
    with tarfile.open(fileobj=io.BytesIO(plain)) as tar:
        name = next(
            n for n in tar.getnames() if n.startswith("metadata/director/") and "targets" in n
        )
        member = tar.extractfile(name)
        assert member is not None
        targets = Metadata[Targets].from_bytes(member.read())
    return ReturnPath.from_dict(targets.signed.unrecognized_fields[RETURN_FIELD])


def test_the_first_export_makes_the_keys_and_tells_the_site(
    with_site: HubContext, site: SiteKeys, tmp_path: Path
) -> None:
    home = with_site.home.root
    assert not (home / AGE_IDENTITY_FILE).exists() and read_checkpoint_key(home) is None
    export(with_site, SITE, tmp_path / "b1")

    shipped = shipped_return_path(tmp_path / "b1", site)
    recipient = (home / RECIPIENT_FILE).read_text().strip()
    assert shipped.hub_recipient == recipient
    sealed = (home / AGE_IDENTITY_FILE).read_bytes()
    assert (home / AGE_IDENTITY_FILE).stat().st_mode & 0o777 == 0o600
    assert b"AGE-SECRET-KEY" not in sealed
    identity = pyrage.x25519.Identity.from_str(unseal(sealed, HUB_PASSPHRASE, "t").decode())
    assert str(identity.to_public()) == recipient
    checkpoint_key = read_checkpoint_key(home)
    assert checkpoint_key is not None
    assert shipped.witness_name == checkpoint_key.origin
    assert shipped.witness_name.startswith("airlock/hub/")
    witness = Key.from_dict(shipped.witness_key["keyid"], dict(shipped.witness_key))
    assert witness.keyid == checkpoint_key.ref.keyid
    assert (shipped.acknowledged_sequence, shipped.acknowledged_note) == (0, "")

    director = load_director_roots(with_site).root.signed
    targets = load_site_metadata(with_site, SITE).targets
    director.verify_delegate(Targets.type, targets.signed_bytes, targets.signatures)

    # a message to the site encrypted to the shipped recipient opens with the sealed identity
    secret = pyrage.encrypt(b"metrics", [pyrage.x25519.Recipient.from_str(shipped.hub_recipient)])
    assert pyrage.decrypt(secret, [return_keys.hub_identity(with_site)]) == b"metrics"


def test_later_exports_keep_the_keys_and_do_not_resign_for_nothing(
    with_site: HubContext, site: SiteKeys, tmp_path: Path
) -> None:
    export(with_site, SITE, tmp_path / "b1")
    home = with_site.home.root
    keys = {p: (home / p).read_bytes() for p in (AGE_IDENTITY_FILE, RECIPIENT_FILE, KEY_FILE)}
    version = load_site_metadata(with_site, SITE).targets.signed.version
    export(with_site, SITE, tmp_path / "b2")
    assert {p: (home / p).read_bytes() for p in keys} == keys
    assert load_site_metadata(with_site, SITE).targets.signed.version == version
    assert shipped_return_path(tmp_path / "b2", site) == shipped_return_path(tmp_path / "b1", site)


def test_a_lost_recipient_file_is_written_again_from_the_sealed_identity(
    with_site: HubContext, tmp_path: Path
) -> None:
    export(with_site, SITE, tmp_path / "b1")
    path = with_site.home.root / RECIPIENT_FILE
    recipient = path.read_text()
    path.unlink()
    export(with_site, SITE, tmp_path / "b2")
    assert path.read_text() == recipient


def test_a_refused_export_makes_no_key(with_site: HubContext, tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    before = tree_digest(with_site.home.root)
    with pytest.raises(ConflictError):
        export(with_site, SITE, busy)
    assert tree_digest(with_site.home.root) == before
    assert not (with_site.home.root / AGE_IDENTITY_FILE).exists()
    with Session(with_site.engine) as session, pytest.raises(NotFoundError, match="no return"):
        return_keys.return_path(with_site, session, SITE)


def test_a_wrong_passphrase_makes_no_key(with_site: HubContext, tmp_path: Path) -> None:
    home = with_site.home.root
    wrong = open_hub(home, lambda _name: "not the hub passphrase")
    try:
        with pytest.raises(SecretError):
            export(wrong, SITE, tmp_path / "b1")
    finally:
        wrong.close()
    assert not (home / AGE_IDENTITY_FILE).exists() and not (home / RECIPIENT_FILE).exists()
    assert read_checkpoint_key(home) is None


def test_keys_made_by_another_command_since_the_plan_refuse_the_commit(
    with_site: HubContext, tmp_path: Path
) -> None:
    plan = plan_export(with_site, SITE)
    staged = {p.relative_to(with_site.home.root).as_posix() for p in plan.writes.paths}
    assert {AGE_IDENTITY_FILE, RECIPIENT_FILE, KEY_FILE} <= staged
    # `airlock audit checkpoint` makes the hub's checkpoint (witness) key meanwhile
    made = home_checkpoint_key(with_site.config, with_site.signers.secrets)
    with pytest.raises(ConflictError, match="return-path keys were made") as caught:
        commit_export(with_site, plan, tmp_path / "b1")
    assert "plan the export again" in caught.value.hint
    assert not (tmp_path / "b1").exists() and not (with_site.home.root / AGE_IDENTITY_FILE).exists()
    export(with_site, SITE, tmp_path / "b1")
    assert return_path_of(with_site, SITE).witness_key["keyid"] == made.ref.keyid
