"""Freshness in an air gap: no replay, no expired bundle, no clock set back behind the floor.

Every case runs in both bundle formats (``bundle_format``).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from helpers.bundlecraft import forge_bundle
from helpers.hubenv import HUB_TIME
from helpers.spokeenv import (
    SITE_ID,
    SPOKE_INIT_TIME,
    SPOKE_TIME,
    RecordingSecrets,
    accept_import,
    refuse_import,
    spoke_clock,
)

from airlock.bundles.clock import FixedClock
from airlock.bundles.errors import FreshnessError, StaleBundleError
from airlock.hub.context import HubContext
from airlock.hub.export import MediaOptions, assign, export, plan_export
from airlock.spoke.site import SpokeHome
from airlock.spoke.status import read_status

TRANSIT_BUDGET = dt.timedelta(days=30)


def two_bundles(
    hub: HubContext, hub_clock: FixedClock, media: Path, bundle_format: MediaOptions
) -> tuple[Path, Path]:
    """Bundles 1 and 2 of plant-7, ten minutes apart; bundle 2 assigns classifier@2.

    Bundle 2 is exported ``full`` so that it can be imported without bundle 1 (a gap).
    """
    export(hub, SITE_ID, media / "bundle-1", media=bundle_format)
    assign(hub, SITE_ID, "classifier", "2")
    hub_clock.advance(dt.timedelta(minutes=10))
    export(hub, SITE_ID, media / "bundle-2", full=True, media=bundle_format)
    return media / "bundle-1", media / "bundle-2"


def test_a_replayed_older_bundle_changes_nothing_and_says_so(
    hub: HubContext,
    hub_clock: FixedClock,
    spoke: SpokeHome,
    secrets: RecordingSecrets,
    media: Path,
    bundle_format: MediaOptions,
) -> None:
    first, second = two_bundles(hub, hub_clock, media, bundle_format)
    accept_import(spoke, second)
    asked = len(secrets.asked)

    error = refuse_import(spoke, first, StaleBundleError, "sequence 1 is not newer than the")
    assert "nothing changed" in error.message and "no action needed" in error.hint
    error = refuse_import(spoke, second, StaleBundleError, "sequence 2 is not newer than the")
    assert "nothing changed" in error.message
    assert len(secrets.asked) == asked, "a replay is refused before anything is decrypted"
    status = read_status(spoke)
    assert status.last_sequence == 2
    assert [(a["model"], a["version"]) for a in status.assigned] == [
        ("classifier", "2"),
        ("detector", "1"),
    ]


def test_a_bundle_older_than_the_transit_budget_is_expired(
    hub: HubContext,
    hub_clock: FixedClock,
    spoke: SpokeHome,
    secrets: RecordingSecrets,
    media: Path,
    bundle_format: MediaOptions,
) -> None:
    hub_clock.advance(-(TRANSIT_BUDGET + dt.timedelta(days=1)))
    envelope = export(hub, SITE_ID, media / "old", media=bundle_format)
    assert envelope.expires < SPOKE_TIME
    error = refuse_import(spoke, media / "old", FreshnessError, "the bundle expired at")
    assert "new export" in error.hint
    assert secrets.asked == []


def test_expired_metadata_inside_a_fresh_envelope_is_refused_by_tuf(
    hub: HubContext,
    hub_clock: FixedClock,
    spoke: SpokeHome,
    media: Path,
    bundle_format: MediaOptions,
) -> None:
    """The envelope's dates are only a first check: the TUF timestamps expire on their own."""
    hub_clock.advance(-(TRANSIT_BUDGET + dt.timedelta(days=1)))
    stale_metadata = plan_export(hub, SITE_ID)
    forge_bundle(
        hub,
        stale_metadata,
        media / "rewrapped",
        media=bundle_format,
        created=HUB_TIME,
        expires=HUB_TIME + TRANSIT_BUDGET,
    )
    refuse_import(spoke, media / "rewrapped", FreshnessError, "metadata has expired")


def test_a_clock_set_back_before_the_time_floor_is_refused(
    hub: HubContext,
    hub_clock: FixedClock,
    spoke: SpokeHome,
    secrets: RecordingSecrets,
    media: Path,
    bundle_format: MediaOptions,
) -> None:
    first, second = two_bundles(hub, hub_clock, media, bundle_format)
    accept_import(spoke, first, spoke_clock(SPOKE_TIME))
    floor = read_status(spoke).time_floor
    assert floor == HUB_TIME.isoformat(), "the floor is the bundle's signed creation time"
    asked = len(secrets.asked)

    set_back = spoke_clock(SPOKE_TIME - dt.timedelta(days=2))
    error = refuse_import(
        spoke, second, FreshnessError, "earlier than the newest verified", set_back
    )
    assert floor in error.message and "fix the system clock" in error.hint
    assert len(secrets.asked) == asked
    assert read_status(spoke).time_floor == floor


def test_the_floor_starts_at_init_and_one_second_before_it_is_refused(
    hub: HubContext,
    spoke: SpokeHome,
    media: Path,
    bundle_format: MediaOptions,
) -> None:
    export(hub, SITE_ID, media / "bundle-1", media=bundle_format)
    assert read_status(spoke).time_floor == SPOKE_INIT_TIME.isoformat()
    one_second_early = spoke_clock(SPOKE_INIT_TIME - dt.timedelta(seconds=1))
    refuse_import(spoke, media / "bundle-1", FreshnessError, "earlier than the", one_second_early)


def test_a_bundle_from_the_future_is_refused(
    hub: HubContext,
    hub_clock: FixedClock,
    spoke: SpokeHome,
    media: Path,
    bundle_format: MediaOptions,
) -> None:
    """A bundle created well after the site's clock means the clock is behind: refuse."""
    hub_clock.advance(dt.timedelta(hours=2))
    export(hub, SITE_ID, media / "ahead", media=bundle_format)
    refuse_import(spoke, media / "ahead", FreshnessError, "after the local clock")


def test_an_import_with_a_fast_clock_does_not_lock_the_site_out(
    hub: HubContext,
    hub_clock: FixedClock,
    spoke: SpokeHome,
    media: Path,
    bundle_format: MediaOptions,
) -> None:
    """The floor advances to the bundle's signed creation time, never to the local clock."""
    first, second = two_bundles(hub, hub_clock, media, bundle_format)
    accept_import(spoke, first, spoke_clock(SPOKE_TIME + dt.timedelta(days=25)))
    assert read_status(spoke).time_floor == HUB_TIME.isoformat()

    right_clock = spoke_clock(SPOKE_TIME + dt.timedelta(hours=1))
    assert accept_import(spoke, second, right_clock).sequence == 2
    assert read_status(spoke).time_floor == (HUB_TIME + dt.timedelta(minutes=10)).isoformat()
