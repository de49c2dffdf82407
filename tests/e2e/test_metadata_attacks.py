"""Attacks on the TUF metadata inside a validly enveloped, correctly encrypted bundle.

These are what a stolen online key or a confused hub could ship: Director
instructions meant for another site, or Director targets that disagree with
what the Image repository signed. The envelope, the encryption and every TUF
signature are genuine (the hub's own keys); only the spoke's Uptane checks
stand in the way — in both bundle formats (``bundle_format``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.bundlecraft import (
    director_part,
    forge_bundle,
    image_part,
    resign_director,
    sha256_hex,
)
from helpers.spokeenv import OTHER_SITE_ID, SITE_ID, refuse_import
from tuf.api.metadata import Targets

from airlock.bundles import tuf as tufrepo
from airlock.bundles.errors import IntegrityError, WrongSiteError
from airlock.hub.context import HubContext
from airlock.hub.export import MediaOptions, plan_export
from airlock.spoke.site import SpokeHome

CLASSIFIER = "classifier/1/classifier.onnx"


def test_director_metadata_of_another_site_in_this_sites_bundle_is_refused(
    hub: HubContext, spoke: SpokeHome, media: Path, bundle_format: MediaOptions
) -> None:
    """Envelope, recipient and Image metadata for plant-7; Director metadata of plant-9."""
    mine, theirs = plan_export(hub, SITE_ID), plan_export(hub, OTHER_SITE_ID)
    swapped = image_part(mine.metadata) + director_part(theirs.metadata)
    forge_bundle(hub, mine, media / "bundle", media=bundle_format, metadata=swapped)
    error = refuse_import(spoke, media / "bundle", WrongSiteError, "Director metadata is for site")
    assert f"'{OTHER_SITE_ID}'" in error.message and f"'{SITE_ID}'" in error.message


def _name_site(site_id: str | None) -> Callable[[Targets], None]:
    def edit(targets: Targets) -> None:
        if site_id is None:
            del targets.unrecognized_fields[tufrepo.SITE_ID_FIELD]
        else:
            targets.unrecognized_fields[tufrepo.SITE_ID_FIELD] = site_id

    return edit


def _target_for(site_id: str) -> Callable[[Targets], None]:
    def edit(targets: Targets) -> None:
        targets.targets[CLASSIFIER].unrecognized_fields["custom"][tufrepo.CUSTOM_KEY]["site_id"] = (
            site_id
        )

    return edit


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        pytest.param(_name_site(OTHER_SITE_ID), "is for site 'plant-9'", id="targets-name-other"),
        pytest.param(_name_site(None), "do not name a site", id="targets-name-no-site"),
        pytest.param(_target_for(OTHER_SITE_ID), f"{CLASSIFIER} is for site", id="one-target"),
    ],
)
def test_director_targets_signed_for_another_site_are_refused(
    hub: HubContext,
    spoke: SpokeHome,
    media: Path,
    bundle_format: MediaOptions,
    edit: Callable[[Targets], None],
    match: str,
) -> None:
    plan = plan_export(hub, SITE_ID)
    metadata = resign_director(hub, plan.metadata, edit)
    forge_bundle(hub, plan, media / "bundle", media=bundle_format, metadata=metadata)
    refuse_import(spoke, media / "bundle", WrongSiteError, match)


def _set_hash(targets: Targets) -> None:
    targets.targets[CLASSIFIER].hashes = {"sha256": sha256_hex(b"an attacker's model")}


def _set_length(targets: Targets) -> None:
    targets.targets[CLASSIFIER].length += 1


def _set_version(targets: Targets) -> None:
    targets.targets[CLASSIFIER].unrecognized_fields["custom"][tufrepo.CUSTOM_KEY]["version"] = "9"


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        pytest.param(_set_hash, "length or hashes differ", id="hash"),
        pytest.param(_set_length, "length or hashes differ", id="length"),
        pytest.param(_set_version, "disagree on the version", id="custom-version"),
    ],
)
def test_a_director_target_that_disagrees_with_the_image_target_is_refused(
    hub: HubContext,
    spoke: SpokeHome,
    media: Path,
    bundle_format: MediaOptions,
    edit: Callable[[Targets], None],
    match: str,
) -> None:
    plan = plan_export(hub, SITE_ID)
    metadata = resign_director(hub, plan.metadata, edit)
    forge_bundle(hub, plan, media / "bundle", media=bundle_format, metadata=metadata)
    error = refuse_import(spoke, media / "bundle", IntegrityError, match)
    assert CLASSIFIER in error.message
