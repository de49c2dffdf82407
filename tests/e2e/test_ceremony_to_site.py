"""The multi-officer ceremony end to end: officers → hub → site, then a revocation.

Three officers run the initial ceremony on their own key directories; the hub
is built from its output and a site imports a bundle under roots v1. Two
rotation ceremonies follow (bob's Image root key revoked, then carol's
Director root key replaced); the hub adopts roots 2 and 3 in one update, and
the site, still on v1, walks 1 → 2 → 3. A root signed by the revoked key is
then refused at that site.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from helpers.bundlecraft import forge_bundle, with_next_root
from helpers.ceremonyflow import run_ceremony, secrets_for
from helpers.hubenv import CEREMONY_TIME, hub_secrets
from helpers.onnx_models import make_onnx_model
from helpers.spokeenv import (
    SITE_ID,
    SITE_PASSPHRASE,
    accept_import,
    refuse_import,
    site_secrets,
)

from airlock.bundles import tuf as tufrepo
from airlock.bundles.clock import FixedClock
from airlock.bundles.errors import SignatureError
from airlock.bundles.keys import KeyStore
from airlock.ceremony.documents import load_history
from airlock.ceremony.officer import OfficerKeys, read_offer
from airlock.ceremony.roots import next_root, sign_new_root
from airlock.hub.export import assign, export, plan_export
from airlock.hub.intake import add_model
from airlock.hub.sites import add_site_from_file
from airlock.hub.trust import init_hub, update_trust
from airlock.spoke.site import IDENTITY_FILE, SpokeHome, init_spoke
from airlock.spoke.status import read_status


def test_officers_rotate_and_revoke_and_the_site_follows(tmp_path: Path) -> None:
    clock = FixedClock(CEREMONY_TIME)
    first = run_ceremony(tmp_path, clock, "first")
    hub_clock = FixedClock(clock.now() + dt.timedelta(minutes=1))
    spoke_home = tmp_path / "spoke"
    init_spoke(
        spoke_home,
        SITE_ID,
        first.out() / "image" / "1.root.json",
        first.out() / "director" / "1.root.json",
        SITE_PASSPHRASE,
        clock=hub_clock,
    )
    hub = init_hub(tmp_path / "hub", first.out(), hub_secrets, clock=hub_clock)
    spoke = SpokeHome(spoke_home, site_secrets)
    try:
        add_site_from_file(hub, spoke_home / IDENTITY_FILE)
        add_model(hub, "classifier", "1", make_onnx_model(tmp_path / "m" / "classifier.onnx"))
        assign(hub, SITE_ID, "classifier", "1")
        export(hub, SITE_ID, tmp_path / "bundle-1")
        spoke_clock = FixedClock(hub_clock.now() + dt.timedelta(minutes=5))
        accept_import(spoke, tmp_path / "bundle-1", spoke_clock)
        assert read_status(spoke).to_dict()["trusted_roots"] == {"image": 1, "director": 1}

        revoked = read_offer(first.offers["bob"])[0].key_for("image-root").keyid
        second = run_ceremony(
            tmp_path,
            clock,
            "second",
            rotate_from=first.out(),
            revoke=[revoked],
            new_keys={"bob": ["image-root"]},
        )
        third = run_ceremony(
            tmp_path,
            clock,
            "third",
            rotate_from=second.out(),
            new_keys={"carol": ["director-root"]},
        )
        hub_clock.advance(clock.now() - hub_clock.now() + dt.timedelta(minutes=1))
        update_trust(hub, third.out())
        export(hub, SITE_ID, tmp_path / "bundle-2")
        spoke_clock.advance(hub_clock.now() - spoke_clock.now() + dt.timedelta(minutes=5))
        accept_import(spoke, tmp_path / "bundle-2", spoke_clock)
        assert read_status(spoke).to_dict()["trusted_roots"] == {"image": 3, "director": 3}

        # bob's revoked key, from his own key directory, cannot sign root v4 alone
        bob = OfficerKeys.open(second.keys("bob"), "bob")
        old_key = bob.by_keyid()[revoked].ref
        signer = KeyStore(bob.directory, secrets_for("bob")).signer(old_key)
        current = load_history(third.out()).image.current
        assert revoked not in current.signed.keys
        forged = sign_new_root(current, next_root(current.signed), [signer])
        plan = plan_export(hub, SITE_ID)
        forge_bundle(
            hub,
            plan,
            tmp_path / "bundle-forged",
            metadata=with_next_root(plan.metadata, tufrepo.IMAGE, tufrepo.to_bytes(forged)),
        )
        refuse_import(
            spoke, tmp_path / "bundle-forged", SignatureError, "not signed by a threshold"
        )
        assert read_status(spoke).to_dict()["trusted_roots"] == {"image": 3, "director": 3}
    finally:
        hub.close()
        spoke.engine.dispose()
