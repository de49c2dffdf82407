"""Pytest fixtures shared by every test tree (the root conftest registers this module).

The session templates (:func:`world`) are built once and copied per test, so
that every test gets its own hub and spoke homes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from airlock.bundles.clock import FixedClock
from airlock.hub.context import HubContext
from airlock.hub.export import MediaOptions
from airlock.spoke.site import SpokeHome
from helpers.fleetenv import Fleet, build_fleet
from helpers.hubenv import HUB_TIME
from helpers.metricsenv import MetricsSite
from helpers.spokeenv import RecordingSecrets, World, build_world

_WORLDS: list[World] = []


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """Ceremony, template hub (sites, models, assignments) and template spoke ``plant-7``.

    Built once per session even though two conftests import this fixture; tests
    only ever copy the templates, never change them.
    """
    if not _WORLDS:
        _WORLDS.append(build_world(tmp_path_factory.mktemp("world")))
    return _WORLDS[0]


@pytest.fixture
def hub_clock() -> FixedClock:
    """The hub's clock for one test (tests may move it)."""
    return FixedClock(HUB_TIME)


@pytest.fixture
def hub(world: World, tmp_path: Path, hub_clock: FixedClock) -> Iterator[HubContext]:
    """A copy of the template hub."""
    opened = world.new_hub(tmp_path / "hub", hub_clock)
    yield opened
    opened.close()


@pytest.fixture
def secrets() -> RecordingSecrets:
    """The spoke's secrets handler (records whether the passphrase was asked for)."""
    return RecordingSecrets()


@pytest.fixture
def spoke(world: World, tmp_path: Path, secrets: RecordingSecrets) -> Iterator[SpokeHome]:
    """A copy of the template spoke: initialised, nothing imported."""
    home = world.new_spoke(tmp_path / "spoke", secrets)
    yield home
    home.engine.dispose()


@pytest.fixture(params=[1, 2], ids=["format-1", "format-2"])
def bundle_format(request: pytest.FixtureRequest) -> MediaOptions:
    """The bundle format a test exports in (``export(..., media=bundle_format)``).

    Attack tests take it so that each refusal is checked for format 1 (one
    ``payload.age``) and format 2 (``site.age`` and volumes) alike.
    """
    return MediaOptions(format_version=request.param)


@pytest.fixture
def media(tmp_path: Path) -> Path:
    """The removable medium: bundles are written here and edited by the attacker."""
    path = tmp_path / "media"
    path.mkdir()
    return path


_FLEETS: list[Fleet] = []


@pytest.fixture(scope="session")
def fleet(world: World, tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    """Template hub and spoke with ``iris@1..3`` staged (see :mod:`helpers.fleetenv`)."""
    if not _FLEETS:
        _FLEETS.append(build_fleet(world, tmp_path_factory.mktemp("fleet")))
    return _FLEETS[0]


@pytest.fixture
def fleet_spoke(fleet: Fleet, tmp_path: Path) -> Iterator[SpokeHome]:
    """A copy of the fleet's spoke: iris@1..3 staged, no node enrolled yet."""
    home = fleet.new_spoke(tmp_path / "fleet-spoke")
    yield home
    home.engine.dispose()


@pytest.fixture
def fleet_hub(fleet: Fleet, tmp_path: Path) -> Iterator[HubContext]:
    """A copy of the hub that made the fleet spoke: iris@1..3 released with a validation set,
    exported to plant-7 (so its return-path keys exist)."""
    opened = fleet.new_hub(tmp_path / "hub")
    yield opened
    opened.close()


@pytest.fixture
def metrics_site(fleet_spoke: SpokeHome, fleet_hub: HubContext, fleet: Fleet) -> MetricsSite:
    """The site's side of the return path: its real audit log and key, the hub's recipient."""
    return MetricsSite.of(fleet_spoke, fleet_hub, fleet.hub_time)
