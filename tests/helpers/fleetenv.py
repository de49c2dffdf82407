"""A site with a fleet to roll out to: iris versions 1-3 released, imported and staged.

:func:`build_fleet` extends the session's :class:`helpers.spokeenv.World`
templates once per session: the real hub releases the iris classifier
(:func:`helpers.gatemodels.make_iris`, with its validation set and a signed
compatibility record) as ``iris@1``, ``iris@2`` and ``iris@3``, assigns and
exports each in turn, and the real spoke imports every bundle (TUF, gate and
all), so all three versions are staged. Tests copy the templates
(:meth:`Fleet.new_hub`, :meth:`Fleet.new_spoke`) and go on from there: enrol
nodes, roll out, revoke. The site's signing key (the site director's key)
comes from :func:`site_signer`.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path

from securesystemslib.signer import Signer

from airlock.bundles.clock import FixedClock
from airlock.hub.context import HubContext, open_hub
from airlock.spoke.site import SpokeHome
from helpers.gatemodels import (
    GateModel,
    classification,
    make_iris,
    release,
    ship,
    site_compatibility,
)
from helpers.hubenv import hub_secrets
from helpers.spokeenv import SPOKE_TIME, World, accept_import, site_secrets

FLEET_MODEL = "iris"
FLEET_VERSIONS = ("1", "2", "3")
FLEET_TIME = SPOKE_TIME + dt.timedelta(hours=1)
"""When the fleet templates were last changed (hub and spoke clocks start after it)."""


@dataclass(frozen=True)
class Fleet:
    """Template hub and spoke with ``iris@1..3`` staged at the spoke (``iris@3`` assigned)."""

    hub_template: Path
    spoke_template: Path
    iris: GateModel
    hub_time: dt.datetime

    def new_hub(self, dest: Path, clock: FixedClock | None = None) -> HubContext:
        """A copy of the template hub at ``dest``."""
        shutil.copytree(self.hub_template, dest, symlinks=True)
        return open_hub(dest, hub_secrets, clock=clock or FixedClock(self.hub_time))

    def new_spoke(self, dest: Path) -> SpokeHome:
        """A copy of the template spoke at ``dest`` (iris@1..3 staged)."""
        shutil.copytree(self.spoke_template, dest, symlinks=True)
        return SpokeHome(dest, site_secrets)


def build_fleet(world: World, base: Path) -> Fleet:
    """Releases, ships and imports ``iris@1..3``; see the module docstring."""
    iris = make_iris(base / "iris-model")
    hub_home, spoke_home = base / "hub", base / "spoke"
    clock = FixedClock(SPOKE_TIME)
    hub = world.new_hub(hub_home, clock)
    spoke = world.new_spoke(spoke_home)
    try:
        for version in FLEET_VERSIONS:
            release(
                hub,
                FLEET_MODEL,
                version,
                iris.path,
                iris.sets["good"],
                classification(),
                site_compatibility(),
            )
            bundle = ship(hub, clock, base / f"bundle-{version}", assign=(f"iris@{version}",))
            clock.advance(dt.timedelta(minutes=1))
            accept_import(spoke, bundle, FixedClock(clock.now()))
    finally:
        hub.close()
        spoke.engine.dispose()
    return Fleet(hub_home, spoke_home, iris, clock.now() + dt.timedelta(minutes=1))


def site_signer(home: SpokeHome) -> Signer:
    """The site's Ed25519 signing key, unlocked with the test passphrase."""
    return home.keystore().signer(home.signing_key())
