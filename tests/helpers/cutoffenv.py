"""A site cut off from the hub: its last bundle, then months with no contact (a fake clock).

:func:`build_cutoff_site` runs a real ceremony whose offline roles live
``ROOT_DAYS`` (long enough that the roots are still valid a year after the
last bundle), a real hub that releases ``iris@1`` (validation set and
compatibility record, as :mod:`helpers.fleetenv` does) and exports one bundle
to the site with the default 30-day transit budget, and a real spoke that
imports it. Tests copy the spoke template and move the spoke's and nodes'
clocks ``N`` days after :attr:`CutoffSite.last_bundle`.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path

from airlock.bundles.clock import FixedClock
from airlock.ceremony.minimal import run_minimal_ceremony
from airlock.ceremony.roots import CeremonyOptions
from airlock.hub.sites import add_site_from_file
from airlock.spoke.site import IDENTITY_FILE, SpokeHome, init_spoke
from helpers.gatemodels import GateModel, classification, release, ship, site_compatibility
from helpers.hubenv import CEREMONY_TIME, HUB_PASSPHRASE, HUB_TIME, OFFICER_PASSPHRASE, make_hub
from helpers.spokeenv import SITE_ID, SITE_PASSPHRASE, SPOKE_INIT_TIME, accept_import, site_secrets

ROOT_DAYS = 800
"""Lifetime of the Image root and targets of the cut-off site's ceremony."""


@dataclass(frozen=True)
class CutoffSite:
    """Template spoke that imported one bundle carrying ``iris@1`` at :attr:`last_bundle`."""

    spoke_template: Path
    last_bundle: dt.datetime

    def new_spoke(self, dest: Path) -> SpokeHome:
        """A copy of the template spoke at ``dest``."""
        shutil.copytree(self.spoke_template, dest, symlinks=True)
        return SpokeHome(dest, site_secrets)


def build_cutoff_site(base: Path, iris: GateModel, shift: dt.timedelta) -> CutoffSite:
    """Builds the templates under ``base``, every clock ``shift`` earlier than the usual ones.

    Shifting into the past keeps every moment a test visits (up to a year
    after the last bundle) before the real now, so nothing can pass by
    reading the system clock instead of the injected one.
    """
    options = CeremonyOptions(root_expiry_days=ROOT_DAYS, targets_expiry_days=ROOT_DAYS)
    ceremony = run_minimal_ceremony(
        base / "ceremony",
        OFFICER_PASSPHRASE,
        HUB_PASSPHRASE,
        options,
        clock=FixedClock(CEREMONY_TIME - shift),
    )
    spoke_home = base / "spoke"
    init_spoke(
        spoke_home,
        SITE_ID,
        ceremony.image_root,
        ceremony.director_root,
        SITE_PASSPHRASE,
        clock=FixedClock(SPOKE_INIT_TIME - shift),
    )
    clock = FixedClock(HUB_TIME - shift)
    hub = make_hub(base / "hub", ceremony.out_dir, clock)
    spoke = SpokeHome(spoke_home, site_secrets)
    try:
        add_site_from_file(hub, spoke_home / IDENTITY_FILE)
        release(
            hub, "iris", "1", iris.path, iris.sets["good"], classification(), site_compatibility()
        )
        bundle = ship(hub, clock, base / "bundle", assign=("iris@1",))
        last_bundle = clock.now()
        clock.advance(dt.timedelta(minutes=1))
        accept_import(spoke, bundle, FixedClock(clock.now()))
    finally:
        hub.close()
        spoke.engine.dispose()
    return CutoffSite(spoke_home, last_bundle)
